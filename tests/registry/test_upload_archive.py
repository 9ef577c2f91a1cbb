"""Uploading one archive instead of separate files: same checks, unpacked in a private temp dir."""

from __future__ import annotations

import io
import zipfile

import pytest

from registry.models import AdapterVersion, VersionFile

from .upload_helpers import (  # noqa: F401
    UPLOAD_URL, adapter_files, assert_nothing_left, hub_dirs, maintainer_setup, multipart,
)

pytestmark = pytest.mark.django_db


def _zip_bytes(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, content in members.items():
            zf.writestr(name, content)
    return buffer.getvalue()


def _post_archive(client, token, archive: bytes, extra_files=(), field="archive"):
    form = {"identifier": "sentiment/sst-2@ukp", "model_name": "bert-base-uncased", "version": "1"}
    body, content_type = multipart(form, list(extra_files))
    boundary = content_type.split("boundary=")[1]
    part = (f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="sst-2.zip"\r\n'
            "Content-Type: application/zip\r\n\r\n").encode() + archive + b"\r\n"
    body = part + body
    return client.generic("POST", UPLOAD_URL, body, content_type=content_type,
                          HTTP_AUTHORIZATION=f"Bearer {token}")


def test_archive_upload(client, hub_dirs):  # noqa: F811
    _, _, raw = maintainer_setup()
    files = adapter_files()
    response = _post_archive(client, raw, _zip_bytes({f"sst-2/{n}": c for n, c in files.items()}))
    assert response.status_code == 201, response.content
    assert sorted(VersionFile.objects.values_list("name", flat=True)) == sorted(files)
    assert list(hub_dirs["tmp"].iterdir()) == []


@pytest.mark.parametrize(
    "members, status, code",
    [({"../README.md": b"x"}, 400, "invalid_archive"),
     ({"pytorch_adapter.bin": b"\x80\x04"}, 415, "pickle_not_accepted"),
     ({"adapter.safetensors": b"\x80\x04pickled"}, 415, "pickle_not_accepted")],
)
def test_hostile_archive_leaves_nothing(client, hub_dirs, members, status, code):  # noqa: F811
    _, _, raw = maintainer_setup()
    response = _post_archive(client, raw, _zip_bytes({**adapter_files(), **members}))
    assert response.status_code == status and response.json()["code"] == code
    assert_nothing_left(hub_dirs)


def test_archive_and_files_together_are_400(client, hub_dirs):  # noqa: F811
    _, _, raw = maintainer_setup()
    response = _post_archive(client, raw, _zip_bytes(adapter_files()), extra_files=adapter_files().items())
    assert response.status_code == 400 and response.json()["field"] == "archive"
    assert AdapterVersion.objects.count() == 0
    assert_nothing_left(hub_dirs)


def test_unknown_file_field_is_400(client, hub_dirs):  # noqa: F811
    _, _, raw = maintainer_setup()
    response = _post_archive(client, raw, _zip_bytes(adapter_files()), field="weights")
    assert response.status_code == 400 and response.json()["field"] == "weights"
    assert_nothing_left(hub_dirs)
