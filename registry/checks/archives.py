"""Unpack an uploaded adapter archive (zip or tar[.gz]) member by member, never with extractall.

Every member is checked before a byte is written: its path may not escape (absolute, '..',
backslashes, NUL), it must be a regular file (no links, devices, fifos), its base name must
be an allowed adapter file, and the sizes must stay within the upload limits. Bytes are
counted while they are written, so an archive that lies about its sizes (a zip bomb) is
stopped at the limit. Files land flat in ``dest_dir`` under their base names.
"""

from __future__ import annotations

import bz2  # noqa: F401 - bz2 members fail with OSError, caught below
import lzma
import os
import posixpath
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass

from django.conf import settings

from ..errors import InvalidArchive, PlatformError, RegistryError, TooLarge, TooManyFiles
from .files import check_filename

_CHUNK = 1024 * 1024
# What a damaged or unsupported archive raises while it is read: bad CRC or headers (BadZipFile,
# TarError), a corrupt deflate / lzma / bzip2 stream (zlib.error, LZMAError, OSError), a cut stream
# (EOFError), encryption (RuntimeError), an unknown compression method (NotImplementedError).
_DAMAGED = (zipfile.BadZipFile, tarfile.TarError, zlib.error, lzma.LZMAError, EOFError, RuntimeError,
            NotImplementedError, OSError, ValueError)


@dataclass
class _Member:
    name: str
    size: int
    kind: str  # "file", "dir" or what else it is (refused)
    open: object  # callable returning a binary stream


def _member_name(raw: str, archive: str) -> str | None:
    """The member's base name, or None for a directory entry; refuses escaping paths."""
    if not raw or "\x00" in raw or "\\" in raw or raw.startswith("/") or (len(raw) > 1 and raw[1] == ":"):
        raise InvalidArchive(f"{archive}: member {raw!r} has an absolute or unsafe path", member=raw)
    parts = [p for p in raw.split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise InvalidArchive(f"{archive}: member {raw!r} escapes the archive ('..')", member=raw)
    if not parts or raw.endswith("/"):
        return None
    if len(parts) > 2:
        raise InvalidArchive(f"{archive}: member {raw!r} is nested too deep; put the files at the top "
                             "or in one folder", member=raw)
    return posixpath.basename(raw)


def _zip_members(path: str) -> Iterator[_Member]:
    zf = zipfile.ZipFile(path)
    with zf:
        for info in zf.infolist():
            file_type = stat.S_IFMT(info.external_attr >> 16)  # 0 when the archiver recorded no type
            if info.is_dir():
                kind = "dir"
            elif file_type == stat.S_IFLNK:
                kind = "symbolic link"
            elif file_type not in (0, stat.S_IFREG):
                kind = "special file"
            else:
                kind = "file"
            yield _Member(info.filename, info.file_size, kind, lambda info=info: zf.open(info))


def _tar_members(path: str) -> Iterator[_Member]:
    with tarfile.open(path, mode="r:*") as tf:
        while (info := tf.next()) is not None:
            if info.isdir():
                kind = "dir"
            elif info.issym() or info.islnk():
                kind = "link"
            elif not info.isreg():
                kind = "device or special file"
            else:
                kind = "file"
            yield _Member(info.name, info.size, kind, lambda info=info: tf.extractfile(info))


def archive_kind(path: str) -> str | None:
    """'zip' or 'tar' by content (not by name), else None."""
    with open(path, "rb") as fh:
        head = fh.read(512)
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        return "zip"
    if head.startswith(b"\x1f\x8b") or head.startswith(b"BZh") or head.startswith(b"\xfd7zXZ"):
        return "tar"
    if len(head) >= 262 and head[257:262] == b"ustar":
        return "tar"
    return None


def _copy_limited(src, dest_path: str, name: str, budget: int) -> int:
    """Copy at most min(file limit, budget) bytes; raise TooLarge past it."""
    limit = min(settings.HUB_MAX_FILE_BYTES, budget)
    written = 0
    try:
        fd = os.open(dest_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        out = os.fdopen(fd, "wb")
    except OSError as exc:
        raise PlatformError(f"cannot write the unpacked archive: {exc}", code="temporary_storage_unavailable") from exc
    with out:
        while chunk := src.read(_CHUNK):  # read errors: a damaged member (see _DAMAGED)
            written += len(chunk)
            if written > limit:
                raise TooLarge(f"{name!r} unpacks to more than {limit} bytes", filename=name, limit=limit)
            try:
                out.write(chunk)
            except OSError as exc:
                raise PlatformError(f"cannot write the unpacked archive: {exc}",
                                    code="temporary_storage_unavailable") from exc
    return written


def extract_archive(path: str, archive_name: str, dest_dir: str) -> dict[str, str]:
    """Unpack the adapter files of an archive into ``dest_dir``; returns {file name: path}."""
    kind = archive_kind(path)
    if kind is None:
        raise InvalidArchive(f"{archive_name}: not a zip or tar archive")
    members = _zip_members(path) if kind == "zip" else _tar_members(path)
    extracted: dict[str, str] = {}
    total = 0
    try:
        for member in members:
            base = _member_name(member.name, archive_name)
            if member.kind == "dir" or base is None:
                continue
            if member.kind != "file":
                raise InvalidArchive(f"{archive_name}: member {member.name!r} is a {member.kind}; only regular "
                                     "files are accepted", member=member.name)
            check_filename(base)
            if base in extracted:
                raise InvalidArchive(f"{archive_name}: {base!r} appears twice", member=member.name)
            if len(extracted) >= settings.HUB_MAX_FILES:
                raise TooManyFiles(f"the archive holds more than {settings.HUB_MAX_FILES} files",
                                   limit=settings.HUB_MAX_FILES)
            budget = settings.HUB_MAX_UPLOAD_BYTES - total
            if member.size > min(settings.HUB_MAX_FILE_BYTES, budget):
                raise TooLarge(f"{base!r} is {member.size} bytes unpacked; over the limit", filename=base)
            target = os.path.join(dest_dir, base)
            with member.open() as src:
                total += _copy_limited(src, target, base, budget)
            extracted[base] = target
    except RegistryError:
        raise  # our own refusals (TooLarge, ...) and PlatformError, which is an OSError too
    except _DAMAGED as exc:
        raise InvalidArchive(f"{archive_name}: damaged or unsupported archive ({type(exc).__name__}: {exc})",
                             archive=archive_name) from None
    finally:
        members.close()
    if not extracted:
        raise InvalidArchive(f"{archive_name}: the archive holds no files")
    return extracted
