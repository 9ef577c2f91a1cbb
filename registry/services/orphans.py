"""Remove stored objects that no version references (a database commit that failed after
the object was stored). Objects younger than a grace period are left alone: an upload may be
between storing its files and committing its rows."""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from ..models import VersionFile
from ..storage import object_lock, weights_storage

log = logging.getLogger(__name__)
ROOT_PREFIX = "sha256"


def _walk(storage, prefix: str):
    dirs, files = storage.listdir(prefix)
    for name in files:
        yield f"{prefix}/{name}"
    for name in dirs:
        yield from _walk(storage, f"{prefix}/{name}")


def sweep_orphan_objects(now=None, grace_seconds: int | None = None) -> int:
    """Delete unreferenced objects older than the grace period; returns how many were removed."""
    storage = weights_storage()
    now = now or timezone.now()
    grace = timedelta(seconds=settings.HUB_ORPHAN_GRACE_SECONDS if grace_seconds is None else grace_seconds)
    try:
        keys = list(_walk(storage, ROOT_PREFIX))
    except FileNotFoundError:
        return 0
    referenced = set(VersionFile.objects.filter(storage_key__in=keys).values_list("storage_key", flat=True))
    removed = 0
    for key in keys:
        if key in referenced:
            continue
        try:
            if now - storage.get_modified_time(key) < grace:
                continue
        except (FileNotFoundError, NotImplementedError):
            pass
        with transaction.atomic(), object_lock(key):
            if VersionFile.objects.filter(storage_key=key).exists():  # referenced since the listing
                continue
            storage.delete(key)
        removed += 1
        log.info("removed orphan object %s", key)
    return removed
