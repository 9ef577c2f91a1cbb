"""Anonymous renders of search and leaderboards are cached until the next write; signed-in users never share."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from registry.models import Adapter

from .seed import PASSWORD

pytestmark = pytest.mark.django_db

PAGES = ["/search/?q=movie+review", "/leaderboards/sentiment/rotten-tomatoes/"]


@pytest.mark.parametrize("url", PAGES)
def test_second_anonymous_render_comes_from_the_cache_and_a_write_invalidates_it(client, catalogue, url):
    first = client.get(url)
    assert first.status_code == 200
    with CaptureQueriesContext(connection) as queries:
        second = client.get(url)
    assert second.status_code == 200 and second.content == first.content
    assert len(queries) == 0
    adapter = Adapter.objects.filter(visibility="public", subtask__slug="rotten-tomatoes").first()
    adapter.description = "A completely new description: zebra crossing."
    adapter.save()
    with CaptureQueriesContext(connection) as queries:
        third = client.get(url)
    assert len(queries) > 0  # rendered again after the write


def test_signed_in_users_are_never_served_the_anonymous_render(client, catalogue):
    url = PAGES[0]
    anonymous = client.get(url).content.decode()
    assert client.login(username="olivia", password=PASSWORD)
    with CaptureQueriesContext(connection) as queries:
        signed_in = client.get(url).content.decode()
    assert len(queries) > 0
    assert "olivia" in signed_in and "olivia" not in anonymous


def test_a_signed_in_render_is_not_stored_for_anonymous_readers(client, catalogue):
    url = PAGES[1]
    assert client.login(username="olivia", password=PASSWORD)
    assert "olivia" in client.get(url).content.decode()
    client.logout()
    with CaptureQueriesContext(connection) as queries:
        anonymous = client.get(url).content.decode()
    assert len(queries) > 0 and "olivia" not in anonymous
