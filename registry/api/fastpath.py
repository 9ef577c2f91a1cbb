"""The anonymous fast path for the hot read endpoints (resolve, list/search, detail).

Most reads come from clients without credentials asking for public data (``adapters_client``
resolving a popular identifier). For those, the rendered JSON bytes are cached per URL in two
tiers: a small in-process LRU (a hit costs no network round trip at all) in front of the shared
cache (Redis in production), which the other processes fill. Anything else (a token, a session
cookie, a browser asking for HTML, a non-GET) takes the normal DRF view, which has its own
per-caller cache.

Invalidation: keys carry ``caching.generation()``, which every write bumps; a process re-reads
the generation at most every HUB_CACHE_GENERATION_TTL seconds (1 s by default), so a write is
visible to anonymous readers within that time.

Rate limiting: the anonymous rate (DRF's ``anon`` rate) is counted per client address and
fixed window in the shared cache, but a process adds its requests to the shared counter once
every HUB_THROTTLE_SYNC_EVERY requests (10 by default; 1 counts exactly), so the limit may be
exceeded by at most that many requests per process and window.
"""

from __future__ import annotations

import functools
import hashlib
import threading
import time
from collections import OrderedDict

from django.conf import settings
from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache
from django.http import HttpResponse, JsonResponse
from rest_framework.settings import api_settings
from rest_framework.throttling import AnonRateThrottle, SimpleRateThrottle

from . import caching

FAST_THROTTLED = "hub_fast_throttled"  # set on requests the fast path already counted
_lock = threading.Lock()
_generation = {"value": None, "read_at": 0.0}
_client_for = {"backend": None, "client": None}


def current_generation() -> int:
    ttl = getattr(settings, "HUB_CACHE_GENERATION_TTL", 1.0)
    now = time.monotonic()
    if _generation["value"] is None or now - _generation["read_at"] >= ttl:
        _generation["value"] = caching.generation()
        _generation["read_at"] = now
    return _generation["value"]


def eligible(request) -> bool:
    meta = request.META
    return (
        request.method == "GET"
        and getattr(settings, "HUB_CACHE_SECONDS", 0) > 0
        and "HTTP_AUTHORIZATION" not in meta
        and settings.SESSION_COOKIE_NAME not in request.COOKIES
        and "text/html" not in meta.get("HTTP_ACCEPT", "")
        and "format" not in request.GET
    )


class LocalCache:
    """A bounded, thread-safe LRU of (bytes, expiry) for one process."""

    def __init__(self, max_entries: int = 4096):
        self.max_entries = max_entries
        self.entries: OrderedDict[str, tuple[bytes, float]] = OrderedDict()

    def get(self, key: str) -> bytes | None:
        with _lock:
            entry = self.entries.get(key)
            if entry is None:
                return None
            if entry[1] < time.monotonic():
                del self.entries[key]
                return None
            self.entries.move_to_end(key)
            return entry[0]

    def set(self, key: str, body: bytes, seconds: float) -> None:
        with _lock:
            self.entries[key] = (body, time.monotonic() + seconds)
            self.entries.move_to_end(key)
            while len(self.entries) > self.max_entries:
                self.entries.popitem(last=False)

    def clear(self) -> None:
        with _lock:
            self.entries.clear()


local_cache = LocalCache()


class WindowThrottle:
    """Fixed-window counting per client, shared through the cache, synced in batches."""

    def __init__(self):
        self.pending: dict[tuple[str, int], list[int]] = {}  # (ident, window) -> [unsynced, shared total]

    def hit(self, ident: str) -> tuple[bool, int]:
        rate = api_settings.DEFAULT_THROTTLE_RATES.get("anon")
        if not rate:
            return True, 0
        limit, period = SimpleRateThrottle.parse_rate(None, rate)
        now = time.time()
        window = int(now // period)
        sync_every = max(1, int(getattr(settings, "HUB_THROTTLE_SYNC_EVERY", 10)))
        with _lock:
            entry = self.pending.get((ident, window))
            if entry is None:
                self._forget_old(window)
                entry = self.pending[(ident, window)] = [0, 0]
            entry[0] += 1
            sync = entry[1] == 0 or entry[0] >= sync_every
            delta = entry[0] if sync else 0
            if sync:
                entry[0] = 0
        if sync:
            total = _shared_incr(f"hub:fast-throttle:{ident}:{window}", delta, period + 1)
            with _lock:
                entry[1] = max(entry[1], total)
        estimate = entry[1] + entry[0]
        if estimate <= limit:
            return True, 0
        return False, max(1, int(period - now % period))

    def _forget_old(self, window: int) -> None:
        for key in [k for k in self.pending if k[1] < window]:
            del self.pending[key]


throttle = WindowThrottle()


def _shared_incr(key: str, delta: int, ttl: int) -> int:
    client = _redis_client()
    if client is not None:
        pipe = client.pipeline(transaction=False)
        pipe.incrby(key, delta)
        pipe.expire(key, ttl)
        return int(pipe.execute()[0])
    cache = caches["default"]
    cache.add(key, 0, timeout=ttl)
    try:
        return cache.incr(key, delta)
    except ValueError:
        cache.set(key, delta, timeout=ttl)
        return delta


def _redis_client():
    """The redis-py client behind Django's RedisCache (made once per backend: building one costs
    more than a round trip), or None for other cache backends."""
    backend = caches["default"]
    if not isinstance(backend, RedisCache):
        return None
    if _client_for["backend"] is not backend:
        _client_for["client"] = backend._cache.get_client(write=True)
        _client_for["backend"] = backend
    return _client_for["client"]


def _throttled(wait: int) -> JsonResponse:
    response = JsonResponse({"code": "throttled", "detail": "Request was throttled.", "retry_after": wait},
                            status=429)
    response["Retry-After"] = str(wait)
    return response


def _json(body: bytes) -> HttpResponse:
    response = HttpResponse(body, content_type="application/json")
    response["Vary"] = "Accept, Cookie, Authorization"
    return response


def anonymous_cache(view):
    """Wrap a DRF ``as_view()`` callable with the anonymous fast path."""

    @functools.wraps(view)
    def wrapped(request, *args, **kwargs):
        if not eligible(request):
            return view(request, *args, **kwargs)
        allowed, wait = throttle.hit(AnonRateThrottle().get_ident(request))
        if not allowed:
            return _throttled(wait)
        digest = hashlib.sha256(f"{request.get_host()}|{request.get_full_path()}".encode()).hexdigest()
        key = f"hub:fast:{current_generation()}:{digest}"
        seconds = settings.HUB_CACHE_SECONDS
        body = local_cache.get(key)
        if body is None:
            body = caches["default"].get(key)
            if body is not None:
                local_cache.set(key, body, seconds)
        if body is not None:
            return _json(body)
        setattr(request, FAST_THROTTLED, True)
        response = view(request, *args, **kwargs)
        if response.status_code == 200:
            response.render()
            caches["default"].set(key, response.content, timeout=seconds)
            local_cache.set(key, response.content, seconds)
        return response

    return wrapped
