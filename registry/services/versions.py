"""Owner actions on published adapters: yank / unyank a version, set the default version, delete."""

from __future__ import annotations

from adapters_client.rules import ErrorCodes
from django.db import transaction

from ..choices import VersionStatus, Visibility
from ..errors import InvalidInput, NotFound, PublicAdapterDelete, VersionNotDefaultable
from ..models import Adapter, AdapterVersion

MAX_REASON = 500


def get_version(adapter: Adapter, version: str) -> AdapterVersion:
    found = adapter.versions.filter(version=version).first()
    if found is None:
        raise NotFound(f"{adapter.identifier} has no version '{version}'", code=ErrorCodes.VERSION_NOT_FOUND)
    return found


@transaction.atomic
def yank(adapter: Adapter, version: str, reason: str = "") -> AdapterVersion:
    """Hide a version from default resolution; pinned downloads keep working (with a warning)."""
    reason = (reason or "").strip()
    if len(reason) > MAX_REASON:
        raise InvalidInput(f"the reason is longer than {MAX_REASON} characters", field="reason")
    found = get_version(Adapter.objects.select_for_update().get(pk=adapter.pk), version)
    found.yanked = True
    found.yank_reason = reason
    found.save(update_fields=["yanked", "yank_reason", "updated_at"])
    if adapter.default_version_id == found.pk:  # the owner's choice no longer resolves: fall back
        Adapter.objects.filter(pk=adapter.pk).update(default_version=None)
        adapter.default_version = None
    return found


@transaction.atomic
def unyank(adapter: Adapter, version: str) -> AdapterVersion:
    found = get_version(adapter, version)
    found.yanked = False
    found.yank_reason = ""
    found.save(update_fields=["yanked", "yank_reason", "updated_at"])
    return found


@transaction.atomic
def set_default_version(adapter: Adapter, version: str | None) -> Adapter:
    """Pin the default to a valid, non-yanked version; ``None`` goes back to "newest valid"."""
    locked = Adapter.objects.select_for_update().get(pk=adapter.pk)
    if version is None:
        locked.default_version = None
    else:
        found = get_version(locked, version)
        if found.status != VersionStatus.VALID or found.yanked:
            state = "yanked" if found.yanked else found.status
            raise VersionNotDefaultable(
                f"version '{version}' is {state}; only a valid, non-yanked version can be the default"
            )
        locked.default_version = found
    locked.save(update_fields=["default_version", "updated_at"])
    return locked


@transaction.atomic
def delete_adapter(adapter: Adapter) -> list[str]:
    """Delete a private adapter with its versions; returns the storage keys of its files.

    Public adapters stay: others may depend on them (yank their versions instead).
    """
    if adapter.visibility != Visibility.PRIVATE:
        raise PublicAdapterDelete(
            f"{adapter.identifier} is public and cannot be deleted; yank its versions instead"
        )
    keys = list(
        AdapterVersion.objects.filter(adapter=adapter).values_list("files__storage_key", flat=True).distinct()
    )
    Adapter.objects.filter(pk=adapter.pk).update(default_version=None)
    adapter.delete()
    return [k for k in keys if k]
