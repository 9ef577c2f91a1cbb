"""Issue 7 row 10: every error under /api/ is JSON {"code", "detail"}; /api/v1/ answers with an index."""

from __future__ import annotations

import pytest

from registry.api import views_catalog
from registry.api.views_index import ENDPOINTS

from .upload_helpers import (  # noqa: F401
    adapter_files, assert_nothing_left, hub_dirs, maintainer_setup, multipart, post_upload,
)

pytestmark = pytest.mark.django_db


def _json_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
    body = response.json()
    assert body["code"] == code and isinstance(body["detail"], str) and body["detail"]
    return body


@pytest.mark.parametrize(
    "path", ["/api/v1/nonexistent", "/api/v1/organisations/%00", "/api/v1/tasks/a%00b/x", "/api/nothing",
             "/api/v1/adapters/1/versions/1/nothing"],
)
def test_unrouted_api_paths_are_json_404(client, path):
    _json_error(client.get(path), 404, "not_found")


def test_unrouted_page_outside_the_api_stays_html(client):
    response = client.get("/no-such-page")
    assert response.status_code == 404 and not response["Content-Type"].startswith("application/json")


def test_with_debug_on_the_middleware_still_answers_json(client, settings):
    settings.DEBUG = True
    _json_error(client.get("/api/v1/nonexistent"), 404, "not_found")


def test_a_crash_under_the_api_is_json_500(client, monkeypatch):
    def boom(self, request):
        raise RuntimeError("boom")

    monkeypatch.setattr(views_catalog.TaskListView, "get", boom)
    client.raise_request_exception = False
    _json_error(client.get("/api/v1/tasks"), 500, "server_error")


def test_form_field_over_the_memory_limit_on_upload_is_json_413(client, hub_dirs, settings):  # noqa: F811
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10_000
    token = maintainer_setup()[2]
    response = post_upload(client, adapter_files(), token, description="d" * 20_000)
    body = _json_error(response, 413, "too_large")
    assert body["limit"] == 10_000
    assert_nothing_left(hub_dirs)


def test_form_field_over_the_memory_limit_elsewhere_is_json_413(client, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10_000
    token = maintainer_setup()[2]
    body, content_type = multipart({"name": "n" * 20_000}, [])
    response = client.generic("POST", "/api/v1/tokens", body, content_type=content_type,
                              HTTP_AUTHORIZATION=f"Bearer {token}")
    _json_error(response, 413, "too_large")


def test_too_many_form_fields_is_json_400(client, settings):
    settings.DATA_UPLOAD_MAX_NUMBER_FIELDS = 5
    token = maintainer_setup()[2]
    body, content_type = multipart({f"f{i}": "x" for i in range(20)}, [])
    response = client.generic("POST", "/api/v1/tokens", body, content_type=content_type,
                              HTTP_AUTHORIZATION=f"Bearer {token}")
    _json_error(response, 400, "invalid_input")


def test_api_root_is_an_index_of_endpoints(client):
    response = client.get("/api/v1/")
    assert response.status_code == 200
    body = response.json()
    assert body["schema"].endswith("/api/schema/") and body["docs"].endswith("/api/docs/")
    listed = {e["name"]: e for e in body["endpoints"]}
    assert set(listed) == {name for name, *_ in ENDPOINTS}
    for name in ("adapters", "tasks", "organisations"):
        path = listed[name]["path"]
        assert path.startswith("http://testserver/api/v1/")
        assert client.get(path.removeprefix("http://testserver")).status_code == 200


def test_every_listed_path_is_routed(client):
    """A listed path with its placeholders filled never falls through to the 404 handler."""
    filled = {"{id}": "999999", "{version}": "1", "{slug}": "nothing"}
    for _, _, path, _ in ENDPOINTS:
        for placeholder, value in filled.items():
            path = path.replace(placeholder, value)
        response = client.get("/api/v1/" + path)
        assert response.status_code != 404 or "GET /api/v1/ lists them" not in response.json()["detail"], path
