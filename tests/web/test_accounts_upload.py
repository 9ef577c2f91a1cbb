"""Sign up, sign in, password reset, API tokens and the upload form."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from registry.models import Adapter, AdapterVersion, ApiToken, hash_token

from ..registry.upload_helpers import adapter_files
from .seed import PASSWORD

pytestmark = pytest.mark.django_db


def test_sign_up_signs_in_and_leads_to_tokens(client):
    response = client.post("/accounts/signup/", {
        "username": "newbie", "email": "newbie@example.org", "password1": PASSWORD, "password2": PASSWORD,
    })
    assert response.status_code == 302 and response["Location"] == "/settings/tokens/"
    assert get_user_model().objects.get(username="newbie").email == "newbie@example.org"
    assert "newbie" in client.get("/settings/tokens/").content.decode()


def test_sign_up_shows_errors_next_to_fields(client):
    response = client.post("/accounts/signup/", {"username": "x", "email": "bad", "password1": "a", "password2": "b"})
    html = response.content.decode()
    assert response.status_code == 200 and html.count('class="errorlist"') >= 2
    assert not get_user_model().objects.filter(username="x").exists()


def test_sign_in_and_out(client, catalogue):
    response = client.post("/accounts/login/", {"username": "olivia", "password": PASSWORD})
    assert response.status_code == 302
    assert "Sign out" in client.get("/").content.decode()
    client.post("/accounts/logout/")
    assert "Sign in" in client.get("/").content.decode()


def test_password_reset_sends_a_working_link(client, catalogue):
    assert client.post("/accounts/password_reset/", {"email": "olivia@example.org"}).status_code == 302
    assert len(mail.outbox) == 1
    link = re.search(r"http://testserver(/accounts/reset/\S+)", mail.outbox[0].body).group(1)
    form = client.get(link, follow=True)
    assert b"Choose a new password" in form.content
    new = "N3w-passw0rd!x"
    done = client.post(form.redirect_chain[-1][0], {"new_password1": new, "new_password2": new})
    assert done.status_code == 302
    assert Client().login(username="olivia", password="N3w-passw0rd!x")


def test_tokens_page_creates_shows_once_lists_and_revokes(client, catalogue):
    assert client.get("/settings/tokens/").status_code == 302  # sign in first
    client.login(username="olivia", password=PASSWORD)
    posted = client.post("/settings/tokens/", {"name": "laptop", "scope": "upload", "organisations": ["demo"],
                                               "expires_days": "30"})
    assert posted.status_code == 302  # post/redirect/get: a reload cannot create a second token
    response = client.get(posted["Location"])
    html = response.content.decode()
    raw = re.search(r'id="new-token">(ahub_[^<]+)<', html).group(1)
    token = ApiToken.objects.get(key_hash=hash_token(raw))
    assert token.scope == "upload" and [o.slug for o in token.organisations.all()] == ["demo"]
    assert response["Cache-Control"].startswith("max-age=0") or "no-cache" in response["Cache-Control"]
    again = client.get("/settings/tokens/").content.decode()
    assert raw not in again and token.prefix in again
    client.post(f"/settings/tokens/{token.pk}/revoke/")
    token.refresh_from_db()
    assert token.revoked_at is not None


def test_cannot_revoke_someone_elses_token(client, catalogue):
    from registry.tokens import create_token

    theirs, _ = create_token(catalogue["outsider"])
    client.login(username="olivia", password=PASSWORD)
    client.post(f"/settings/tokens/{theirs.pk}/revoke/")
    theirs.refresh_from_db()
    assert theirs.revoked_at is None


def _files(**overrides):
    return [SimpleUploadedFile(name, content) for name, content in adapter_files(**overrides).items()]


def test_upload_form_stores_a_pending_version_with_the_upload_service(client, catalogue, hub_dirs):
    client.login(username="olivia", password=PASSWORD)
    page = client.get("/upload/").content.decode()
    assert 'name="files"' in page and 'value="sentiment/rotten-tomatoes"' in page
    response = client.post("/upload/", {
        "organisation": "demo", "subtask": "sentiment/sst-2", "model_name": "tiny-bert", "version": "1",
        "claimed_score": "0.9", "license": "mit", "visibility": "public", "description": "tiny", "files": _files(),
    })
    assert response.status_code == 302, response.content.decode()[:2000]
    version = AdapterVersion.objects.get(adapter__organisation__slug="demo", adapter__model_name="tiny-bert")
    assert response["Location"] == f"/adapters/{version.adapter_id}/versions/1/"
    assert version.status == "pending" and version.claimed_score == 0.9 and version.files.count() == 2
    assert "badge-pending" in client.get(response["Location"]).content.decode()


def test_upload_form_shows_service_errors_next_to_the_fields(client, catalogue, hub_dirs):
    client.login(username="olivia", password=PASSWORD)
    response = client.post("/upload/", {
        "organisation": "demo", "subtask": "sentiment/sst-2", "model_name": "tiny-bert", "version": "bad version!",
        "visibility": "public", "files": _files(),
    })
    html = response.content.decode()
    assert response.status_code == 400
    field = html[html.index('for="id_version"'):]
    assert field.index("invalid_input") < field.index('for="id_claimed_score"')
    pickled = client.post("/upload/", {
        "organisation": "demo", "subtask": "sentiment/sst-2", "model_name": "tiny-bert", "version": "1",
        "visibility": "public", "files": [SimpleUploadedFile("pytorch_model.bin", b"\x80\x04pickle")],
    })
    assert pickled.status_code in (400, 415) and b"pickle" in pickled.content
    assert not Adapter.objects.filter(model_name="tiny-bert").exists()


def test_upload_needs_a_write_role_in_the_organisation(client, catalogue, hub_dirs):
    client.login(username="oscar", password=PASSWORD)
    html = client.get("/upload/").content.decode()
    assert "not an owner or maintainer" in html
    response = client.post("/upload/", {
        "organisation": "demo", "subtask": "sentiment/sst-2", "version": "1", "visibility": "public",
        "files": _files(),
    })
    assert response.status_code == 400 and not AdapterVersion.objects.filter(adapter__model_name="tiny-bert").exists()


def test_upload_form_post_without_csrf_token_is_refused(catalogue, hub_dirs):
    strict = Client(enforce_csrf_checks=True)
    strict.login(username="olivia", password=PASSWORD)
    response = strict.post("/upload/", {
        "organisation": "demo", "subtask": "sentiment/sst-2", "model_name": "tiny-bert", "version": "1",
        "visibility": "public", "files": _files(),
    })
    assert response.status_code == 403
    assert not AdapterVersion.objects.filter(adapter__model_name="tiny-bert").exists()


def test_upload_form_accepts_an_archive_of_the_folder(client, catalogue, hub_dirs):
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in adapter_files(seed=2).items():
            archive.writestr(f"sst-2/{name}", content)
    client.login(username="olivia", password=PASSWORD)
    response = client.post("/upload/", {
        "organisation": "ukp", "subtask": "sentiment/sst-2", "model_name": "tiny-bert", "version": "7",
        "visibility": "private", "archive": SimpleUploadedFile("adapter.zip", buffer.getvalue()),
    })
    assert response.status_code == 302, response.content.decode()[:1500]
    version = AdapterVersion.objects.get(version="7")
    assert version.adapter.visibility == "private" and sorted(version.files.values_list("name", flat=True)) == [
        "adapter.safetensors", "adapter_config.json"]
    assert Client().get(response["Location"]).status_code == 404  # private: invisible when signed out
