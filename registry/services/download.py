"""Download one file of a version: authorise, count, then a presigned URL or an open file."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.db.models import F

from ..choices import VersionStatus
from ..errors import NotFound
from ..models import Adapter, VersionFile
from ..permissions import can_view, role_in
from ..storage import download_url, open_for_download

# Downloading this file counts as one download of the adapter (configs and README do not).
COUNTED_FILES = ("adapter.safetensors",)


@dataclass
class Download:
    file: VersionFile
    url: str | None = None  # a presigned URL to redirect to, or None: stream ``handle``
    handle: object = None


def _authorise(user, auth, vf: VersionFile) -> None:
    """404 (never 403) when the caller may not see the adapter or the version is not published.

    Only valid or yanked versions are downloadable by everyone; members of the owning
    organisation may also fetch pending, rejected or errored versions (to inspect them).
    """
    adapter = vf.version.adapter
    if not can_view(user, adapter, auth):
        raise NotFound("no such file")
    if vf.version.status != VersionStatus.VALID and role_in(user, adapter.organisation) is None:
        raise NotFound("no such file")


def get_file(user, auth, file_id: int) -> VersionFile:
    vf = (
        VersionFile.objects.select_related("version__adapter__organisation")
        .filter(pk=file_id)
        .first()
    )
    if vf is None:
        raise NotFound("no such file")
    _authorise(user, auth, vf)
    return vf


def download_file(user, auth, file_id: int, *, expires: int | None = None) -> Download:
    """Authorise and count the download; returns where the bytes come from."""
    vf = get_file(user, auth, file_id)
    expires = expires or settings.HUB_DOWNLOAD_URL_EXPIRY
    url = download_url(vf.storage_key, vf.name, expires)
    handle = None if url else open_for_download(vf.storage_key)
    if vf.name in COUNTED_FILES:
        Adapter.objects.filter(pk=vf.version.adapter_id).update(download_count=F("download_count") + 1)
    return Download(file=vf, url=url, handle=handle)
