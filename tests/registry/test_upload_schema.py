"""The OpenAPI schema describes the multipart upload and the download endpoint."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


def test_schema_describes_the_multipart_upload(client):
    schema = client.get("/api/schema/", {"format": "json"}).json()
    post = schema["paths"]["/api/v1/adapters/upload"]["post"]
    content = post["requestBody"]["content"]
    assert list(content) == ["multipart/form-data"]
    ref = content["multipart/form-data"]["schema"]["$ref"].rsplit("/", 1)[-1]
    body = schema["components"]["schemas"][ref]
    assert body["properties"]["files"]["type"] == "array"
    assert body["properties"]["files"]["items"]["format"] == "binary"
    assert {"identifier", "model_name", "version"} <= set(body["required"])
    assert body["properties"]["archive"]["format"] == "binary"
    assert {"200", "201", "401", "403", "409", "413", "415", "503"} <= set(post["responses"])


def test_schema_describes_the_download(client):
    schema = client.get("/api/schema/", {"format": "json"}).json()
    get = schema["paths"]["/api/v1/files/{file_id}/download"]["get"]
    assert {"200", "302", "404"} <= set(get["responses"])
