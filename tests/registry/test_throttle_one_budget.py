"""Issue 7 rows 5 and 6: one anonymous budget per client, and a client address nobody can forge.

The fast path (adapters, resolve) and the DRF views (tasks, ...) spend the same budget, and the
address comes from the socket unless HUB_TRUSTED_PROXIES (DRF's NUM_PROXIES) says otherwise.
"""

from __future__ import annotations

import pytest
from rest_framework.throttling import AnonRateThrottle

from registry.api import fastpath

from .factories import clear_cache  # noqa: F401 - autouse: a fresh cache per test

pytestmark = pytest.mark.django_db
LIMIT = 30


@pytest.fixture(autouse=True)
def small_budget(monkeypatch, settings):
    settings.HUB_THROTTLE_SYNC_EVERY = 1
    rates = {**AnonRateThrottle.THROTTLE_RATES, "anon": f"{LIMIT}/day"}  # a day: no window edge mid-test
    monkeypatch.setattr(AnonRateThrottle, "THROTTLE_RATES", rates)
    fastpath.throttle.pending.clear()
    fastpath.local_cache.clear()
    yield
    fastpath.throttle.pending.clear()
    fastpath.local_cache.clear()


@pytest.mark.parametrize("first, then", [("/api/v1/tasks", "/api/v1/adapters"),
                                         ("/api/v1/adapters", "/api/v1/tasks")])
def test_fast_path_and_drf_views_share_one_budget(client, first, then):
    assert [client.get(first).status_code for _ in range(LIMIT)] == [200] * LIMIT
    refused = client.get(then)
    assert refused.status_code == 429 and refused.json()["code"] == "throttled"
    assert int(refused["Retry-After"]) >= 1


def test_rotating_forwarded_headers_do_not_escape_the_throttle(client):
    codes = [
        client.get(path, HTTP_X_FORWARDED_FOR=f"198.51.100.{i}", HTTP_FORWARDED=f"for=198.51.100.{i}").status_code
        for i, path in enumerate(["/api/v1/adapters", "/api/v1/tasks"] * ((LIMIT + 6) // 2))
    ]
    assert codes == [200] * LIMIT + [429] * 6


def test_behind_one_trusted_proxy_the_proxys_entry_counts(client, settings, monkeypatch):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}
    rates = {**AnonRateThrottle.THROTTLE_RATES, "anon": f"{LIMIT}/day"}
    monkeypatch.setattr(AnonRateThrottle, "THROTTLE_RATES", rates)
    # One client forging the first entry: the proxy appends the address it saw, which counts.
    forged = [client.get("/api/v1/tasks", HTTP_X_FORWARDED_FOR=f"10.0.0.{i}, 203.0.113.7").status_code
              for i in range(LIMIT + 1)]
    assert forged == [200] * LIMIT + [429]
    # Another client behind the same proxy has its own budget.
    other = client.get("/api/v1/tasks", HTTP_X_FORWARDED_FOR="203.0.113.8")
    assert other.status_code == 200


def test_trusted_proxies_default_to_none(settings):
    assert settings.REST_FRAMEWORK["NUM_PROXIES"] == 0
