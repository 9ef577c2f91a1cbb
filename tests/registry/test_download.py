"""GET /api/v1/files/<id>/download on the filesystem store: authorisation, streaming, counting."""

from __future__ import annotations

import hashlib

import pytest

from registry.choices import TokenScope, VersionStatus, Visibility
from registry.models import Adapter, AdapterVersion, VersionFile
from registry.tokens import create_token

from .upload_helpers import adapter_files, hub_dirs, maintainer_setup, make_user, post_upload  # noqa: F401

pytestmark = pytest.mark.django_db


@pytest.fixture
def uploaded(client, hub_dirs):  # noqa: F811
    """A public version uploaded by a maintainer of 'ukp', then marked valid."""
    _, _, raw = maintainer_setup()
    files = adapter_files()
    response = post_upload(client, files, raw)
    assert response.status_code == 201
    AdapterVersion.objects.update(status=VersionStatus.VALID)
    ids = {f["name"]: f["id"] for f in response.json()["files"]}
    return {"token": raw, "files": files, "ids": ids}


def _url(file_id: int) -> str:
    return f"/api/v1/files/{file_id}/download"


def test_streams_the_bytes_with_length_and_checksum(client, uploaded):
    response = client.get(_url(uploaded["ids"]["adapter.safetensors"]))
    assert response.status_code == 200
    content = b"".join(response.streaming_content)
    assert content == uploaded["files"]["adapter.safetensors"]
    assert response["Content-Length"] == str(len(content))
    assert response["X-Checksum-Sha256"] == hashlib.sha256(content).hexdigest()
    assert 'filename="adapter.safetensors"' in response["Content-Disposition"]


def test_download_count_uses_the_weights_file_only(client, uploaded):
    for _ in range(2):
        b"".join(client.get(_url(uploaded["ids"]["adapter.safetensors"])).streaming_content)
    b"".join(client.get(_url(uploaded["ids"]["adapter_config.json"])).streaming_content)
    assert Adapter.objects.get().download_count == 2


def test_unknown_file_is_404(client, uploaded):
    missing = VersionFile.objects.order_by("-pk").first().pk + 1000
    response = client.get(_url(missing))
    assert response.status_code == 404 and response.json()["code"] == "not_found"


def test_private_adapter_is_404_for_outsiders_and_served_to_members(client, uploaded):
    Adapter.objects.update(visibility=Visibility.PRIVATE)
    file_id = uploaded["ids"]["adapter.safetensors"]
    anonymous = client.get(_url(file_id))
    _, outsider = create_token(make_user("eve"), scope=TokenScope.READ)
    stranger = client.get(_url(file_id), HTTP_AUTHORIZATION=f"Bearer {outsider}")
    missing = client.get(_url(file_id + 1000))
    for response in (anonymous, stranger):
        assert response.status_code == 404
        assert response.json() == missing.json()  # no hint that it exists
    member = client.get(_url(file_id), HTTP_AUTHORIZATION=f"Bearer {uploaded['token']}")
    assert member.status_code == 200
    assert b"".join(member.streaming_content) == uploaded["files"]["adapter.safetensors"]
    assert Adapter.objects.get().download_count == 1


@pytest.mark.parametrize("status", [VersionStatus.PENDING, VersionStatus.REJECTED])
def test_unpublished_versions_only_for_the_organisation(client, uploaded, status):
    AdapterVersion.objects.update(status=status)
    file_id = uploaded["ids"]["adapter.safetensors"]
    assert client.get(_url(file_id)).status_code == 404
    member = client.get(_url(file_id), HTTP_AUTHORIZATION=f"Bearer {uploaded['token']}")
    assert member.status_code == 200


def test_store_failure_is_503(client, uploaded, monkeypatch):
    def broken(key):
        from registry.errors import StorageUnavailable

        raise StorageUnavailable("the weights store is unavailable (test)")

    monkeypatch.setattr("registry.services.download.open_for_download", broken)
    response = client.get(_url(uploaded["ids"]["adapter.safetensors"]))
    assert response.status_code == 503 and response["Retry-After"]
    assert Adapter.objects.get().download_count == 0


def test_missing_object_is_503_with_its_own_code_not_a_500(client, uploaded):
    from registry import storage

    vf = VersionFile.objects.get(name="adapter.safetensors")
    assert storage.delete_object(vf.storage_key)
    response = client.get(_url(vf.pk))
    assert response.status_code == 503
    assert response.json()["code"] == "object_missing"
    assert int(response["Retry-After"]) > 0


def test_resolve_direct_on_the_filesystem_store_adds_nothing(client, uploaded):
    from .upload_helpers import IDENTIFIER

    answer = client.get("/api/v1/resolve", {"id": IDENTIFIER, "direct": "1"})
    assert answer.status_code == 200, answer.content
    assert all("direct_url" not in f and f["url"].endswith("/download") for f in answer.json()["files"])
    assert Adapter.objects.get().download_count == 0  # counted when the files are fetched through the hub


def test_resolve_direct_refuses_a_non_boolean(client, uploaded):
    from .upload_helpers import IDENTIFIER

    answer = client.get("/api/v1/resolve", {"id": IDENTIFIER, "direct": "maybe"})
    assert answer.status_code == 400 and answer.json()["code"] == "invalid_input"
