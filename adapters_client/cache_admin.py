"""Looking after the cache (``adapters-client cache ls|prune|verify``): list, free space, re-check hashes.

Run ``prune`` when no download is in progress: a blob fetched a moment ago is only referenced once its
download has finished and its ref is saved.
"""

from __future__ import annotations

import hashlib
import shutil
import time
from pathlib import Path

from .cache import CHUNK, all_refs, snapshot_ok

STALE_TMP_SECONDS = 3600  # a temporary file this old belongs to a killed client


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def list_cached(root: Path) -> list[dict]:
    """One entry per cached adapter version (snapshot), newest use first."""
    by_digest: dict = {}
    for ref, resolution in all_refs(root):
        digest = resolution.get("digest")
        if not isinstance(digest, str):
            continue
        entry = by_digest.setdefault(digest, {
            "digest": digest, "identifier": resolution.get("identifier"), "model_name": resolution.get("model_name"),
            "method": resolution.get("method"), "version": resolution.get("version"),
            "files": [f.get("name") for f in resolution.get("files", [])],
            "size": sum(int(f.get("size", 0)) for f in resolution.get("files", [])),
            "path": str(root / "snapshots" / digest), "complete": snapshot_ok(root, resolution) is not None,
            "last_used": ref.stat().st_mtime, "refs": 0,
        })
        entry["refs"] += 1
    for folder in sorted((root / "snapshots").glob("*")):
        if folder.is_dir() and folder.name not in by_digest:
            by_digest[folder.name] = {"digest": folder.name, "identifier": None, "path": str(folder), "refs": 0,
                                      "complete": False, "size": sum(_size(p) for p in folder.iterdir()),
                                      "files": sorted(p.name for p in folder.iterdir()), "last_used": None}
    return sorted(by_digest.values(), key=lambda e: e.get("last_used") or 0, reverse=True)


def prune(root: Path, *, everything: bool = False, older_than_days: float | None = None,
          dry_run: bool = False) -> dict:
    """Remove refs (all, or unused for ``older_than_days``), then snapshots and blobs no ref needs,
    and temporary files left by killed clients. Returns what was (or would be) removed."""
    now = time.time()
    removed = {"refs": [], "snapshots": [], "blobs": [], "tmp": [], "bytes": 0}
    kept = []
    for ref, resolution in all_refs(root):
        too_old = older_than_days is not None and now - ref.stat().st_mtime > older_than_days * 86400
        if everything or too_old:
            removed["refs"].append(ref.name)
            _remove(ref, dry_run)
        else:
            kept.append(resolution)
    digests = {r.get("digest") for r in kept}
    blobs = {f.get("sha256") for r in kept for f in r.get("files", [])}
    for folder in (root / "snapshots").glob("*"):
        if folder.name not in digests:
            removed["snapshots"].append(folder.name)
            _remove(folder, dry_run)
    for blob in (root / "blobs").glob("*"):
        if blob.name not in blobs:
            removed["blobs"].append(blob.name)
            removed["bytes"] += _size(blob)
            _remove(blob, dry_run)
    for tmp in (root / "tmp").glob("*"):
        try:
            stale = now - tmp.stat().st_mtime > STALE_TMP_SECONDS
        except OSError:
            continue
        if stale:
            removed["tmp"].append(tmp.name)
            _remove(tmp, dry_run)
    removed["dry_run"] = dry_run
    return removed


def _remove(path: Path, dry_run: bool) -> None:
    if dry_run:
        return
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _sha256(path: Path, seen: dict) -> str:
    """The file's sha256, hashed once per inode (snapshot files are hard links of blobs)."""
    stat = path.stat()
    key = (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns)
    if key not in seen:
        hasher = hashlib.sha256()
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(CHUNK), b""):
                hasher.update(chunk)
        seen[key] = hasher.hexdigest()
    return seen[key]


def verify(root: Path, *, repair: bool = True) -> dict:
    """Re-hash every blob and every cached snapshot file; with ``repair`` the corrupt ones are removed
    (a later download fetches them again). ``corrupt`` lists what failed."""
    seen: dict = {}
    result = {"blobs": 0, "snapshots": 0, "corrupt": [], "repaired": repair}
    for blob in sorted((root / "blobs").glob("*")):
        result["blobs"] += 1
        got = _sha256(blob, seen)
        if got != blob.name:
            result["corrupt"].append({"path": str(blob), "expected": blob.name, "got": got})
            _remove(blob, not repair)
    checked = set()
    for _, resolution in all_refs(root):
        digest = resolution.get("digest")
        folder = root / "snapshots" / str(digest)
        if digest in checked or not folder.is_dir():
            continue
        checked.add(digest)
        result["snapshots"] += 1
        for f in resolution.get("files", []):
            path = folder / str(f.get("name"))
            got = _sha256(path, seen) if path.is_file() else None
            if got != f.get("sha256"):
                result["corrupt"].append({"path": str(path), "expected": f.get("sha256"), "got": got})
                _remove(folder, not repair)
                break
    return result
