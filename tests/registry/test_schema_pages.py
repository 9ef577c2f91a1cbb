"""Issue 7 row 12: the OpenAPI schema declares the paginated objects the list endpoints answer."""

from __future__ import annotations

import pytest
import schemathesis
from django.core.wsgi import get_wsgi_application
from schemathesis.checks import response_schema_conformance, status_code_conformance

from registry.choices import Role

from .factories import make_adapter, make_org, make_task_subtask, make_token, make_user, make_version
from .test_schema_fuzz import keep_connection  # noqa: F401

APP = get_wsgi_application()
SCHEMA = schemathesis.openapi.from_wsgi("/api/schema/?format=json", APP)
PAGED = ["/api/v1/tasks", "/api/v1/organisations", "/api/v1/tokens", "/api/v1/adapters/{id}/versions"]


@pytest.fixture
def catalogue(db, keep_connection):  # noqa: F811
    owner = make_user("pages-owner")
    org = make_org("ukp", member=owner, role=Role.OWNER)
    adapter = make_adapter(org, make_task_subtask("sentiment", "sst-2"), description="a" * 500)
    version = make_version(adapter, "1")
    return {"token": make_token(owner), "adapter": adapter, "file": version.files.first()}


@pytest.mark.parametrize("path", PAGED)
def test_list_schema_is_a_page_object(path):
    response = SCHEMA.raw_schema["paths"][path]["get"]["responses"]["200"]
    ref = response["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
    component = SCHEMA.raw_schema["components"]["schemas"][ref]
    assert component["type"] == "object"
    assert {"count", "next", "previous", "results"} <= set(component["properties"])
    assert component["properties"]["results"]["type"] == "array"


@pytest.mark.parametrize("path", [*PAGED, "/api/v1/", "/api/v1/adapters", "/api/v1/adapters/{id}"])
def test_answers_conform_to_the_schema(catalogue, path):
    operation = SCHEMA[path]["GET"]
    params = {"id": catalogue["adapter"].pk} if "{id}" in path else None
    case = operation.Case(path_parameters=params, headers={"Authorization": f"Bearer {catalogue['token']}"})
    response = case.call()
    assert response.status_code == 200, response.text[:300]
    assert response.json().get("results", [None]) != [], path  # a non-empty page really is checked
    case.validate_response(response, checks=[response_schema_conformance])


def _parameters(catalogue, path: str) -> tuple[dict, dict]:
    """Path and query parameters naming real rows, for ``path``."""
    names = {"{id}": catalogue["adapter"].pk, "{version}": "1", "{file_id}": catalogue["file"].pk}
    values = {name.strip("{}"): value for name, value in names.items() if name in path}
    if "{slug}" in path:
        values["slug"] = "sentiment" if path.startswith("/api/v1/tasks") else "ukp"
    query = {"id": "sentiment/sst-2@ukp"} if path == "/api/v1/resolve" else None
    return values, query


GET_PATHS = [path for path, item in SCHEMA.raw_schema["paths"].items() if "get" in item]


@pytest.mark.parametrize("who", ["anonymous", "token", "bad_token"])
@pytest.mark.parametrize("path", GET_PATHS)
def test_every_read_answer_is_declared_and_conforms(catalogue, path, who):
    """Statuses and bodies of every GET operation match the schema, for every kind of caller."""
    headers = {"token": {"Authorization": f"Bearer {catalogue['token']}"},
               "bad_token": {"Authorization": "Bearer ahub_not-a-token"}}.get(who, {})
    values, query = _parameters(catalogue, path)
    case = SCHEMA[path]["GET"].Case(path_parameters=values or None, query=query, headers=headers)
    response = case.call()
    if response.status_code == 503:  # the factory's file has no stored object: a declared 503
        assert response.headers.get("retry-after") or response.headers.get("Retry-After"), response.text[:300]
    assert response.status_code < 500 or response.status_code == 503, response.text[:300]
    case.validate_response(response, checks=[response_schema_conformance, status_code_conformance])
