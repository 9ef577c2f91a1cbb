"""``manage.py hubtoken``: creates what is missing, prints exactly one token, and the token works."""

from __future__ import annotations

import io

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from registry.choices import Role
from registry.models import ApiToken, Membership, Organisation
from registry.tokens import find_token

from .factories import bearer, clear_cache, make_adapter, make_org, make_user, make_version  # noqa: F401

pytestmark = pytest.mark.django_db


def hubtoken(*args) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("hubtoken", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_creates_user_org_membership_and_prints_only_the_token():
    out, err = hubtoken("--user", "alice", "--org", "ukp")
    lines = out.splitlines()
    assert len(lines) == 1 and out.endswith("\n")
    token = find_token(lines[0])
    assert token is not None and token.scope == "upload"
    assert [o.slug for o in token.organisations.all()] == ["ukp"]
    user = get_user_model().objects.get(username="alice")
    assert not user.has_usable_password()
    assert Membership.objects.get(user=user, organisation__slug="ukp").role == Role.MAINTAINER
    assert "created user" in err and "created organisation" in err and lines[0] not in err


def test_token_works_against_the_api(client):
    out, _ = hubtoken("--user", "bob", "--org", "lab")
    adapter = make_adapter(Organisation.objects.get(slug="lab"))
    make_version(adapter)
    response = client.post(f"/api/v1/adapters/{adapter.pk}/versions/1/yank", {"reason": "r"},
                           content_type="application/json", **bearer(out.strip()))
    assert response.status_code == 200 and response.json()["yanked"] is True


def test_existing_membership_is_not_changed():
    user = make_user("carol")
    make_org("ukp", member=user, role=Role.MEMBER)
    out, err = hubtoken("--user", "carol", "--org", "ukp", "--role", "owner", "--scope", "read",
                        "--expires-days", "3")
    assert Membership.objects.get(user=user).role == Role.MEMBER
    assert "left unchanged" in err
    token = ApiToken.objects.get(user=user)
    assert token.scope == "read" and token.expires_at is not None
    assert find_token(out.strip()) == token
    assert "created" not in err


@pytest.mark.parametrize("args", [("--org", "Bad Slug"), ("--org", "ok", "--expires-days", "0")])
def test_invalid_arguments_fail_without_a_token(args):
    with pytest.raises(CommandError):
        hubtoken("--user", "dave", *args)
    assert not ApiToken.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_real_process_prints_exactly_one_line(tmp_path):
    """Run manage.py as a user would (``TOKEN=$(manage.py hubtoken ...)``), against the test database."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from django.db import connection

    db = connection.settings_dict
    env = {
        **os.environ, "DJANGO_SETTINGS_MODULE": "hubsite.settings.test",
        "TEST_DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
    }
    root = Path(__file__).resolve().parents[2]
    result = subprocess.run(
        [sys.executable, str(root / "manage.py"), "hubtoken", "--user", "erin", "--org", "erin-lab"],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1 and lines[0].startswith("ahub_")
    assert find_token(lines[0]).user.username == "erin"
    assert "created user 'erin'" in result.stderr
