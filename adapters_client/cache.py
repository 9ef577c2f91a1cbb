"""A crash-safe, content-addressed download cache (RELIABILITY.md, client rows).

Layout under the cache folder (``ADAPTERS_CACHE``, default ``~/.cache/adapters_client``)::

    blobs/<sha256>            verified file contents, written once by an atomic rename
    snapshots/<digest>/<name> one folder per adapter version, hard links (or copies) of blobs
    refs/<key>.json           the last resolution of (identifier, model_name, config, version), saved
                              under the request as given and as resolved; used offline and when the
                              hub is unreachable (``find_cached``)
    locks/, tmp/              per-blob locks and in-flight downloads

A download goes to a unique temporary file while it is hashed; only a file whose size and
sha256 match the hub's record is renamed into ``blobs/``, under a lock, so a killed client or
two clients at once never leave a partial file where it could be used.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import uuid
from pathlib import Path

from filelock import FileLock
from tqdm.auto import tqdm

from .errors import AmbiguousIdentifier, ChecksumMismatch, OfflineCacheMiss

CHUNK = 1024 * 1024


def cache_dir(path: str | os.PathLike | None = None) -> Path:
    root = Path(path or os.environ.get("ADAPTERS_CACHE") or Path.home() / ".cache" / "adapters_client")
    for sub in ("blobs", "snapshots", "refs", "locks", "tmp"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    return root


def ref_key(identifier: str, model_name=None, config=None, version=None) -> str:
    text = json.dumps([str(identifier), model_name, config, version])
    return hashlib.sha1(text.encode()).hexdigest()


def _atomic_write_json(path: Path, data: dict) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    with os.fdopen(fd, "w") as handle:
        json.dump(data, handle, indent=1, sort_keys=True)
    os.replace(tmp, path)


def save_ref(root: Path, key: str, resolution: dict) -> None:
    _atomic_write_json(root / "refs" / f"{key}.json", resolution)


def load_ref(root: Path, key: str) -> dict | None:
    try:
        return json.loads((root / "refs" / f"{key}.json").read_text())
    except (FileNotFoundError, ValueError):
        return None


def _blob_ok(path: Path, size: int) -> bool:
    try:
        return path.stat().st_size == size
    except FileNotFoundError:
        return False


def fetch_blob(root: Path, sha256: str, size: int, open_stream, *, name: str = "", progress=True) -> Path:
    """Return ``blobs/<sha256>``, downloading it with ``open_stream()`` when missing.

    ``open_stream()`` returns an object with ``iter_content(chunk_size)`` (a requests response)."""
    blob = root / "blobs" / sha256
    if _blob_ok(blob, size):
        return blob
    with FileLock(str(root / "locks" / f"{sha256}.lock")):
        if _blob_ok(blob, size):  # another client finished it while we waited
            return blob
        tmp = root / "tmp" / f"{sha256}.{uuid.uuid4().hex}.part"
        try:
            digest, written = _stream_to(tmp, open_stream(), size, name, progress)
            if written != size or digest != sha256:
                raise ChecksumMismatch(
                    f"{name or sha256}: expected {size} bytes with sha256 {sha256}, got {written} bytes with "
                    f"sha256 {digest}; the partial file was removed", expected=sha256, got=digest,
                )
            os.replace(tmp, blob)
        finally:
            tmp.unlink(missing_ok=True)
    return blob


def _stream_to(path: Path, response, size: int, name: str, progress: bool) -> tuple[str, int]:
    hasher, written = hashlib.sha256(), 0
    bar = tqdm(total=size, unit="B", unit_scale=True, desc=name or "download", disable=not progress or None,
               leave=False)
    try:
        with open(path, "wb") as out:
            for chunk in response.iter_content(CHUNK):
                if not chunk:
                    continue
                out.write(chunk)
                hasher.update(chunk)
                written += len(chunk)
                bar.update(len(chunk))
                if written > size:  # never store more than the hub promised
                    break
            out.flush()
            os.fsync(out.fileno())
    finally:
        bar.close()
        close = getattr(response, "close", None)
        if close:
            close()
    return hasher.hexdigest(), written


def build_snapshot(root: Path, digest: str, files: list[dict]) -> Path:
    """Make ``snapshots/<digest>/`` from verified blobs; atomic (built aside, then renamed)."""
    target = root / "snapshots" / digest
    if target.is_dir() and all(_blob_ok(target / f["name"], f["size"]) for f in files):
        return target
    staging = root / "tmp" / f"snapshot-{digest}-{uuid.uuid4().hex}"
    staging.mkdir()
    try:
        for f in files:
            blob = root / "blobs" / f["sha256"]
            try:
                os.link(blob, staging / f["name"])
            except OSError:
                shutil.copyfile(blob, staging / f["name"])
        if target.exists():
            shutil.rmtree(target, ignore_errors=True)
        try:
            os.replace(staging, target)
        except OSError:
            if not target.is_dir():  # lost a race to an identical snapshot: keep theirs
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def snapshot_ok(root: Path, resolution: dict) -> Path | None:
    """The snapshot folder of ``resolution`` when every file is there with its size, else None."""
    try:
        target = root / "snapshots" / resolution["digest"]
        files = resolution["files"]
    except (KeyError, TypeError):
        return None
    if target.is_dir() and all(_blob_ok(target / f["name"], f["size"]) for f in files):
        return target
    return None


def save_refs(root: Path, resolution: dict, requests: list[tuple]) -> None:
    """Save ``resolution`` under each (identifier, model_name, config, version) request."""
    for request in dict.fromkeys(requests):
        save_ref(root, ref_key(*request), resolution)


def resolved_requests(resolution: dict) -> list[tuple]:
    """The requests a resolution answers for sure: its identifier, alone and with each detail."""
    ident, model, version = resolution.get("identifier"), resolution.get("model_name"), resolution.get("version")
    method = resolution.get("method")
    return [(ident, None, None, None), (ident, model, None, None), (ident, model, method, None),
            (ident, model, method, version), (ident, None, None, version)]


def all_refs(root: Path) -> list[tuple[Path, dict]]:
    """Every readable ref, newest first."""
    found = []
    for path in (root / "refs").glob("*.json"):
        try:
            found.append((path.stat().st_mtime, path, json.loads(path.read_text())))
        except (OSError, ValueError):
            continue
    found.sort(key=lambda item: item[0], reverse=True)
    return [(path, data) for _, path, data in found if isinstance(data, dict)]


def _matches(resolution: dict, ident, model_name, config, version) -> bool:
    from .identifiers import AdapterId
    from .rules import alias_target

    try:
        cached = AdapterId.parse(resolution.get("identifier", ""))
    except Exception:
        return False
    if cached.path != ident.path or (ident.org is not None and cached.org != ident.org):
        return False
    if model_name is not None and resolution.get("model_name") != model_name:
        return False
    if version is not None and str(resolution.get("version")) != str(version):
        return False
    if config is not None:
        method, digest = resolution.get("method"), resolution.get("config_hash")
        if config != digest and alias_target(config) != method and _config_hash(config) != digest:
            return False
    return True


def _config_hash(config: str):
    try:
        from .configs.files import config_hash

        return config_hash(config)
    except Exception:  # an unknown name: it matches no hash
        return None


def find_cached(root: Path, ident, model_name=None, config=None, version=None) -> tuple[dict, Path]:
    """The verified cached answer to a request, without the network.

    The ref saved for exactly this request wins; otherwise every cached resolution that fits (an
    identifier without ``@org`` fits any organisation) is a candidate: one adapter -> its newest cached
    version; several -> AmbiguousIdentifier; none -> OfflineCacheMiss."""
    exact = load_ref(root, ref_key(str(ident), model_name, config, version))
    if exact is not None and snapshot_ok(root, exact):
        return exact, snapshot_ok(root, exact)
    candidates: dict = {}
    for _, resolution in all_refs(root):
        if not _matches(resolution, ident, model_name, config, version) or not snapshot_ok(root, resolution):
            continue
        adapter = (resolution.get("identifier"), resolution.get("model_name"),
                   resolution.get("config_hash") or resolution.get("method"))
        candidates.setdefault(adapter, resolution)  # refs come newest first
    if len(candidates) == 1:
        resolution = next(iter(candidates.values()))
        return resolution, snapshot_ok(root, resolution)
    if len(candidates) > 1:
        names = sorted(f"{i} ({m}, {c})" for i, m, c in candidates)
        raise AmbiguousIdentifier(f"{ident} matches {len(names)} cached adapters: {', '.join(names)}; "
                                  "add @org, model_name= or config=", candidates=names)
    raise OfflineCacheMiss(f"{ident} is not in the verified cache at {root}", identifier=str(ident))


def offline_snapshot(root: Path, key: str, what: str) -> tuple[dict, Path]:
    """The snapshot saved under exactly ``key`` (see ``find_cached`` for the general lookup)."""
    resolution = load_ref(root, key)
    if resolution is not None and snapshot_ok(root, resolution):
        return resolution, snapshot_ok(root, resolution)
    raise OfflineCacheMiss(f"{what} is not in the verified cache at {root} and ADAPTERS_OFFLINE is set")
