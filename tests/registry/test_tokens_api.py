"""/api/v1/tokens: list, create (raw value once), revoke; tokens cannot mint wider tokens."""

from __future__ import annotations

import pytest

from registry.choices import Role, TokenScope
from registry.models import ApiToken

from .factories import bearer, clear_cache, make_org, make_token, make_user  # noqa: F401

pytestmark = pytest.mark.django_db
URL = "/api/v1/tokens"


@pytest.fixture
def alice(client):
    user = make_user("alice")
    make_org("ukp", member=user, role=Role.MAINTAINER)
    make_org("lab", member=user, role=Role.MEMBER)
    client.force_login(user)
    return user


def create(client, body, **headers):
    return client.post(URL, body, content_type="application/json", **headers)


def test_anonymous_is_401(client):
    assert client.get(URL).status_code == 401
    assert create(client, {}).status_code == 401


def test_create_returns_raw_token_once_and_it_authenticates(client, alice):
    response = create(client, {"name": "ci", "scope": "upload", "organisations": ["ukp"], "expires_days": 30})
    assert response.status_code == 201
    body = response.json()
    assert body["token"].startswith("ahub_") and body["scope"] == "upload" and body["organisations"] == ["ukp"]
    assert body["expires_at"] is not None and body["name"] == "ci"
    row = ApiToken.objects.get(pk=body["id"])
    assert row.key_hash != body["token"] and body["token"] not in str(row.__dict__)
    listed = client.get(URL).json()["results"]
    assert [t["id"] for t in listed] == [body["id"]] and "token" not in listed[0]
    client.logout()
    assert client.get(URL, **bearer(body["token"])).status_code == 200


def test_defaults_to_read_scope_for_every_org(client, alice):
    body = create(client, {}).json()
    assert body["scope"] == "read" and body["organisations"] == [] and body["expires_at"] is None


def test_organisations_must_exist_and_include_the_user(client, alice):
    make_org("foreign")
    assert create(client, {"organisations": ["nope"]}).json()["code"] == "invalid_input"
    refused = create(client, {"organisations": ["foreign"]})
    assert refused.status_code == 403 and "not a member" in refused.json()["detail"]
    assert create(client, {"scope": "admin"}).status_code == 400
    assert create(client, {"expires_days": 0}).status_code == 400
    assert not ApiToken.objects.exists()


def test_token_cannot_create_a_wider_token(client, alice):
    client.logout()
    read = make_token(alice, scope=TokenScope.READ)
    refused = create(client, {"scope": "upload"}, **bearer(read))
    assert refused.status_code == 403 and "read-scope" in refused.json()["detail"]
    narrow = make_token(alice, scope=TokenScope.UPLOAD, organisations=[alice.organisations.get(slug="ukp")])
    assert create(client, {"scope": "upload"}, **bearer(narrow)).status_code == 403
    assert create(client, {"scope": "upload", "organisations": ["lab"]}, **bearer(narrow)).status_code == 403
    assert create(client, {"scope": "read", "organisations": ["ukp"]}, **bearer(narrow)).status_code == 201


def test_revoke(client, alice):
    body = create(client, {"scope": "upload"}).json()
    assert client.delete(f"{URL}/{body['id']}").status_code == 204
    assert ApiToken.objects.get(pk=body["id"]).revoked_at is not None
    client.logout()
    response = client.get("/api/v1/adapters", **bearer(body["token"]))
    assert response.status_code == 401 and "revoked" in response.json()["detail"]


def test_cannot_revoke_someone_elses_token(client, alice):
    other = make_user("bob")
    make_token(other)
    token = ApiToken.objects.get(user=other)
    assert client.delete(f"{URL}/{token.pk}").status_code == 404
    assert ApiToken.objects.get(pk=token.pk).revoked_at is None
