"""API tokens: creation (raw value shown once), lookup by hash, scope and organisation checks."""

from __future__ import annotations

import secrets
from datetime import timedelta

from django.utils import timezone

from .choices import TokenScope
from .models import ApiToken, hash_token

TOKEN_PREFIX = "ahub_"


def create_token(user, *, scope=TokenScope.READ, organisations=(), expires_days=None, name="",
                 expires_at=None) -> tuple[ApiToken, str]:
    """Create a token for ``user``; returns the row and the raw token (never stored).

    ``expires_at`` (a datetime) wins over ``expires_days``; neither: the token never expires."""
    raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
    if expires_at is None and expires_days:
        expires_at = timezone.now() + timedelta(days=expires_days)
    token = ApiToken.objects.create(
        user=user, name=name, prefix=raw[: len(TOKEN_PREFIX) + 6], key_hash=hash_token(raw), scope=scope,
        expires_at=expires_at,
    )
    if organisations:
        token.organisations.set(organisations)
    return token, raw


def find_token(raw: str) -> ApiToken | None:
    return ApiToken.objects.select_related("user").filter(key_hash=hash_token(raw)).first()


def token_allows_org(token: ApiToken | None, organisation) -> bool:
    """A token with no organisations listed works for every organisation of its user."""
    if token is None:
        return True
    orgs = list(token.organisations.all())
    return not orgs or any(o.pk == organisation.pk for o in orgs)


def token_allows_upload(token: ApiToken | None) -> bool:
    return token is None or token.scope == TokenScope.UPLOAD
