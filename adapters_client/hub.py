"""The hub-facing entry points, torch-free: resolve, download (``fetch``) and push (CONTRACTS.md section 3).

The format code (``formats.py``) imports this module to fetch hub identifiers, and ``api.load`` builds
on it; nothing here imports torch or the engine, so the hub, the CLI and the format code share it
without an import cycle.

Every path that fetches an adapter goes through ``fetch``: one content-addressed cache keyed by the
resolved version, with refs for the request as given and as resolved, so ``ADAPTERS_OFFLINE=1``
(and a hub outage, with a warning) serves it to every other entry point.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from . import cache
from .errors import HubError, OfflineCacheMiss
from .hub_api import HubClient, is_offline, is_unreachable
from .identifiers import AdapterId
from .rules import packaged_backbones


class CacheFallbackWarning(UserWarning):
    """The hub could not be reached: a verified cached copy is used instead."""


def resolve(identifier: str, *, model_name=None, config=None, version=None, hub: HubClient | None = None,
            cache_dir=None) -> dict:
    """The hub's resolution of ``identifier`` (metadata and file list, no download).

    With ADAPTERS_OFFLINE=1 the cached resolution is returned, or OfflineCacheMiss is raised; when
    the hub is unreachable, a cached resolution is returned with a warning."""
    ident = AdapterId.parse(identifier)
    root = cache.cache_dir(cache_dir)
    if is_offline():
        return _cached(root, ident, model_name, config, version)[0]
    try:
        return (hub or HubClient()).resolve(str(ident), model_name=model_name, config=config, version=version)
    except Exception as exc:
        return _fallback(exc, root, ident, model_name, config, version)[0]


def download(identifier: str, *, model_name=None, config=None, version=None, hub: HubClient | None = None,
             cache_dir=None, progress: bool = True) -> Path:
    """Resolve, download with checksums into the cache and return the adapter's local folder."""
    return fetch(identifier, model_name=model_name, config=config, version=version, hub=hub,
                 cache_dir=cache_dir, progress=progress)[1]


def fetch(identifier: str, *, model_name=None, config=None, version=None, hub: HubClient | None = None,
          cache_dir=None, progress: bool = True) -> tuple[dict, Path]:
    """(resolution, verified local folder) of an adapter: the one download path of every entry point."""
    ident = AdapterId.parse(identifier)
    root = cache.cache_dir(cache_dir)
    if is_offline():
        return _cached(root, ident, model_name, config, version)
    hub = hub or HubClient()
    try:
        resolution = hub.resolve(str(ident), model_name=model_name, config=config, version=version, direct=True)
    except Exception as exc:
        return _fallback(exc, root, ident, model_name, config, version)
    if resolution.get("warning"):
        warnings.warn(resolution["warning"], stacklevel=3)
    direct = {f["name"]: f.pop("direct_url") for f in resolution.get("files", []) if f.get("direct_url")}
    try:
        _fetch_files(root, hub, resolution["files"], direct, progress)
    except Exception as exc:
        if not is_unreachable(exc):
            raise
        return _fallback(exc, root, ident, model_name, config, version)
    folder = cache.build_snapshot(root, resolution["digest"], resolution["files"])
    cache.save_refs(root, resolution, [(str(ident), model_name, config, version),
                                       *cache.resolved_requests(resolution)])
    return resolution, folder


def _fetch_files(root: Path, hub: HubClient, files: list, direct: dict, progress: bool) -> None:
    """Every file of a resolution into ``blobs/``, the missing ones at the same time.

    A file's presigned object URL (``direct``) is used when the hub gave one; when the store refuses
    it (an expired URL, a store that cannot be reached from here), the hub's download URL instead."""

    def opener(f):
        def open_stream():
            if f["name"] in direct:
                try:
                    return hub.open_object(direct[f["name"]])
                except HubError:
                    pass
            return hub.open_file(f["url"])
        return open_stream

    missing = sorted((f for f in files if not cache.has_blob(root, f["sha256"], f["size"])), key=lambda f: f["size"])
    if len(missing) < 2:
        for f in missing:
            cache.fetch_blob(root, f["sha256"], f["size"], opener(f), name=f["name"], progress=progress)
        return
    *small, largest = missing  # the largest in a thread of its own, the others meanwhile in this one
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="adapters-download") as pool:
        future = pool.submit(cache.fetch_blob, root, largest["sha256"], largest["size"], opener(largest),
                             name=largest["name"], progress=progress)
        for f in small:
            cache.fetch_blob(root, f["sha256"], f["size"], opener(f), name=f["name"], progress=progress)
    future.result()  # the pool has been shut down: the transfer has ended; its failure is raised


def _cached(root: Path, ident: AdapterId, model_name, config, version) -> tuple[dict, Path]:
    try:
        return cache.find_cached(root, ident, model_name, config, version)
    except OfflineCacheMiss as exc:
        raise OfflineCacheMiss(f"{exc.detail} and ADAPTERS_OFFLINE is set", **exc.details) from None


def _fallback(exc: Exception, root: Path, ident: AdapterId, model_name, config, version) -> tuple[dict, Path]:
    """After a connection error or a 5xx: the verified cached copy with a warning, else the hub's error."""
    if not is_unreachable(exc):
        raise exc
    try:
        found = cache.find_cached(root, ident, model_name, config, version)
    except Exception:
        raise exc from None
    warnings.warn(f"{exc}; using the cached copy of {found[0].get('identifier')} version {found[0].get('version')}",
                  CacheFallbackWarning, stacklevel=4)
    return found


def backbone_location(model_name: str) -> str:
    """Where to load a backbone from: the folder of a packaged backbone (no download), else its name."""
    return packaged_backbones().get(model_name, model_name)


def push(folder: str | os.PathLike, identifier: str, *, version: str, token: str | None = None,
         model_name: str | None = None, claimed_score: float | None = None, description: str = "",
         license: str = "", visibility: str | None = None, hub: HubClient | None = None, wait: bool = False,
         timeout: float = 600.0, progress: bool | None = None, check: bool = True) -> dict:
    """Upload a saved adapter folder as a new version.

    The folder is checked first (required files, safetensors only, configs; and the hub's own static
    checks when the validator is installed): InvalidAdapterFolder lists every problem. ``model_name``
    is the backbone's public name; a local path is never sent (LocalModelName). Returns the hub's
    answer (status pending), or with ``wait=True`` the final version record (valid, rejected or error)
    with its validation report; WaitTimeout after ``timeout`` seconds. ``progress``: a bar
    (None: on a terminal for large uploads)."""
    from . import publish
    from .errors import InvalidAdapterFolder

    ident = AdapterId.parse(identifier)
    folder = Path(folder)
    files = publish.upload_files(folder)
    model_name = publish.backbone_name(folder, model_name)
    if check:
        problems = publish.validator_problems(files)
        if problems:
            raise InvalidAdapterFolder(f"{folder} fails the hub's checks: "
                                       + "; ".join(str(p.get("detail") or p["code"]) for p in problems),
                                       problems=problems)
    hub = hub or HubClient()
    if token:
        hub.token = token
    fields = {"identifier": str(ident), "version": version, "model_name": model_name,
              "claimed_score": claimed_score, "description": description, "license": license,
              "visibility": visibility, "sha256": {name: _sha256(path) for name, path in files}}
    callback, bar = publish.progress_bar(files, progress)
    try:
        answer = hub.upload(files, fields, progress=callback)
    finally:
        if bar is not None:
            bar.close()
    if not wait:
        return answer
    adapter_id = publish.adapter_id_of(answer)
    if adapter_id is None:
        from .errors import HubError

        raise HubError(f"the hub's answer names no adapter to wait for: {answer}")
    record = publish.wait_for_verdict(hub, adapter_id, answer.get("version", version), timeout=timeout)
    return {"identifier": answer.get("identifier"), "adapter_id": adapter_id, "model_name": model_name, **record}


def _sha256(path: str) -> str:
    hasher = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1024 * 1024), b""):
            hasher.update(chunk)
    return hasher.hexdigest()
