"""Schemathesis over every write operation of the API (POST, DELETE), in-process through WSGI.

test_schema_fuzz.py fuzzes the reads. Here each generated write is sent three times: without
credentials, with an owner's upload token, and with that token aimed at real objects (the path
parameters replaced by the ids of an existing adapter, version and token), so that the fuzzed
bodies reach the views' own checks and not only the 404 for an unknown id. Then one pass of
well-formed writes (a real upload, its identical repeat, a conflicting one, yank, unyank,
default version, token create and revoke, adapter delete) checks the success answers' shapes.
Every answer must be below 500 and conform to the documented schema; uploads leave no
temporary file behind.
"""

from __future__ import annotations

import json
import os

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error, response_schema_conformance
from schemathesis.core.failures import FailureGroup
from werkzeug.test import Client

from registry.choices import Role, TokenScope, Visibility
from registry.models import AdapterVersion, ApiToken

from .factories import (  # noqa: F401 - clear_cache is an autouse fixture
    clear_cache, make_adapter, make_org, make_task_subtask, make_token, make_user, make_version,
)
from .upload_helpers import adapter_files, multipart

APP = get_wsgi_application()
schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", APP).exclude(method="GET")
schema.config.generation.update(modes=list(GenerationMode))
CHECKS = [not_a_server_error, response_schema_conformance]
WRITES = {
    ("POST", "/api/v1/adapters/upload"), ("POST", "/api/v1/adapters/{id}/versions/{version}/yank"),
    ("POST", "/api/v1/adapters/{id}/versions/{version}/unyank"), ("POST", "/api/v1/adapters/{id}/default-version"),
    ("DELETE", "/api/v1/adapters/{id}"), ("POST", "/api/v1/tokens"), ("DELETE", "/api/v1/tokens/{id}"),
}

FUZZ = settings(
    max_examples=20, deadline=None, database=None,
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
def upload_dirs(settings, tmp_path):
    """A private weights store and upload temp dir."""
    tmp = tmp_path / "upload-tmp"
    tmp.mkdir()
    settings.STORAGES = {**settings.STORAGES, "weights": {
        "BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": str(tmp_path / "w")}}}
    settings.HUB_UPLOAD_TMP_DIR = settings.FILE_UPLOAD_TEMP_DIR = str(tmp)
    return tmp


@pytest.fixture
def world(db, keep_connection, upload_dirs):
    """An owner of 'ukp' with an upload token; a public adapter (versions 1, 2), a private one, a spare token."""
    owner = make_user("writer")
    org = make_org("ukp", member=owner, role=Role.OWNER)
    public = make_adapter(org, make_task_subtask("sentiment", "sst-2"), description="public")
    make_version(public, "1")
    make_version(public, "2")
    private = make_adapter(org, make_task_subtask("nli", "rte"), visibility=Visibility.PRIVATE)
    make_version(private, "1")
    token = make_token(owner, scope=TokenScope.UPLOAD)
    spare = ApiToken.objects.create(user=owner, name="spare", prefix="hub_spare", key_hash="0" * 64)
    return {"headers": {"Authorization": f"Bearer {token}"}, "public": public, "private": private,
            "spare": spare, "tmp": upload_dirs}


def real_ids(case, world) -> dict:
    """The case's path parameters pointing at existing objects."""
    params = dict(case.path_parameters or {})
    if "id" in params:
        if case.path.startswith("/api/v1/tokens"):
            params["id"] = world["spare"].pk
        elif case.method == "DELETE":
            params["id"] = world["private"].pk
        else:
            params["id"] = world["public"].pk
    if "version" in params:
        params["version"] = "1"
    return params


def check(case, response) -> None:
    if response.status_code == 503:  # a dependency is down: allowed, but must say when to retry
        assert response.headers.get("retry-after") or response.headers.get("Retry-After"), response.text[:300]
    case.validate_response(response, checks=CHECKS)


def test_every_write_operation_is_fuzzed():
    fuzzed = {(op.ok().method.upper(), op.ok().path) for op in schema.get_all_operations()}
    assert fuzzed == WRITES


@schema.parametrize()
@FUZZ
def test_writes_no_server_errors_and_conform(world, case):
    for headers in (None, world["headers"]):
        check(case, case.call(headers=headers))
    if case.path_parameters:
        case.path_parameters = real_ids(case, world)
        check(case, case.call(headers=world["headers"]))
    assert os.listdir(world["tmp"]) == []


def _send(method: str, path: str, headers: dict, body: bytes = b"", content_type: str = "application/json"):
    return Client(APP).open(path, method=method, data=body, content_type=content_type, headers=headers)


def _case(method: str, template: str, **path_parameters):
    return schema[template][method].Case(path_parameters=path_parameters or None)


def _upload(world, files: dict, version: str = "7"):
    body, ctype = multipart({"identifier": "sentiment/sst-2@ukp", "model_name": "bert-base-uncased",
                             "version": version}, list(files.items()))
    return _send("POST", "/api/v1/adapters/upload", world["headers"], body, ctype)


def test_well_formed_uploads_conform(world):
    upload = _case("POST", "/api/v1/adapters/upload")
    expected = [(adapter_files(seed=1), 201), (adapter_files(seed=1), 200), (adapter_files(seed=2), 409),
                (adapter_files(**{"pytorch_adapter.bin": b"\x80\x04N."}), 415),
                (adapter_files(**{"adapter_config.json": b"[" * 2000 + b"]" * 2000}), 400)]
    answers = []
    for files, status in expected:
        response = _upload(world, files)
        assert response.status_code == status, response.get_data(as_text=True)[:300]
        check(upload, response)
        answers.append(response)
    assert AdapterVersion.objects.filter(version="7").count() == 1
    with pytest.raises(FailureGroup):  # the conformance check is live: an upload's answer is no token
        check(_case("POST", "/api/v1/tokens"), answers[0])
    assert os.listdir(world["tmp"]) == []


def test_well_formed_manage_and_token_writes_conform(world):
    pk, headers = world["public"].pk, world["headers"]
    steps = [
        ("POST", "/api/v1/adapters/{id}/versions/{version}/yank", {"id": pk, "version": "1"}, {"reason": "bad"}, 200),
        ("POST", "/api/v1/adapters/{id}/versions/{version}/unyank", {"id": pk, "version": "1"}, None, 200),
        ("POST", "/api/v1/adapters/{id}/default-version", {"id": pk}, {"version": "1"}, 200),
        ("POST", "/api/v1/adapters/{id}/default-version", {"id": pk}, {"version": None}, 200),
        ("POST", "/api/v1/tokens", {}, {"name": "ci", "scope": "read", "organisations": ["ukp"]}, 201),
        ("DELETE", "/api/v1/tokens/{id}", {"id": world["spare"].pk}, None, 204),
        ("DELETE", "/api/v1/adapters/{id}", {"id": world["private"].pk}, None, 204),
        ("DELETE", "/api/v1/adapters/{id}", {"id": pk}, None, 409),
    ]
    for method, template, params, body, status in steps:
        path = template.format(**params)
        raw = json.dumps(body).encode() if body is not None else b""
        response = _send(method, path, headers, raw)
        assert response.status_code == status, (method, path, response.get_data(as_text=True)[:300])
        check(_case(method, template, **params), response)
    assert not ApiToken.objects.filter(pk=world["spare"].pk, revoked_at__isnull=True).exists()
