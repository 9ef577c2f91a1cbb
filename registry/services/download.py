"""Download one file of a version: authorise, count, then a presigned URL or an open file."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F

from ..choices import VersionStatus
from ..errors import NotFound
from ..models import Adapter, VersionFile
from ..permissions import can_view, role_in
from ..storage import download_url, key_for, open_for_download, supports_presigned_urls

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


def count_download_quickly(adapter_id: int) -> None:
    """One more download of an adapter, committed without waiting for the database's log flush
    (PostgreSQL ``synchronous_commit = off`` for this one transaction): a counter is the one write
    where losing the last moments' increments in a database crash is acceptable, and the answer
    does not wait the milliseconds of a flush."""
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL synchronous_commit TO OFF")
        Adapter.objects.filter(pk=adapter_id).update(download_count=F("download_count") + 1)


def direct_urls(answer: dict, *, expires: int | None = None) -> dict[int, str]:
    """{file id: presigned URL} for the files of a resolve answer, with the download counted here.

    ``answer`` is what ``resolve`` gave this caller (so the adapter is visible to them); only a
    valid version's files are signed, the rule of ``_authorise`` for everyone. Saves the client one
    request (and one redirect) per file when it asks for them (``resolve?direct=1``). Empty when the
    store does not sign URLs (the filesystem store streams through the hub): the client then uses
    each file's ``url``, which authorises and counts as before."""
    if answer.get("status") != VersionStatus.VALID or not supports_presigned_urls():
        return {}
    expires = expires or settings.HUB_DOWNLOAD_URL_EXPIRY
    urls = {}
    for f in answer.get("files", []):
        url = download_url(key_for(f["sha256"]), f["name"], expires)
        if url is None:
            return {}
        urls[f["id"]] = url
    if any(f["name"] in COUNTED_FILES for f in answer["files"]):
        count_download_quickly(answer["adapter_id"])
    return urls


def download_file(user, auth, file_id: int, *, expires: int | None = None) -> Download:
    """Authorise and count the download; returns where the bytes come from."""
    vf = get_file(user, auth, file_id)
    expires = expires or settings.HUB_DOWNLOAD_URL_EXPIRY
    url = download_url(vf.storage_key, vf.name, expires)
    handle = None if url else open_for_download(vf.storage_key)
    if vf.name in COUNTED_FILES:
        Adapter.objects.filter(pk=vf.version.adapter_id).update(download_count=F("download_count") + 1)
    return Download(file=vf, url=url, handle=handle)
