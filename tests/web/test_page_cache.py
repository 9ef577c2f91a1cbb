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


SHARED = PAGES + ["/explore/", "/search/?q=&task=sentiment", "/"]


def _get(client, user, url):
    client.force_login(user)
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    client.logout()
    assert response.status_code == 200
    return response.content.decode(), [q["sql"] for q in queries.captured_queries]


def _body(html: str) -> str:
    return html.split('<main', 1)[1].split("</main>", 1)[0]


@pytest.mark.parametrize("url", SHARED)
def test_signed_in_users_who_see_the_same_adapters_share_the_page_body(client, catalogue, url):
    from django.contrib.auth import get_user_model

    first, first_queries = _get(client, catalogue["outsider"], url)
    other = get_user_model().objects.create_user("nina", "nina@example.org", PASSWORD)  # a write: all stale
    _get(client, other, url)
    again, queries = _get(client, other, url)  # no organisation: the public catalogue, body from the cache
    assert len(queries) < len(first_queries)
    assert not any("registry_adapter" in sql for sql in queries)
    assert _body(again) == _body(first)
    assert "nina" in again and "oscar" not in again and "csrfmiddlewaretoken" not in _body(again)


@pytest.mark.parametrize("url", ["/search/?q=movie+review", "/leaderboards/sentiment/rotten-tomatoes/", "/explore/", "/"])
def test_a_member_gets_a_body_with_their_private_adapters_and_nobody_else_does(client, catalogue, url):
    secret = catalogue["private"].description
    outsider_first, _ = _get(client, catalogue["outsider"], url)
    member, _ = _get(client, catalogue["secret_member"], url)
    outsider_again, _ = _get(client, catalogue["outsider"], url)
    anonymous = client.get(url).content.decode()
    private_marker = f'/adapters/{catalogue["private"].pk}/'
    assert private_marker in member or secret in member
    for page in (outsider_first, outsider_again, anonymous):
        assert private_marker not in page and secret not in page
