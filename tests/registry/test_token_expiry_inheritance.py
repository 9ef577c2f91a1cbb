"""Issue 7 row 7: a token creating a token: the new one is no wider (scope, organisations, expiry)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from registry.choices import Role, TokenScope
from registry.models import ApiToken

from .factories import bearer, make_org, make_token, make_user

pytestmark = pytest.mark.django_db
URL = "/api/v1/tokens"


@pytest.fixture
def alice():
    user = make_user("alice")
    make_org("ukp", member=user, role=Role.MAINTAINER)
    make_org("lab", member=user, role=Role.MEMBER)
    return user


def _create(client, raw, body):
    return client.post(URL, body, content_type="application/json", **bearer(raw))


def test_token_expiring_in_a_day_cannot_mint_a_token_that_never_expires(client, alice):
    creator = make_token(alice, scope=TokenScope.UPLOAD, expires_days=1)
    limit = ApiToken.objects.get(user=alice).expires_at
    response = _create(client, creator, {"scope": "read"})
    assert response.status_code == 201, response.content
    minted = ApiToken.objects.get(pk=response.json()["id"])
    assert minted.expires_at == limit  # inherited, not "never"


def test_token_cannot_mint_a_longer_lived_token(client, alice):
    creator = make_token(alice, scope=TokenScope.UPLOAD, expires_days=1)
    response = _create(client, creator, {"scope": "read", "expires_days": 30})
    assert response.status_code == 403, response.content
    body = response.json()
    assert body["code"] == "permission_denied" and "expires" in body["detail"] and body["expires_at"]
    assert ApiToken.objects.filter(user=alice).count() == 1


def test_token_may_mint_a_shorter_lived_token(client, alice):
    creator = make_token(alice, scope=TokenScope.UPLOAD, expires_days=10)
    response = _create(client, creator, {"scope": "upload", "expires_days": 2})
    assert response.status_code == 201, response.content
    minted = ApiToken.objects.get(pk=response.json()["id"])
    assert timedelta(days=1) < minted.expires_at - timezone.now() <= timedelta(days=2)


def test_unexpiring_token_and_signed_in_user_are_not_capped(client, alice):
    creator = make_token(alice, scope=TokenScope.UPLOAD)
    minted = _create(client, creator, {"scope": "read"})
    assert minted.status_code == 201 and minted.json()["expires_at"] is None
    client.force_login(alice)
    session = client.post(URL, {"scope": "upload", "expires_days": 3650}, content_type="application/json")
    assert session.status_code == 201 and session.json()["expires_at"] is not None


@pytest.mark.parametrize(
    "body, allowed",
    [({"scope": "upload", "organisations": ["ukp"], "expires_days": 1}, True),
     ({"scope": "upload", "organisations": ["lab"], "expires_days": 1}, False),
     ({"scope": "upload", "organisations": ["ukp"], "expires_days": 5}, False),
     ({"scope": "upload", "expires_days": 1}, False)],
    ids=["same", "other_org", "longer", "all_orgs"],
)
def test_scope_organisations_and_expiry_together(client, alice, body, allowed):
    narrow = make_token(alice, scope=TokenScope.UPLOAD, organisations=[alice.organisations.get(slug="ukp")],
                        expires_days=2)
    response = _create(client, narrow, body)
    assert response.status_code == (201 if allowed else 403), response.content
    assert ApiToken.objects.filter(user=alice).count() == (2 if allowed else 1)
