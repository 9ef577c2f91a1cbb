"""Short-lived caching of the hot read paths (resolve, list/search, detail).

Keys carry the caller (user and token, since a token narrows what its user sees), so private
data never crosses users, and a generation number that every write to the registry bumps, so
a write invalidates every cached answer at once. HUB_CACHE_SECONDS bounds what a write made
behind the ORM's back (``QuerySet.update``) can leave stale.
"""

from __future__ import annotations

import hashlib
import time

from django.conf import settings
from django.core.cache import cache
from django.db.models.signals import m2m_changed, post_delete, post_save

GENERATION_KEY = "hub:api:generation"


def _fresh_generation() -> int:
    # Starts from the clock, so a generation lost with the cache (a Redis restart) never repeats
    # an earlier one that some process may still hold answers for.
    return time.time_ns() // 1000


def generation() -> int:
    value = cache.get(GENERATION_KEY)
    if value is None:
        cache.add(GENERATION_KEY, _fresh_generation(), timeout=None)
        value = cache.get(GENERATION_KEY) or _fresh_generation()
    return int(value)


def invalidate(*_args, **_kwargs) -> None:
    """Make every cached API answer stale."""
    try:
        cache.incr(GENERATION_KEY)
    except ValueError:
        cache.set(GENERATION_KEY, _fresh_generation(), timeout=None)


def key_for(request, name: str, *parts) -> str:
    user = request.user
    who = f"u{user.pk}" if getattr(user, "is_authenticated", False) else "anon"
    token = getattr(request.auth, "pk", None)
    raw = "|".join([name, who, f"t{token}", *(str(p) for p in parts), request.get_host(), request.get_full_path()])
    return f"hub:api:{generation()}:{hashlib.sha256(raw.encode()).hexdigest()}"


def cached(request, name: str, build, *parts):
    """Return the cached value for this caller and request, or ``build()`` and store it."""
    seconds = getattr(settings, "HUB_CACHE_SECONDS", 0)
    if seconds <= 0:
        return build()
    key = key_for(request, name, *parts)
    value = cache.get(key)
    if value is None:
        value = build()
        cache.set(key, value, timeout=seconds)
    return value


def connect_signals() -> None:
    """Invalidate on every save/delete of the registry's models (idempotent)."""
    from ..models import Adapter, AdapterVersion, ApiToken, Membership, Organisation, Subtask, Task, VersionFile

    for model in (Adapter, AdapterVersion, VersionFile, Organisation, Membership, Task, Subtask, ApiToken):
        uid = f"hub-cache-{model.__name__}"
        post_save.connect(invalidate, sender=model, dispatch_uid=f"{uid}-save", weak=False)
        post_delete.connect(invalidate, sender=model, dispatch_uid=f"{uid}-delete", weak=False)
    m2m_changed.connect(
        invalidate, sender=ApiToken.organisations.through, dispatch_uid="hub-cache-token-orgs", weak=False
    )
