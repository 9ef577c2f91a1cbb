"""Anonymous renders of the heavy browse pages (search, leaderboards), cached like the API's hot reads.

The key holds the registry's cache generation (registry.api.caching: every write bumps it), the host and
the full path, so a write makes every cached page stale at once and ``HUB_CACHE_SECONDS`` bounds the
rest. Only anonymous GETs whose response sets no cookie are stored (a page carrying a CSRF token or a
message is never shared), and signed-in users always get a fresh render.
"""

from __future__ import annotations

import functools
import hashlib

from django.conf import settings
from django.core.cache import cache
from django.http import HttpResponse

from ..api.caching import generation


def _key(request, name: str) -> str:
    raw = "|".join([name, request.get_host(), request.get_full_path()])
    return f"hub:web:{generation()}:{hashlib.sha256(raw.encode()).hexdigest()}"


def anonymous_page(name: str):
    """Decorator: serve ``name``'s anonymous GET renders from the cache."""

    def decorator(view):
        @functools.wraps(view)
        def wrapped(request, *args, **kwargs):
            seconds = getattr(settings, "HUB_CACHE_SECONDS", 0)
            if request.method != "GET" or request.user.is_authenticated or seconds <= 0:
                return view(request, *args, **kwargs)
            key = _key(request, name)
            body = cache.get(key)
            if body is not None:
                return HttpResponse(body, content_type="text/html; charset=utf-8")
            response = view(request, *args, **kwargs)
            if response.status_code == 200 and not response.cookies and not getattr(response, "streaming", False):
                cache.set(key, response.content, timeout=seconds)
            return response

        return wrapped

    return decorator
