"""The shared anonymous counter is synced in batches, and at most once per interval per client."""

from __future__ import annotations

import time

from django.core.cache import caches

from registry.api.throttles import WindowCounter


def _shared(ident: str, period: int = 60) -> int:
    window = int(time.time() // period)
    return caches["default"].get(f"hub:throttle:anon:{period}:{ident}:{window}") or 0


def test_a_busy_client_is_synced_once_per_interval(settings):
    settings.HUB_THROTTLE_SYNC_EVERY = 10
    settings.HUB_THROTTLE_SYNC_INTERVAL = 0.3
    caches["default"].clear()
    counter = WindowCounter()
    for _ in range(25):
        assert counter.hit("10.0.0.1", 1000, 60) == (True, 0)
    assert _shared("10.0.0.1") == 1  # the first request syncs; 24 wait for the interval
    time.sleep(0.35)
    counter.hit("10.0.0.1", 1000, 60)
    assert _shared("10.0.0.1") == 26


def test_exact_counting_ignores_the_interval_and_limits_hold(settings):
    settings.HUB_THROTTLE_SYNC_EVERY = 1
    settings.HUB_THROTTLE_SYNC_INTERVAL = 10.0
    caches["default"].clear()
    counter = WindowCounter()
    answers = [counter.hit("10.0.0.2", 5, 60)[0] for _ in range(7)]
    assert answers == [True] * 5 + [False] * 2
    assert _shared("10.0.0.2") == 7
