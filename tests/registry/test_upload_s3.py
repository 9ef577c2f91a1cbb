"""Upload and download with the weights store on S3 (moto over HTTP); S3 down during an upload."""

from __future__ import annotations

import hashlib

import pytest
import requests
from botocore.config import Config

from registry.models import Adapter, AdapterVersion
from tests.services import free_port

from .upload_helpers import (  # noqa: F401
    adapter_files, assert_nothing_left, hub_dirs, maintainer_setup, post_upload, s3_storage_settings, s3_weights,
)

pytestmark = pytest.mark.django_db


def test_upload_then_download_through_a_presigned_url(client, s3_weights):  # noqa: F811
    _, _, raw = maintainer_setup()
    files = adapter_files()
    response = post_upload(client, files, raw)
    assert response.status_code == 201, response.content
    listed = {f["name"]: f for f in response.json()["files"]}
    expected_keys = sorted(f"sha256/{f['sha256'][:2]}/{f['sha256'][2:4]}/{f['sha256']}" for f in listed.values())
    assert s3_weights["objects"]() == expected_keys
    assert list(s3_weights["tmp"].iterdir()) == []

    weights = listed["adapter.safetensors"]
    redirect = client.get(f"/api/v1/files/{weights['id']}/download", HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert redirect.status_code == 302
    assert redirect["X-Checksum-Sha256"] == weights["sha256"]
    url = redirect["Location"]
    assert "X-Amz-Signature=" in url and "X-Amz-Expires=300" in url
    fetched = requests.get(url, timeout=10)
    assert fetched.status_code == 200
    assert hashlib.sha256(fetched.content).hexdigest() == weights["sha256"]
    assert fetched.content == files["adapter.safetensors"]


def test_s3_down_during_upload_is_503_and_nothing_recorded(client, settings, hub_dirs):  # noqa: F811
    settings.STORAGES = {
        **settings.STORAGES,
        "weights": s3_storage_settings(
            f"http://127.0.0.1:{free_port()}", "weights",
            client_config=Config(retries={"max_attempts": 1, "mode": "standard"}, connect_timeout=1),
        ),
    }
    _, _, raw = maintainer_setup()
    response = post_upload(client, adapter_files(), raw)
    assert response.status_code == 503, response.content
    assert response.json()["code"] == "storage_unavailable"
    assert int(response["Retry-After"]) > 0
    assert Adapter.objects.count() == 0
    assert_nothing_left(hub_dirs)


def test_partial_store_failure_removes_what_this_upload_stored(client, s3_weights, monkeypatch):  # noqa: F811
    """The first object is stored, the second put fails: the first is removed again."""
    from registry import storage

    real_put = storage.put_file
    calls = []

    def flaky_put(path, sha256):
        calls.append(sha256)
        if len(calls) == 2:
            raise storage.StorageUnavailable("the weights store is unavailable (test)")
        return real_put(path, sha256)

    monkeypatch.setattr("registry.services.upload.put_file", flaky_put)
    _, _, raw = maintainer_setup()
    response = post_upload(client, adapter_files(), raw)
    assert response.status_code == 503
    assert len(calls) == 2
    assert_nothing_left(s3_weights, s3_objects=s3_weights["objects"])


def test_database_failure_after_storing_removes_the_objects(client, s3_weights, monkeypatch):  # noqa: F811
    from django.db import OperationalError

    def broken_bulk_create(*args, **kwargs):
        raise OperationalError("connection lost")

    monkeypatch.setattr("registry.models.VersionFile.objects.bulk_create", broken_bulk_create)
    _, _, raw = maintainer_setup()
    response = post_upload(client, adapter_files(), raw)
    assert response.status_code == 503 and response.json()["code"] == "database_unavailable"
    assert AdapterVersion.objects.count() == 0 and Adapter.objects.count() == 0
    assert_nothing_left(s3_weights, s3_objects=s3_weights["objects"])


def _valid_upload(client):
    from registry.choices import VersionStatus

    from .upload_helpers import IDENTIFIER

    _, _, raw = maintainer_setup()
    files = adapter_files()
    response = post_upload(client, files, raw)
    assert response.status_code == 201, response.content
    AdapterVersion.objects.update(status=VersionStatus.VALID)
    return raw, files, IDENTIFIER


def test_resolve_direct_gives_presigned_urls_and_counts_one_download(client, s3_weights):  # noqa: F811
    _, files, identifier = _valid_upload(client)
    plain = client.get("/api/v1/resolve", {"id": identifier}).json()
    assert all("direct_url" not in f for f in plain["files"])
    assert Adapter.objects.get().download_count == 0  # a plain resolve downloads nothing
    answer = client.get("/api/v1/resolve", {"id": identifier, "direct": "1"}).json()
    assert {f["name"] for f in answer["files"]} == set(files)
    for f in answer["files"]:
        assert "X-Amz-Signature=" in f["direct_url"]
        fetched = requests.get(f["direct_url"], timeout=10)
        assert fetched.status_code == 200 and fetched.content == files[f["name"]]
    assert Adapter.objects.get().download_count == 1
    again = client.get("/api/v1/resolve", {"id": identifier, "direct": "1"}).json()  # signed anew, not cached
    assert Adapter.objects.get().download_count == 2
    assert {f["name"]: f["url"] for f in again["files"]} == {f["name"]: f["url"] for f in answer["files"]}


def test_resolve_direct_of_a_private_adapter_is_for_members_only(client, s3_weights):  # noqa: F811
    from registry.choices import Visibility

    raw, files, identifier = _valid_upload(client)
    Adapter.objects.update(visibility=Visibility.PRIVATE)
    anonymous = client.get("/api/v1/resolve", {"id": identifier, "direct": "1"})
    assert anonymous.status_code == 404 and "direct_url" not in anonymous.content.decode()
    member = client.get("/api/v1/resolve", {"id": identifier, "direct": "1"}, HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert member.status_code == 200, member.content
    for f in member.json()["files"]:
        assert requests.get(f["direct_url"], timeout=10).content == files[f["name"]]
    assert Adapter.objects.get().download_count == 1


def test_direct_urls_only_for_a_valid_version(client, s3_weights):  # noqa: F811
    from registry.services.download import direct_urls

    raw, files, identifier = _valid_upload(client)
    answer = client.get("/api/v1/resolve", {"id": identifier}).json()
    assert set(direct_urls(answer)) == {f["id"] for f in answer["files"]}
    for status in ("pending", "rejected", "error"):
        assert direct_urls({**answer, "status": status}) == {}
    assert Adapter.objects.get().download_count == 1  # counted once, for the one answer with URLs
