"""File names, pickle detection, size limits and digests of an upload."""

from __future__ import annotations

import hashlib
import unicodedata
from collections.abc import Iterable

from adapters_client.configs.files import (  # the checkpoint format's file names (CONTRACTS.md section 2)
    CONFIG_FILE as ADAPTER_CONFIG, FUSION_CONFIG_FILE as FUSION_CONFIG, FUSION_WEIGHTS_FILE as FUSION_WEIGHTS,
    HEAD_CONFIG_FILE as HEAD_CONFIG, HEAD_WEIGHTS_FILE as HEAD_WEIGHTS, HUB_FILES as ALLOWED_FILENAMES,
    README_FILE as README, WEIGHTS_FILE as ADAPTER_WEIGHTS,
)
from django.conf import settings

from ..errors import DigestMismatch, InvalidFilename, InvalidInput, PickleNotAccepted, TooLarge, TooManyFiles

# Files that must come together: neither or both.
PAIRS = ((HEAD_CONFIG, HEAD_WEIGHTS), (FUSION_CONFIG, FUSION_WEIGHTS))
REQUIRED = (ADAPTER_CONFIG, ADAPTER_WEIGHTS)

# Extensions of pickle-based checkpoint formats (torch.save, pickle, joblib...).
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle", ".joblib", ".npy", ".npz")
_ZIP_MAGIC = b"PK\x03\x04"
_CHUNK = 1024 * 1024


def check_filename(name: str) -> str:
    """Refuse unsafe names (400 invalid_filename), pickle formats (415) and names not on the list (400)."""
    if not isinstance(name, str) or not name:
        raise InvalidFilename("a file has no name", filename=name)
    if "/" in name or "\\" in name or ".." in name or "\x00" in name:
        raise InvalidFilename(f"file name {name!r} contains a path separator, '..' or NUL", filename=name)
    if any(unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") for ch in name):
        raise InvalidFilename(f"file name {name!r} contains a control character", filename=name)
    if name.lower().endswith(PICKLE_SUFFIXES):
        raise PickleNotAccepted(
            f"{name!r} is a pickle-based format; the hub accepts safetensors only "
            "(save with use_safetensors=True, or convert the checkpoint first)",
            filename=name,
        )
    if name not in ALLOWED_FILENAMES:
        raise InvalidFilename(
            f"file name {name!r} is not accepted; allowed: {', '.join(ALLOWED_FILENAMES)}",
            filename=name, allowed=list(ALLOWED_FILENAMES),
        )
    return name


def check_file_set(names: Iterable[str]) -> list[str]:
    """Every name valid, no duplicates, the adapter files present and pairs complete."""
    names = list(names)
    for name in names:
        check_filename(name)
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise InvalidFilename(f"file {name!r} was sent twice", filename=name)
        seen.add(name)
    missing = [n for n in REQUIRED if n not in seen]
    if missing:
        raise InvalidInput(f"missing required file(s): {', '.join(missing)}", code="missing_file", files=missing)
    for a, b in PAIRS:
        if (a in seen) != (b in seen):
            lacking = b if a in seen else a
            raise InvalidInput(f"{a} and {b} go together; {lacking} is missing", code="missing_file",
                               files=[lacking])
    return sorted(names)


def check_limits(sizes: dict[str, int]) -> None:
    """Count, per-file and total size limits (settings.HUB_MAX_FILES / _FILE_BYTES / _UPLOAD_BYTES)."""
    if len(sizes) > settings.HUB_MAX_FILES:
        raise TooManyFiles(f"{len(sizes)} files sent; at most {settings.HUB_MAX_FILES} are accepted",
                           limit=settings.HUB_MAX_FILES)
    for name, size in sizes.items():
        if size > settings.HUB_MAX_FILE_BYTES:
            raise TooLarge(f"{name!r} has {size} bytes; the limit is {settings.HUB_MAX_FILE_BYTES}",
                           filename=name, limit=settings.HUB_MAX_FILE_BYTES)
    total = sum(sizes.values())
    if total > settings.HUB_MAX_UPLOAD_BYTES:
        raise TooLarge(f"the upload has {total} bytes; the limit is {settings.HUB_MAX_UPLOAD_BYTES}",
                       limit=settings.HUB_MAX_UPLOAD_BYTES)


def looks_like_pickle(head: bytes) -> bool:
    """Pickle protocol 2-5 magic, or a zip archive (torch.save's format since 1.6)."""
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return True
    return head.startswith(_ZIP_MAGIC)


def check_not_pickle(path: str, name: str) -> None:
    """Raise 415 pickle_not_accepted when the content is a pickle, whatever its name. Never unpickles."""
    with open(path, "rb") as fh:
        head = fh.read(8)
    if looks_like_pickle(head):
        raise PickleNotAccepted(
            f"{name!r} holds a pickle (or a torch zip archive), not safetensors; pickles are never loaded",
            filename=name,
        )


def sha256_file(path: str) -> tuple[str, int]:
    """The sha256 hex digest and size of a file, read in chunks."""
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size


def version_digest(files: dict[str, str]) -> str:
    """sha256 over the sorted ``name:sha256`` lines: identical uploads have identical digests."""
    lines = "".join(f"{name}:{files[name]}\n" for name in sorted(files))
    return hashlib.sha256(lines.encode("utf-8")).hexdigest()


def check_declared_digests(actual: dict[str, str], declared: dict[str, str] | None) -> None:
    """Compare the sha256 the client declared with the bytes received (400 digest_mismatch)."""
    for name, want in (declared or {}).items():
        if name not in actual:
            raise InvalidInput(f"a sha256 was declared for {name!r}, which was not sent", code="digest_mismatch",
                               filename=name)
        if not isinstance(want, str) or want.lower() != actual[name]:
            raise DigestMismatch(
                f"{name!r}: declared sha256 {want!r} but the received bytes hash to {actual[name]}",
                filename=name, expected=want, got=actual[name],
            )
