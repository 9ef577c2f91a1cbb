"""The one-line entry points: resolve, download, load and push (CONTRACTS.md section 3)."""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path

from . import cache
from .configs.files import CONFIG_FILE, HUB_FILES
from .errors import IncompatibleAdapter
from .hub_api import HubClient, is_offline
from .identifiers import AdapterId



def resolve(identifier: str, *, model_name=None, config=None, version=None, hub: HubClient | None = None,
            cache_dir=None) -> dict:
    """The hub's resolution of ``identifier`` (metadata and file list, no download).

    With ADAPTERS_OFFLINE=1 the last resolution kept in the cache is returned, or
    OfflineCacheMiss is raised."""
    ident = AdapterId.parse(identifier)
    key = cache.ref_key(ident, model_name, config, version)
    if is_offline():
        resolution, _ = cache.offline_snapshot(cache.cache_dir(cache_dir), key, str(ident))
        return resolution
    return (hub or HubClient()).resolve(str(ident), model_name=model_name, config=config, version=version)


def download(identifier: str, *, model_name=None, config=None, version=None, hub: HubClient | None = None,
             cache_dir=None, progress: bool = True) -> Path:
    """Resolve, download with checksums into the cache and return the adapter's local folder."""
    return _fetch(identifier, model_name, config, version, hub, cache_dir, progress)[1]


def _fetch(identifier, model_name, config, version, hub, cache_dir, progress) -> tuple[dict, Path]:
    ident = AdapterId.parse(identifier)
    root = cache.cache_dir(cache_dir)
    key = cache.ref_key(ident, model_name, config, version)
    if is_offline():
        return cache.offline_snapshot(root, key, str(ident))
    hub = hub or HubClient()
    resolution = hub.resolve(str(ident), model_name=model_name, config=config, version=version)
    if resolution.get("warning"):
        warnings.warn(resolution["warning"], stacklevel=3)
    for f in resolution["files"]:
        cache.fetch_blob(root, f["sha256"], f["size"], lambda f=f: hub.open_file(f["url"]), name=f["name"],
                         progress=progress)
    folder = cache.build_snapshot(root, resolution["digest"], resolution["files"])
    cache.save_ref(root, key, resolution)
    return resolution, folder


def load(identifier: str, *, model_name=None, config=None, version=None, hub: HubClient | None = None,
         cache_dir=None, model=None, **from_pretrained_kwargs):
    """Resolve + download + backbone + adapter (+ head), with the adapter active.

    ``model_name`` picks the backbone when the identifier exists for several; the backbone is
    loaded with ``AutoAdapterModel.from_pretrained(model_name)`` unless ``model`` is given."""
    from .model import AutoAdapterModel

    resolution, folder = _fetch(identifier, model_name, config, version, hub, cache_dir, True)
    if model is None:
        model = AutoAdapterModel.from_pretrained(resolution["model_name"], **from_pretrained_kwargs)
    elif getattr(model.config, "model_type", None) != resolution.get("model_type"):
        raise IncompatibleAdapter(
            f"{identifier} is for a {resolution.get('model_type')} backbone ({resolution['model_name']}), "
            f"the given model is {getattr(model.config, 'model_type', None)}"
        )
    model.load_adapter(str(folder), load_as=AdapterId.parse(identifier).subtask, set_active=True)
    return model


def push(folder: str | os.PathLike, identifier: str, *, version: str, token: str | None = None,
         model_name: str | None = None, claimed_score: float | None = None, description: str = "",
         license: str = "", visibility: str | None = None, hub: HubClient | None = None) -> dict:
    """Upload a saved adapter folder as a new version; returns the hub's answer (status pending)."""
    ident = AdapterId.parse(identifier)
    folder = Path(folder)
    files = [(name, str(folder / name)) for name in HUB_FILES if (folder / name).is_file()]
    if not any(name == CONFIG_FILE for name, _ in files):
        raise FileNotFoundError(f"{folder} has no {CONFIG_FILE}: save the adapter with save_adapter first")
    if model_name is None:
        model_name = json.loads((folder / CONFIG_FILE).read_text()).get("model_name")
    sha = {name: _sha256(path) for name, path in files}
    hub = hub or HubClient()
    if token:
        hub.token = token
    fields = {"identifier": str(ident), "version": version, "model_name": model_name,
              "claimed_score": claimed_score, "description": description, "license": license,
              "visibility": visibility, "sha256": sha}
    return hub.upload(files, fields)


def _sha256(path: str) -> str:
    hasher = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1024 * 1024), b""):
            hasher.update(chunk)
    return hasher.hexdigest()
