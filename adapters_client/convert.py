"""``convert_folder`` / ``adapters-client convert``: an adapter folder saved with pickled weights (the ``adapters``
library's default, and its only choice for prefix tuning, whose tied tensors safetensors refuses) rewritten as a
folder the hub takes: every weights file as safetensors, each tensor stored once.

Pickles are read with ``torch.load(weights_only=True)`` (tensors and plain containers only: nothing executes). A
tensor the file holds under several names (the prefix pool and its per-layer aliases, an MTL-LoRA share named
like its adapter) is written once, under its shortest name, which is the one ``load_adapter`` (ours and the
library's) reads. The output is written into a scratch folder next to the target and renamed into place at the
end, so a failed conversion leaves nothing behind.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from .configs.files import (CONFIG_FILE, FUSION_CONFIG_FILE, FUSION_WEIGHTS_FILE, HEAD_CONFIG_FILE, HEAD_WEIGHTS_FILE,
                            HUB_FILES, PICKLE_WEIGHTS_FILE, WEIGHTS_FILE)
from .errors import InvalidAdapterFolder

# pickled weights file -> the safetensors file the hub expects in its place
PICKLED_TO_SAFE = {PICKLE_WEIGHTS_FILE: WEIGHTS_FILE, "pytorch_model_head.bin": HEAD_WEIGHTS_FILE,
                   "pytorch_model_adapter_fusion.bin": FUSION_WEIGHTS_FILE}


def convert_folder(source, target, *, overwrite: bool = False) -> dict:
    """Write ``source`` (an adapter, head or fusion folder) to ``target`` as the hub's files; returns
    ``{"path", "files", "converted": {pickle name: safetensors name}, "deduplicated": number of alias keys}``.

    ``InvalidAdapterFolder`` (every problem listed) when ``source`` has no config, a weights file cannot be read or
    holds something other than tensors, or ``target`` exists and ``overwrite`` is not set."""
    source, target = Path(source), Path(target)
    problems = _source_problems(source)
    if target.exists() and not overwrite:
        problems.append({"code": "target_exists", "file": str(target),
                         "detail": f"{target} exists; choose another folder or pass overwrite=True (--force)"})
    if target.resolve() == source.resolve():
        problems.append({"code": "target_is_source", "file": str(target), "detail": "write to another folder"})
    if problems:
        raise InvalidAdapterFolder(_summary(source, problems), problems=problems)
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        result = _write(source, scratch)
        if target.exists():
            shutil.rmtree(target)
        scratch.rename(target)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    return {"path": str(target), **result}


def _source_problems(source: Path) -> list:
    if not source.is_dir():
        return [{"code": "missing_folder", "file": str(source), "detail": f"{source} is not a folder"}]
    if not any((source / name).is_file() for name in (CONFIG_FILE, HEAD_CONFIG_FILE, FUSION_CONFIG_FILE)):
        return [{"code": "missing_file", "file": CONFIG_FILE,
                 "detail": f"{source} holds no adapter_config.json, head_config.json or adapter_fusion_config.json"}]
    return []


def _write(source: Path, out: Path) -> dict:
    files, converted, deduplicated, problems = [], {}, 0, []
    for pickled, safe in PICKLED_TO_SAFE.items():
        if (source / pickled).is_file() and not (source / safe).is_file():
            try:
                kept, dropped = pickle_to_safetensors(source / pickled, out / safe)
            except InvalidAdapterFolder as exc:
                problems += exc.details.get("problems", [])
                continue
            converted[pickled], deduplicated = safe, deduplicated + dropped
            files.append(safe)
    for name in HUB_FILES:
        if (source / name).is_file() and name not in files:
            shutil.copyfile(source / name, out / name)
            files.append(name)
    if problems:
        raise InvalidAdapterFolder(_summary(source, problems), problems=problems)
    return {"files": sorted(files), "converted": converted, "deduplicated": deduplicated}


def pickle_to_safetensors(pickled: Path, safe: Path) -> tuple:
    """Write the tensors of ``pickled`` to ``safe``, each tensor once (under its shortest name); returns (tensors
    written, alias keys dropped). ``InvalidAdapterFolder`` when the file is not a weights-only pickle of tensors."""
    import torch
    from safetensors.torch import save_file

    try:
        state = torch.load(str(pickled), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable or unsafe pickle is the folder's problem
        raise InvalidAdapterFolder(f"{pickled.name} cannot be read", problems=[
            {"code": "unreadable_weights", "file": pickled.name,
             "detail": f"not a weights-only pickle of tensors ({type(exc).__name__}: {str(exc)[:200]})"}]) from None
    if not isinstance(state, dict) or not state or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise InvalidAdapterFolder(f"{pickled.name} does not hold tensors", problems=[
            {"code": "unreadable_weights", "file": pickled.name, "detail": "not a non-empty dict of named tensors"}])
    groups: dict = {}
    for key, tensor in state.items():
        place = (tensor.untyped_storage().data_ptr(), tensor.storage_offset(), tuple(tensor.shape),
                 tuple(tensor.stride()), tensor.dtype)
        groups.setdefault(place, []).append(key)
    kept = {min(keys, key=lambda k: (len(k), k)): state[keys[0]].detach().contiguous().clone()
            for keys in groups.values()}
    save_file(kept, str(safe), metadata={"format": "pt"})
    return len(kept), len(state) - len(kept)


def _summary(source: Path, problems: list) -> str:
    lines = "; ".join(f"{p.get('file', '')}: {p.get('detail', '')}" for p in problems[:5])
    more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
    return f"cannot convert {source}: {lines}{more}"
