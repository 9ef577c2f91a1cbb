"""The anonymous fast path: cached bytes for public reads, invalidated by writes, never shared
with authenticated callers, throttled once; against LocMem and the real Redis."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from rest_framework.settings import api_settings

from registry.choices import Role, Visibility

from .factories import (  # noqa: F401 - clear_cache is an autouse fixture
    bearer, clear_cache, make_adapter, make_org, make_task_subtask, make_token, make_user, make_version,
)

pytestmark = pytest.mark.django_db
RESOLVE = "/api/v1/resolve?id=sentiment/sst-2@ukp"


@pytest.fixture(params=["locmem", "redis"])
def backend(request, settings):
    from registry.api import fastpath

    fastpath.local_cache.clear()
    fastpath.throttle.pending.clear()
    if request.param == "redis":
        url = request.getfixturevalue("redis_url")
        settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": url}}
        cache.clear()
    yield request.param
    cache.clear()
    fastpath.local_cache.clear()
    fastpath.throttle.pending.clear()


@pytest.fixture
def published():
    owner = make_user("owner")
    org = make_org("ukp", member=owner, role=Role.OWNER)
    adapter = make_adapter(org, make_task_subtask(), description="movie reviews")
    make_version(adapter, "1")
    return {"owner": owner, "org": org, "adapter": adapter}


def test_second_anonymous_read_is_served_without_the_database(client, backend, published,
                                                               django_assert_num_queries):
    first = client.get(RESOLVE)
    assert first.status_code == 200
    with django_assert_num_queries(0):
        second = client.get(RESOLVE)
    assert second.status_code == 200
    assert second.json() == first.json()
    assert second["Content-Type"] == "application/json"


def test_a_write_makes_the_cached_answer_stale(client, backend, published):
    assert client.get(RESOLVE).json()["version"] == "1"
    make_version(published["adapter"], "2")
    assert client.get(RESOLVE).json()["version"] == "2"


def test_private_data_never_crosses_between_callers(client, backend, published):
    secret = make_adapter(published["org"], make_task_subtask("nli", "rte"), visibility=Visibility.PRIVATE,
                          description="secret")
    make_version(secret)
    token = make_token(published["owner"])
    url = "/api/v1/adapters?q=secret"
    as_member = client.get(url, **bearer(token))
    assert as_member.json()["count"] == 1
    assert client.get(url).json()["count"] == 0  # anonymous, after the member's answer was cached
    assert client.get(url, **bearer(token)).json()["count"] == 1  # and the other way round


def test_browsers_and_format_parameters_take_the_normal_view(client, backend, published):
    client.get(RESOLVE)
    html = client.get(RESOLVE, HTTP_ACCEPT="text/html")
    assert html["Content-Type"].startswith("text/html")


def test_anonymous_reads_are_throttled_once_with_retry_after(client, backend, published, monkeypatch):
    monkeypatch.setitem(api_settings.DEFAULT_THROTTLE_RATES, "anon", "3/min")
    monkeypatch.setattr("rest_framework.throttling.AnonRateThrottle.THROTTLE_RATES",
                        api_settings.DEFAULT_THROTTLE_RATES)
    codes = [client.get(RESOLVE).status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]  # the first (a miss) was counted once, not twice
    refused = client.get(RESOLVE)
    assert refused.status_code == 429
    assert refused.json()["code"] == "throttled"
    assert 1 <= int(refused["Retry-After"]) <= 60


def test_another_process_is_served_from_the_shared_cache(client, backend, published, django_assert_num_queries):
    from registry.api import fastpath

    first = client.get(RESOLVE)
    fastpath.local_cache.clear()  # as if the next request reached another worker process
    with django_assert_num_queries(0):
        assert client.get(RESOLVE).json() == first.json()


def test_batched_rate_counting_overshoots_by_at_most_the_batch(client, backend, published, settings,
                                                               monkeypatch):
    settings.HUB_THROTTLE_SYNC_EVERY = 5
    monkeypatch.setitem(api_settings.DEFAULT_THROTTLE_RATES, "anon", "8/min")
    monkeypatch.setattr("rest_framework.throttling.AnonRateThrottle.THROTTLE_RATES",
                        api_settings.DEFAULT_THROTTLE_RATES)  # the fast path uses DRF's anonymous throttle
    codes = [client.get(RESOLVE).status_code for _ in range(20)]
    allowed = codes.count(200)
    assert 8 <= allowed <= 8 + 5
    assert codes[allowed:] == [429] * (20 - allowed)
