"""RELIABILITY.md access control for the read and owner-action endpoints."""

from __future__ import annotations

import pytest
from django.utils import timezone

from registry.choices import Role, TokenScope, Visibility
from registry.tokens import create_token

from .factories import (  # noqa: F401
    bearer, clear_cache, make_adapter, make_org, make_task_subtask, make_token, make_user, make_version,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def private():
    owner = make_user("owner")
    org = make_org("secret", member=owner, role=Role.OWNER)
    adapter = make_adapter(org, make_task_subtask("sentiment", "sst-2"), visibility=Visibility.PRIVATE,
                           description="hidden gem")
    make_version(adapter)
    return adapter


def read_paths(adapter):
    return [
        f"/api/v1/adapters/{adapter.pk}",
        f"/api/v1/adapters/{adapter.pk}/versions",
        f"/api/v1/adapters/{adapter.pk}/versions/1",
        "/api/v1/resolve?id=sentiment/sst-2@secret",
    ]


@pytest.mark.parametrize("who", ["anonymous", "outsider"])
def test_private_adapter_is_invisible_to_outsiders(client, private, who):
    if who == "outsider":
        outsider = make_user("outsider")
        make_org("elsewhere", member=outsider)
        client.force_login(outsider)
    assert client.get("/api/v1/adapters").json()["count"] == 0
    assert client.get("/api/v1/adapters", {"q": "hidden gem"}).json()["results"] == []
    for path in read_paths(private):
        response = client.get(path)
        assert response.status_code == 404, path
        assert response.json()["detail"] == ("no adapter 'sentiment/sst-2@secret'" if "resolve" in path else
                                             "no such adapter")
    resolved = client.get(read_paths(private)[-1]).json()
    assert resolved["available"] == [] and resolved["suggestions"] == []
    organisation = client.get("/api/v1/organisations/secret").json()
    assert organisation["public_adapters"] == 0


def test_private_adapter_is_visible_to_members(client, private):
    member = make_user("member")  # members of any role may read
    private.organisation.memberships.create(user=member, role=Role.MEMBER)
    client.force_login(member)
    assert [r["id"] for r in client.get("/api/v1/adapters").json()["results"]] == [private.pk]
    for path in read_paths(private):
        assert client.get(path).status_code == 200, path


def test_token_scoped_to_another_org_does_not_see_private(client, private):
    owner = private.organisation.memberships.get().user
    other = make_org("other", member=owner)
    raw = make_token(owner, organisations=[other])
    assert client.get(f"/api/v1/adapters/{private.pk}", **bearer(raw)).status_code == 404
    wide = make_token(owner)
    assert client.get(f"/api/v1/adapters/{private.pk}", **bearer(wide)).status_code == 200


def test_list_has_no_duplicates_for_orgs_with_many_members(client):
    org = make_org("busy")
    users = [make_user() for _ in range(3)]
    for user in users:
        org.memberships.create(user=user, role=Role.MEMBER)
    make_version(make_adapter(org))
    client.force_login(users[0])
    body = client.get("/api/v1/adapters").json()
    assert body["count"] == 1 and len(body["results"]) == 1


# --- writes ------------------------------------------------------------------------------


@pytest.fixture
def public():
    owner = make_user("pubowner")
    org = make_org("ukp", member=owner, role=Role.OWNER)
    adapter = make_adapter(org, make_task_subtask("sentiment", "sst-2"))
    make_version(adapter)
    return adapter


def yank(client, adapter, **headers):
    return client.post(f"/api/v1/adapters/{adapter.pk}/versions/1/yank", {"reason": "x"},
                       content_type="application/json", **headers)


def test_anonymous_write_is_401(client, public):
    response = yank(client, public)
    assert response.status_code == 401 and response.json()["code"] == "not_authenticated"
    assert client.delete(f"/api/v1/adapters/{public.pk}").status_code == 401


def test_non_member_is_403(client, public):
    client.force_login(make_user("stranger"))
    response = yank(client, public)
    assert response.status_code == 403
    assert response.json()["code"] == "permission_denied" and "not a member" in response.json()["detail"]


def test_member_role_is_403_maintainer_may(client, public):
    reader, maintainer = make_user("reader"), make_user("maint")
    public.organisation.memberships.create(user=reader, role=Role.MEMBER)
    public.organisation.memberships.create(user=maintainer, role=Role.MAINTAINER)
    client.force_login(reader)
    response = yank(client, public)
    assert response.status_code == 403 and "role" in response.json()["detail"]
    client.force_login(maintainer)
    assert yank(client, public).status_code == 200


def test_token_rules_on_writes(client, public):
    owner = public.organisation.memberships.get().user
    other = make_org("other", member=owner)
    cases = {
        "read": make_token(owner, scope=TokenScope.READ),
        "other-org": make_token(owner, scope=TokenScope.UPLOAD, organisations=[other]),
    }
    read = yank(client, public, **bearer(cases["read"]))
    assert read.status_code == 403 and "read scope" in read.json()["detail"]
    wrong_org = yank(client, public, **bearer(cases["other-org"]))
    assert wrong_org.status_code == 403 and "not valid for the organisation 'ukp'" in wrong_org.json()["detail"]
    good = make_token(owner, scope=TokenScope.UPLOAD, organisations=[public.organisation])
    assert yank(client, public, **bearer(good)).status_code == 200


def test_expired_and_revoked_tokens_are_401_with_distinct_messages(client, public):
    owner = public.organisation.memberships.get().user
    row_expired, token_expired = create_token(owner, scope=TokenScope.UPLOAD, expires_days=1)
    row_revoked, token_revoked = create_token(owner, scope=TokenScope.UPLOAD)
    row_expired.expires_at = timezone.now()
    row_expired.save()
    row_revoked.revoked_at = timezone.now()
    row_revoked.save()
    expired = client.get("/api/v1/adapters", **bearer(token_expired))
    revoked = client.get("/api/v1/adapters", **bearer(token_revoked))
    assert expired.status_code == revoked.status_code == 401
    assert "expired" in expired.json()["detail"] and "revoked" in revoked.json()["detail"]
    assert client.get("/api/v1/adapters", **bearer("ahub_nonsense")).json()["detail"] == "invalid token"
    assert expired["WWW-Authenticate"].startswith("Bearer")


def test_outsider_write_to_private_adapter_is_404(client, private):
    client.force_login(make_user("stranger"))
    assert yank(client, private).status_code == 404
    assert client.delete(f"/api/v1/adapters/{private.pk}").status_code == 404


def test_cached_answers_never_cross_callers(client, private):
    """Anonymous first (cached), then a member, then a narrower token: each sees only its own view.

    Everything is created up front, so no write invalidates the cache between the requests.
    """
    member = private.organisation.memberships.get().user
    narrow = make_token(member, organisations=[make_org("narrow", member=member)])
    paths = ["/api/v1/adapters", f"/api/v1/adapters/{private.pk}", "/api/v1/resolve?id=sentiment/sst-2@secret"]
    assert [client.get(p).status_code for p in paths] == [200, 404, 404]
    assert client.get(paths[0]).json()["count"] == 0
    client.force_login(member)
    assert [client.get(p).status_code for p in paths] == [200, 200, 200]
    assert client.get(paths[0]).json()["count"] == 1
    client.logout()
    assert [client.get(p, **bearer(narrow)).status_code for p in paths] == [200, 404, 404]
    assert client.get(paths[0], **bearer(narrow)).json()["count"] == 0
    assert client.get(paths[0]).json()["count"] == 0
