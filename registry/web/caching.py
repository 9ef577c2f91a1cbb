"""Renders of the heavy browse pages (explore, search, leaderboards), cached like the API's hot reads.

Two layers. ``anonymous_page``: the whole anonymous response. ``shared_body``: the body of a page
(everything between the site header and footer, which carry the user's name and CSRF tokens),
shared by every visitor who sees the same adapters: anonymous visitors and signed-in users without
an organisation see the public catalogue, and a member sees it plus the private adapters of their
organisations (``visibility_scope``), so a signed-in render costs the page frame, not the queries.

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
from django.utils.safestring import mark_safe

from ..api.caching import generation


def _key(request, name: str) -> str:
    raw = "|".join([name, request.get_host(), request.get_full_path()])
    return f"hub:web:{generation()}:{hashlib.sha256(raw.encode()).hexdigest()}"


def visibility_scope(user) -> str:
    """What decides which adapters ``user`` sees: ``public``, or the organisations they belong to."""
    if not getattr(user, "is_authenticated", False):
        return "public"
    from ..models import Membership

    orgs = sorted(Membership.objects.filter(user=user).values_list("organisation_id", flat=True))
    return "orgs:" + ",".join(str(pk) for pk in orgs) if orgs else "public"


def shared_body(request, name: str, render_body) -> str:
    """The HTML of ``render_body()`` for this path and visibility scope, from the cache when a
    visitor who sees the same adapters has had it rendered since the last write."""
    seconds = getattr(settings, "HUB_CACHE_SECONDS", 0)
    if request.method != "GET" or seconds <= 0:
        return render_body()
    raw = "|".join([name, visibility_scope(request.user), request.get_host(), request.get_full_path()])
    key = f"hub:web:body:{generation()}:{hashlib.sha256(raw.encode()).hexdigest()}"
    body = cache.get(key)
    if body is None:
        body = str(render_body())
        cache.set(key, body, timeout=seconds)
    return mark_safe(body)  # noqa: S308 - our own template's output, escaped when it was rendered


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
