"""Adapter detail, versions, owner actions (yank, default version, delete), tasks and organisations."""

from __future__ import annotations

import pytest

from registry.choices import Role, VersionStatus, Visibility
from registry.models import Adapter, AdapterVersion, VersionFile

from .factories import clear_cache, make_adapter, make_org, make_task_subtask, make_user, make_version  # noqa: F401

pytestmark = pytest.mark.django_db


@pytest.fixture
def owned(client):
    owner = make_user("owner")
    org = make_org("ukp", member=owner, role=Role.OWNER)
    adapter = make_adapter(org, make_task_subtask("sentiment", "sst-2"), description="sst adapter")
    make_version(adapter, "1", age_minutes=10)
    make_version(adapter, "2", age_minutes=5, validation_report={"checks": [{"code": "ok"}]})
    make_version(adapter, "3", status=VersionStatus.REJECTED, error_code="shape_mismatch")
    client.force_login(owner)
    return adapter


def post(client, path, body=None):
    return client.post(path, body or {}, content_type="application/json")


def test_detail(client, owned):
    body = client.get(f"/api/v1/adapters/{owned.pk}").json()
    assert body["identifier"] == "sentiment/sst-2@ukp" and body["default_version"] == "2"
    assert body["versions"] == ["3", "2", "1"] and body["config"] == {"architecture": "seq_bn"}
    assert client.get("/api/v1/adapters/999999").status_code == 404


def test_versions_list_and_detail(client, owned):
    listed = client.get(f"/api/v1/adapters/{owned.pk}/versions").json()
    assert [(v["version"], v["status"]) for v in listed["results"]] == [
        ("3", "rejected"), ("2", "valid"), ("1", "valid")
    ]
    detail = client.get(f"/api/v1/adapters/{owned.pk}/versions/2").json()
    assert detail["is_default"] is True and detail["validation_report"] == {"checks": [{"code": "ok"}]}
    file_row = VersionFile.objects.get(version__adapter=owned, version__version="2")
    assert detail["files"] == [{
        "id": file_row.pk, "name": "adapter.safetensors", "size": file_row.size, "sha256": file_row.sha256,
        "url": f"http://testserver/api/v1/files/{file_row.pk}/download",
    }]
    assert client.get(f"/api/v1/adapters/{owned.pk}/versions/9").json()["code"] == "version_not_found"


def test_yank_hides_from_default_and_unyank_restores(client, owned):
    response = post(client, f"/api/v1/adapters/{owned.pk}/versions/2/yank", {"reason": "bad labels"})
    assert response.status_code == 200 and response.json()["yanked"] is True
    assert AdapterVersion.objects.get(adapter=owned, version="2").yank_reason == "bad labels"
    assert client.get("/api/v1/resolve", {"id": "sentiment/sst-2@ukp"}).json()["version"] == "1"
    assert post(client, f"/api/v1/adapters/{owned.pk}/versions/2/unyank").status_code == 200
    assert client.get("/api/v1/resolve", {"id": "sentiment/sst-2@ukp"}).json()["version"] == "2"


def test_yank_of_the_owner_default_clears_it(client, owned):
    assert post(client, f"/api/v1/adapters/{owned.pk}/default-version", {"version": "1"}).json()[
        "default_version"] == "1"
    post(client, f"/api/v1/adapters/{owned.pk}/versions/1/yank")
    owned.refresh_from_db()
    assert owned.default_version is None
    assert client.get(f"/api/v1/adapters/{owned.pk}").json()["default_version"] == "2"


def test_set_default_version(client, owned):
    response = post(client, f"/api/v1/adapters/{owned.pk}/default-version", {"version": "1"})
    assert response.status_code == 200 and response.json()["default_version"] == "1"
    assert client.get("/api/v1/resolve", {"id": "sentiment/sst-2@ukp"}).json()["version"] == "1"
    rejected = post(client, f"/api/v1/adapters/{owned.pk}/default-version", {"version": "3"})
    assert rejected.status_code == 409 and rejected.json()["code"] == "version_not_valid"
    missing = post(client, f"/api/v1/adapters/{owned.pk}/default-version", {"version": "7"})
    assert missing.status_code == 404
    back = post(client, f"/api/v1/adapters/{owned.pk}/default-version", {"version": None})
    assert back.json()["default_version"] == "2"
    assert post(client, f"/api/v1/adapters/{owned.pk}/default-version", {}).json()["code"] == "invalid_input"


def test_delete_public_is_409_private_is_gone(client, owned):
    response = client.delete(f"/api/v1/adapters/{owned.pk}")
    assert response.status_code == 409 and response.json()["code"] == "public_adapter_not_deletable"
    assert Adapter.objects.filter(pk=owned.pk).exists()
    Adapter.objects.filter(pk=owned.pk).update(visibility=Visibility.PRIVATE)
    assert client.delete(f"/api/v1/adapters/{owned.pk}").status_code == 204
    assert not Adapter.objects.filter(pk=owned.pk).exists()
    assert not AdapterVersion.objects.filter(adapter_id=owned.pk).exists()
    assert client.get(f"/api/v1/adapters/{owned.pk}").status_code == 404


def test_tasks_and_subtasks(client):
    make_task_subtask("sentiment", "sst-2", metric_name="accuracy")
    make_task_subtask("sentiment", "imdb")
    make_task_subtask("nli", "rte")
    assert [t["slug"] for t in client.get("/api/v1/tasks").json()["results"]] == ["nli", "sentiment"]
    task = client.get("/api/v1/tasks/sentiment").json()
    assert [s["slug"] for s in task["subtasks"]] == ["imdb", "sst-2"]
    assert task["subtasks"][1]["metric_name"] == "accuracy"
    assert client.get("/api/v1/tasks/nope").json()["code"] == "not_found"


def test_organisations_count_public_adapters_only(client):
    org = make_org("ukp", name="UKP Lab")
    make_adapter(org, make_task_subtask("sentiment", "sst-2"))
    make_adapter(org, make_task_subtask("nli", "rte"))
    make_adapter(org, make_task_subtask("qa", "squad"), visibility=Visibility.PRIVATE)
    make_org("empty")
    listed = client.get("/api/v1/organisations").json()["results"]
    assert [(o["slug"], o["public_adapters"]) for o in listed] == [("empty", 0), ("ukp", 2)]
    detail = client.get("/api/v1/organisations/ukp").json()
    assert detail["name"] == "UKP Lab" and detail["public_adapters"] == 2
    assert client.get("/api/v1/organisations/nope").status_code == 404
