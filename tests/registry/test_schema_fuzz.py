"""Schemathesis over the app's own OpenAPI schema (/api/schema/), in-process through WSGI.

Every GET operation is fuzzed, anonymously and with a token, against a database holding
public and private adapters; no answer may be a 5xx (CONTRACTS.md section 5).
"""

from __future__ import annotations

import os

import pytest
import schemathesis
from schemathesis import GenerationMode
from schemathesis.checks import response_schema_conformance
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, settings

from registry.choices import Role, Visibility

from .factories import (  # noqa: F401
    clear_cache, make_adapter, make_org, make_task_subtask, make_token, make_user, make_version,
)

APP = get_wsgi_application()
schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", APP).include(method="GET")
# Valid and invalid inputs alike (wrong types, out-of-range values, odd characters such as NUL).
schema.config.generation.update(modes=list(GenerationMode))

FUZZ = settings(
    max_examples=25, deadline=None, database=None,
    # Random exploration on developers' machines; a fixed sequence in CI so that a red run is reproducible.
    derandomize=os.environ.get("CI", "").lower() in {"1", "true", "yes"},
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.filter_too_much],
)


@pytest.fixture
def keep_connection():
    """Like Django's test client: a finished request must not close the test's transaction."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def data(db, keep_connection):
    owner = make_user("fuzz-owner")
    org = make_org("ukp", member=owner, role=Role.OWNER)
    for task, subtask in [("sentiment", "sst-2"), ("nli", "rte")]:
        adapter = make_adapter(org, make_task_subtask(task, subtask), description=f"{task} adapter")
        make_version(adapter, "1")
    hidden = make_adapter(org, make_task_subtask("qa", "squad"), visibility=Visibility.PRIVATE)
    make_version(hidden, "1")
    return {"Authorization": f"Bearer {make_token(owner)}"}


def test_schema_lists_the_read_api():
    paths = set(schema.raw_schema["paths"])
    assert {"/api/v1/adapters", "/api/v1/resolve", "/api/v1/adapters/{id}/versions/{version}"} <= paths


@schema.parametrize()
@FUZZ
def test_no_server_errors(data, case):
    for headers in (None, data):
        response = case.call(headers=headers)
        if response.status_code == 503:  # a dependency is down: allowed, but must say when to retry
            headers = {k.lower(): v for k, v in response.headers.items()}
            assert headers.get("retry-after"), (case.formatted_path, response.text[:500])
            continue
        assert response.status_code < 500, (case.method, case.formatted_path, case.query, response.text[:500])
        # Every documented answer has the documented shape (issue 7: the schema matches every answer).
        case.validate_response(response, checks=[response_schema_conformance])
