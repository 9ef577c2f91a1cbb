"""One anonymous throttle for the fast path and for DRF views: one budget per client.

``HubAnonRateThrottle`` is DRF's anonymous throttle (its rate, its client identification)
counted in ``counter``, a fixed-window counter shared through the cache. The anonymous fast
path (registry.api.fastpath) counts its requests in the same counter through ``check_anonymous``
and marks them, so that a request is never counted twice and 30 reads of /tasks plus 30 of
/adapters spend one budget.

The client address is DRF's ``get_ident``: the socket's address, or, behind
REST_FRAMEWORK["NUM_PROXIES"] trusted proxies (settings.HUB_TRUSTED_PROXIES), the address that
the nearest trusted proxy saw; a header a client sets itself is never trusted alone.

A process adds its hits to the shared counter once it has HUB_THROTTLE_SYNC_EVERY unsynced
requests of a client and HUB_THROTTLE_SYNC_INTERVAL seconds (0.1) have passed since its last sync
for that client (SYNC_EVERY 1 counts exactly, every request), so a limit may be overshot by at most
max(SYNC_EVERY, the client's requests in one interval) per process and window, while a busy process
pays at most ten shared round trips a second per client. Only public APIs: the cache's ``add`` / ``incr``, DRF's throttle attributes.
"""

from __future__ import annotations

import threading
import time

from django.conf import settings
from django.core.cache import caches
from rest_framework.throttling import AnonRateThrottle

FAST_THROTTLED = "hub_fast_throttled"  # set on requests the fast path already counted
_lock = threading.Lock()


class WindowCounter:
    """Fixed-window counting per client, shared through the cache, synced in batches."""

    def __init__(self):
        # (ident, window) -> [unsynced, shared total, time of the last sync]
        self.pending: dict[tuple[str, int], list] = {}

    def hit(self, ident: str, limit: int, period: int) -> tuple[bool, int]:
        """Count one request of ``ident``; (allowed, seconds to wait when not)."""
        now = time.time()
        window = int(now // period)
        sync_every = max(1, int(getattr(settings, "HUB_THROTTLE_SYNC_EVERY", 10)))
        interval = float(getattr(settings, "HUB_THROTTLE_SYNC_INTERVAL", 0.1)) if sync_every > 1 else 0.0
        with _lock:
            entry = self.pending.get((ident, window))
            if entry is None:
                self._forget_old(window)
                entry = self.pending[(ident, window)] = [0, 0, 0.0]
            entry[0] += 1
            sync = entry[1] == 0 or (entry[0] >= sync_every and now - entry[2] >= interval)
            delta = entry[0] if sync else 0
            if sync:
                entry[0], entry[2] = 0, now
        if sync:
            total = _shared_incr(f"hub:throttle:anon:{period}:{ident}:{window}", delta, period + 1)
            with _lock:
                entry[1] = total
        if entry[1] + entry[0] <= limit:
            return True, 0
        return False, max(1, int(period - now % period))

    def _forget_old(self, window: int) -> None:
        for key in [k for k in self.pending if k[1] < window]:
            del self.pending[key]


counter = WindowCounter()


def _shared_incr(key: str, delta: int, ttl: int) -> int:
    """Add ``delta`` to the shared count under ``key`` (created with ``ttl``); returns the new total."""
    cache = caches["default"]
    for _ in range(3):
        try:
            return cache.incr(key, delta)  # the usual case: this window's key exists
        except ValueError:
            if cache.add(key, delta, timeout=ttl):  # first in this window (another process may race us)
                return delta
    return delta  # the cache keeps refusing: count locally rather than fail the request


class HubAnonRateThrottle(AnonRateThrottle):
    """DRF's anonymous throttle on the shared counter; requests the fast path counted pass."""

    _wait = None

    def allow_request(self, request, view):
        if getattr(getattr(request, "_request", request), FAST_THROTTLED, False):
            return True
        if self.rate is None or self.get_cache_key(request, view) is None:  # no rate, or signed in
            return True
        allowed, self._wait = counter.hit(self.get_ident(request), self.num_requests, self.duration)
        return allowed

    def wait(self):
        return self._wait


def check_anonymous(request) -> tuple[bool, int]:
    """The fast path's check (its requests are anonymous by construction): (allowed, wait)."""
    throttle = HubAnonRateThrottle()
    if throttle.rate is None:
        return True, 0
    return counter.hit(throttle.get_ident(request), throttle.num_requests, throttle.duration)
