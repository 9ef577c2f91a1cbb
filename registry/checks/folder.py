"""Check a whole adapter folder (name -> local path) with the single-file checks."""

from __future__ import annotations

import codecs

from ..errors import InvalidInput
from .configs import AdapterMeta, check_adapter_config, check_fusion_config, check_head_config, load_json_file
from .files import (
    ADAPTER_CONFIG, FUSION_CONFIG, HEAD_CONFIG, README, check_file_set, check_not_pickle,
)
from .safetensors import check_safetensors

_JSON_CHECKS = {HEAD_CONFIG: check_head_config, FUSION_CONFIG: check_fusion_config}


def check_folder(paths: dict[str, str]) -> AdapterMeta:
    """Names, pickles, safetensors structure and configs; returns what adapter_config.json declares."""
    names = check_file_set(paths)
    # Pickles first: a pickle under any name is refused as such (415), before other checks.
    for name in names:
        if name.endswith(".safetensors"):
            check_not_pickle(paths[name], name)
    for name in names:
        if name.endswith(".safetensors"):
            check_safetensors(paths[name], name)
    meta = check_adapter_config(load_json_file(paths[ADAPTER_CONFIG], ADAPTER_CONFIG))
    for name, check in _JSON_CHECKS.items():
        if name in paths:
            check(load_json_file(paths[name], name), name)
    if README in paths:
        _check_readme(paths[README])
    return meta


def _check_readme(path: str) -> None:
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        with open(path, "rb") as fh:
            while chunk := fh.read(1024 * 1024):
                decoder.decode(chunk)
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        raise InvalidInput("README.md is not UTF-8 text", code="invalid_readme", filename=README) from None
