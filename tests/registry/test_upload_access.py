"""Who may upload: anonymous 401, outsiders and read-only roles 403, scoped tokens, expired/revoked 401."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from registry.choices import Role, TokenScope
from registry.models import AdapterVersion
from registry.tokens import create_token

from .upload_helpers import (
    adapter_files, assert_nothing_left, hub_dirs, maintainer_setup, make_org, make_subtask, make_user,  # noqa: F401
    post_upload,
)

pytestmark = pytest.mark.django_db


def test_anonymous_is_401(client, hub_dirs):  # noqa: F811
    make_org()
    make_subtask()
    response = post_upload(client, adapter_files())
    assert response.status_code == 401 and response.json()["code"] == "not_authenticated"
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert_nothing_left(hub_dirs)


def test_non_member_is_403(client, hub_dirs):  # noqa: F811
    make_org()
    make_subtask()
    _, raw = create_token(make_user("mallory"), scope=TokenScope.UPLOAD)
    response = post_upload(client, adapter_files(), raw)
    assert response.status_code == 403 and response.json()["code"] == "permission_denied"
    assert "not a member of the organisation 'ukp'" in response.json()["detail"]
    assert_nothing_left(hub_dirs)


def test_member_role_is_403(client, hub_dirs):  # noqa: F811
    _, _, raw = maintainer_setup(role=Role.MEMBER)
    response = post_upload(client, adapter_files(), raw)
    assert response.status_code == 403
    assert "your role in 'ukp' is 'member'" in response.json()["detail"]
    assert_nothing_left(hub_dirs)


@pytest.mark.parametrize("role", [Role.MAINTAINER, Role.OWNER])
def test_maintainer_and_owner_may_upload(client, hub_dirs, role):  # noqa: F811
    user, _, raw = maintainer_setup(role=role)
    response = post_upload(client, adapter_files(), raw)
    assert response.status_code == 201
    assert AdapterVersion.objects.get().uploaded_by == user


def test_read_scope_token_is_403(client, hub_dirs):  # noqa: F811
    _, _, raw = maintainer_setup(scope=TokenScope.READ)
    response = post_upload(client, adapter_files(), raw)
    assert response.status_code == 403 and "read scope" in response.json()["detail"]
    assert_nothing_left(hub_dirs)


def test_token_for_another_org_is_403(client, hub_dirs):  # noqa: F811
    user, _, _ = maintainer_setup()
    other = make_org("other", members={user: Role.OWNER})
    _, raw = create_token(user, scope=TokenScope.UPLOAD, organisations=[other])
    response = post_upload(client, adapter_files(), raw)
    assert response.status_code == 403
    assert "not valid for the organisation 'ukp'" in response.json()["detail"]
    assert_nothing_left(hub_dirs)


def test_token_for_the_right_org_works(client, hub_dirs):  # noqa: F811
    user, org, _ = maintainer_setup()
    _, raw = create_token(user, scope=TokenScope.UPLOAD, organisations=[org])
    assert post_upload(client, adapter_files(), raw).status_code == 201


@pytest.mark.parametrize("state, message", [("expired", "expired"), ("revoked", "revoked")])
def test_expired_or_revoked_token_is_401(client, hub_dirs, state, message):  # noqa: F811
    user, _, _ = maintainer_setup()
    token, raw = create_token(user, scope=TokenScope.UPLOAD)
    if state == "expired":
        token.expires_at = timezone.now() - timedelta(seconds=1)
    else:
        token.revoked_at = timezone.now()
    token.save()
    response = post_upload(client, adapter_files(), raw)
    assert response.status_code == 401 and message in response.json()["detail"]
    assert_nothing_left(hub_dirs)


def test_unknown_token_is_401(client, hub_dirs):  # noqa: F811
    maintainer_setup()
    response = post_upload(client, adapter_files(), "ahub_not-a-real-token")
    assert response.status_code == 401
    assert_nothing_left(hub_dirs)


@pytest.mark.parametrize("with_csrf", [True, False])
def test_session_upload_needs_csrf_and_streams_under_our_limits(hub_dirs, settings, with_csrf):  # noqa: F811
    """A browser session: the CSRF check reads the body first, still through LimitedUploadHandler."""
    from django.middleware.csrf import _get_new_csrf_string
    from django.test import Client

    user, _, _ = maintainer_setup()
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(user)
    csrf = _get_new_csrf_string()
    browser.cookies["csrftoken"] = csrf
    headers = {"HTTP_X_CSRFTOKEN": csrf} if with_csrf else {}
    response = post_upload(browser, adapter_files(), headers=headers)
    if with_csrf:
        assert response.status_code == 201, response.content
        assert AdapterVersion.objects.count() == 1
    else:
        assert response.status_code == 403 and "CSRF" in response.json()["detail"]
        assert_nothing_left(hub_dirs)
    assert list(hub_dirs["tmp"].iterdir()) == []
    settings.HUB_MAX_FILE_BYTES = 100
    response = post_upload(browser, adapter_files(), headers=headers, version="2")
    assert response.status_code == 413 and list(hub_dirs["tmp"].iterdir()) == []


def test_upload_is_throttled_with_retry_after(client, hub_dirs, settings):  # noqa: F811
    from django.core.cache import cache

    cache.clear()
    rates = {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "upload": "1/hour"}
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": rates}
    from rest_framework.throttling import SimpleRateThrottle

    original = SimpleRateThrottle.THROTTLE_RATES
    SimpleRateThrottle.THROTTLE_RATES = rates
    try:
        _, _, raw = maintainer_setup()
        assert post_upload(client, adapter_files(), raw).status_code == 201
        response = post_upload(client, adapter_files(), raw, version="2")
        assert response.status_code == 429 and response.json()["code"] == "throttled"
        assert int(response["Retry-After"]) > 0
    finally:
        SimpleRateThrottle.THROTTLE_RATES = original
        cache.clear()
