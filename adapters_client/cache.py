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
import queue
import shutil
import tempfile
import threading
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


def has_blob(root: Path, sha256: str, size: int) -> bool:
    """``blobs/<sha256>`` is there with its size (blobs are only ever renamed in once verified)."""
    return _blob_ok(root / "blobs" / sha256, size)


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
    """Write the response's body to ``path`` (on disk when this returns); (sha256, bytes written).

    Two helper threads keep the extra work off the transfer's path: one hashes the chunks as they
    arrive (hashlib releases the GIL on large buffers), one flushes what is written every
    SYNC_EVERY bytes, so the final flush before the rename has only the tail left to write."""
    if size <= SMALL_FILE:
        return _stream_small(path, response, size)
    hasher, written = hashlib.sha256(), 0
    chunks: queue.Queue = queue.Queue(maxsize=16)

    def hash_chunks():
        while (chunk := chunks.get()) is not None:
            hasher.update(chunk)

    worker = threading.Thread(target=hash_chunks, name="adapters-sha256", daemon=True)
    worker.start()
    bar = tqdm(total=size, unit="B", unit_scale=True, desc=name or "download", disable=not progress or None,
               leave=False)
    try:
        with open(path, "wb") as out, _Flusher(out.fileno()) as flusher:
            for chunk in response.iter_content(CHUNK):
                if not chunk:
                    continue
                out.write(chunk)
                chunks.put(chunk)
                if (written + len(chunk)) // SYNC_EVERY != written // SYNC_EVERY:
                    out.flush()
                    flusher.nudge()
                written += len(chunk)
                bar.update(len(chunk))
                if written > size:  # never store more than the hub promised
                    break
            out.flush()
            flusher.finish()
            _sync(out.fileno())
    finally:
        chunks.put(None)
        worker.join()
        bar.close()
        close = getattr(response, "close", None)
        if close:
            close()
    return hasher.hexdigest(), written


SYNC_EVERY = 4 * 1024 * 1024
SMALL_FILE = 256 * 1024  # configs, heads, READMEs: hashed in line, no helper threads


def _stream_small(path: Path, response, size: int) -> tuple[str, int]:
    hasher, written = hashlib.sha256(), 0
    try:
        with open(path, "wb") as out:
            for chunk in response.iter_content(CHUNK):
                out.write(chunk)
                hasher.update(chunk)
                written += len(chunk)
                if written > size:
                    break
            out.flush()
            _sync(out.fileno())
    finally:
        close = getattr(response, "close", None)
        if close:
            close()
    return hasher.hexdigest(), written


class _Flusher:
    """A thread that flushes a file's written data to disk whenever ``nudge``d, overlapped with the
    writes that follow."""

    def __init__(self, fd: int):
        self.fd, self.wanted, self.stopping = fd, threading.Event(), False
        self.thread = threading.Thread(target=self._run, name="adapters-flush", daemon=True)

    def __enter__(self) -> "_Flusher":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.finish()

    def _run(self) -> None:
        while True:
            self.wanted.wait()
            self.wanted.clear()
            if self.stopping:
                return
            try:
                _sync(self.fd)
            except OSError:  # the final flush, in the writing thread, reports any error
                return

    def nudge(self) -> None:
        self.wanted.set()

    def finish(self) -> None:
        if self.thread.is_alive():
            self.stopping = True
            self.wanted.set()
            self.thread.join()


def _sync(fd: int) -> None:
    """The file's data (and its size) on disk before it is renamed into place."""
    if hasattr(os, "fdatasync"):
        os.fdatasync(fd)
    else:  # macOS, Windows
        os.fsync(fd)


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
