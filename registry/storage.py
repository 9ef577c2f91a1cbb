"""The weights store: content-addressed objects in the storage aliased "weights".

The backend (filesystem or S3) is chosen by settings.STORAGES["weights"], never in code.
Every store failure surfaces as registry.errors.StorageUnavailable (503 with Retry-After).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import re
from contextlib import contextmanager

from django.core.files import File
from django.core.files.storage import storages
from django.db import connection

from .errors import StorageUnavailable
from .localcache import LocalCache

log = logging.getLogger(__name__)

_SHA256 = re.compile(r"[0-9a-f]{64}\Z")


def _store_exceptions() -> tuple[type[BaseException], ...]:
    try:
        from botocore.exceptions import BotoCoreError, ClientError
    except ImportError:  # pragma: no cover - boto3 is a hub dependency
        return (OSError,)
    return (BotoCoreError, ClientError, OSError)


@contextlib.contextmanager
def store_errors(action: str):
    """Map the store's own exceptions to StorageUnavailable."""
    try:
        yield
    except StorageUnavailable:
        raise
    except _store_exceptions() as exc:
        log.warning("weights store failed to %s: %s", action, exc)
        raise StorageUnavailable(f"the weights store is unavailable ({action}); try again later") from exc


def weights_storage():
    """The storage behind the "weights" alias."""
    return storages["weights"]


def key_for(sha256: str) -> str:
    """``sha256/ab/cd/<hex>``: the key of an object is its content's sha256."""
    sha256 = sha256.lower()
    if not _SHA256.match(sha256):
        raise ValueError(f"not a sha256 hex digest: {sha256!r}")
    return f"sha256/{sha256[:2]}/{sha256[2:4]}/{sha256}"


def put_file(path: str, sha256: str) -> tuple[str, bool]:
    """Store the file at ``path`` under its content key; returns (key, created). Idempotent."""
    key = key_for(sha256)
    storage = weights_storage()
    with store_errors("store an object"):
        if storage.exists(key):
            return key, False
        with open(path, "rb") as fh:
            saved = storage.save(key, File(fh, name=key))
        if saved != key:
            # Another upload stored the same content first; the backend picked a new name.
            storage.delete(saved)
            return key, False
    return key, True


def delete_object(key: str) -> bool:
    """Best-effort removal (used to undo a failed upload); False when it could not be removed."""
    try:
        with store_errors("delete an object"):
            weights_storage().delete(key)
        return True
    except StorageUnavailable:
        return False


def object_exists(key: str) -> bool:
    with store_errors("look up an object"):
        return weights_storage().exists(key)


def open_for_download(key: str):
    """Open a stored object for reading (binary).

    A recorded file whose object is gone is our fault, never the user's: 503 with its own code,
    logged as an error for the operators."""
    try:
        return weights_storage().open(key, "rb")
    except FileNotFoundError:
        log.error("stored object %s is referenced by a version but missing from the weights store", key)
        raise StorageUnavailable("this file is temporarily unavailable from the weights store; try again later",
                                 code="object_missing") from None
    except Exception:  # noqa: BLE001 - mapped by store_errors below
        with store_errors("open an object"):
            raise


def supports_presigned_urls(storage=None) -> bool:
    storage = storage if storage is not None else weights_storage()
    return bool(getattr(storage, "querystring_auth", False)) and hasattr(storage, "bucket_name")


def download_url(key: str, filename: str, expires: int) -> str | None:
    """A short-lived presigned URL when the store signs URLs (S3); None when the hub must stream.

    Signing costs milliseconds in boto3, so a URL is reused for the first quarter of its life (every
    URL handed out stays valid for at least three quarters of ``expires``)."""
    storage = weights_storage()
    if not supports_presigned_urls(storage):
        return None
    where = (getattr(storage, "endpoint_url", None), getattr(storage, "custom_domain", None), storage.bucket_name)
    cache_key = (*where, key, filename, expires)
    url = _signed.get(cache_key)
    if url is None:
        safe_name = re.sub(r'[^A-Za-z0-9._-]', "_", filename)
        params = {"ResponseContentDisposition": f'attachment; filename="{safe_name}"'}
        with store_errors("sign a download URL"):
            url = storage.url(key, parameters=params, expire=expires)
        _signed.set(cache_key, url, expires / 4)
    return url


_signed = LocalCache()  # (store, key, file name, expiry) -> a signed URL, for a quarter of its life


@contextmanager
def object_lock(key: str):
    """Serialise "is this object referenced? then delete it" against "reference this object".

    A transaction-scoped Postgres advisory lock on the key, taken by the upload before it records
    a VersionFile and by every deleter before it checks references: an upload can never record a
    reference to an object a cleanup is removing. Must run inside ``transaction.atomic()``. Other
    databases (the embedded SQLite mode, one process) need no lock.
    """
    if connection.vendor == "postgresql":
        lock_id = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big", signed=True)
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [lock_id])
    yield
