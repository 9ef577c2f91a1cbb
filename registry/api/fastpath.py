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

Rate limiting: every request here is counted by registry.api.throttles, the same throttle and
the same per-client budget as the DRF views (which then do not count it again).
"""

from __future__ import annotations

import functools
import hashlib
import threading
import time

from django.conf import settings
from django.core.cache import caches
from django.http import HttpResponse, JsonResponse

from ..localcache import LocalCache
from . import caching
from .throttles import FAST_THROTTLED, check_anonymous
from .throttles import counter as throttle  # noqa: F401 - the shared counter (tests reset its pending hits)

_lock = threading.Lock()
_generation = {"value": None, "read_at": 0.0}


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
        and "direct" not in request.GET  # resolve's presigned URLs are signed and counted per request
    )


local_cache = LocalCache()


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
        allowed, wait = check_anonymous(request)
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
