"""Issue 7 row 11: free-text fields have a documented cap; list answers carry a summary."""

from __future__ import annotations

import pytest

from registry.api.serializers import summarize
from registry.models import Adapter

from .upload_helpers import (  # noqa: F401
    adapter_files, assert_nothing_left, hub_dirs, maintainer_setup, post_upload,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def token(hub_dirs):  # noqa: F811
    return maintainer_setup()[2]


@pytest.mark.parametrize("field, setting", [("description", "HUB_MAX_DESCRIPTION_CHARS"),
                                            ("license", "HUB_MAX_LICENSE_CHARS")])
def test_free_text_over_the_cap_is_400_with_the_cap(client, hub_dirs, token, settings, field, setting):  # noqa: F811
    cap = getattr(settings, setting)
    response = post_upload(client, adapter_files(), token, **{field: "w" * (cap + 1)})
    assert response.status_code == 400, response.content
    body = response.json()
    assert (body["code"], body["field"], body["limit"]) == ("invalid_input", field, cap)
    assert str(cap) in body["detail"]
    assert Adapter.objects.count() == 0
    assert_nothing_left(hub_dirs)


def test_a_large_description_is_refused_at_the_default_cap(client, hub_dirs, token, settings):  # noqa: F811
    assert settings.HUB_MAX_DESCRIPTION_CHARS == 10_000
    response = post_upload(client, adapter_files(), token, description="x" * 1_900_000)
    assert response.status_code == 400 and response.json()["code"] == "invalid_input"
    assert_nothing_left(hub_dirs)


def test_lists_carry_a_summary_and_details_the_full_text(client, hub_dirs, token, settings):  # noqa: F811
    text = ("word " * (settings.HUB_MAX_DESCRIPTION_CHARS // 5))[: settings.HUB_MAX_DESCRIPTION_CHARS]
    created = post_upload(client, adapter_files(), token, description=text)
    assert created.status_code == 201, created.content
    pk = Adapter.objects.get().pk

    listed = client.get("/api/v1/adapters").json()["results"][0]
    assert "description" not in listed
    assert len(listed["summary"]) <= settings.HUB_SUMMARY_CHARS and listed["summary"].endswith("\u2026")
    assert text.startswith(listed["summary"][:-1])
    assert client.get(f"/api/v1/adapters/{pk}").json()["description"] == text

    version = client.get(f"/api/v1/adapters/{pk}/versions").json()["results"][0]
    assert "description" not in version and len(version["summary"]) <= settings.HUB_SUMMARY_CHARS
    assert client.get(f"/api/v1/adapters/{pk}/versions/1").json()["description"] == text


@pytest.mark.parametrize(
    "text, expected",
    [("", ""), ("short one", "short one"), ("  spaced \n\n out  ", "spaced out")],
)
def test_short_texts_are_their_own_summary(text, expected):
    assert summarize(text) == expected


def test_summary_cuts_at_a_word_within_the_limit(settings):
    settings.HUB_SUMMARY_CHARS = 20
    assert summarize("alpha beta gamma delta epsilon") == "alpha beta gamma\u2026"
    assert summarize("x" * 30) == "x" * 19 + "\u2026"
    assert summarize("a" + " " * 200 + "b") == "a\u2026"  # past 4x the limit: cut, even if mostly blank
