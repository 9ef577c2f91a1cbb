"""Who may see and who may change what. Used by the API, the web UI and the services.

``token`` is the ApiToken the request authenticated with (``request.auth``), or None for a
session login; a token narrows what its user may do (scope and organisations).
"""

from __future__ import annotations

from django.db.models import Q

from .choices import WRITE_ROLES, Visibility
from .errors import NotFound, PermissionDeniedError
from .models import ApiToken, Membership
from .tokens import token_allows_org, token_allows_upload


def _token(auth) -> ApiToken | None:
    return auth if isinstance(auth, ApiToken) else None


def role_in(user, organisation) -> str | None:
    if not getattr(user, "is_authenticated", False):
        return None
    return (
        Membership.objects.filter(user=user, organisation=organisation).values_list("role", flat=True).first()
    )


def visible_adapters_q(user, auth=None) -> Q:
    """Public adapters, plus private ones of organisations the user (and token) may read."""
    q = Q(visibility=Visibility.PUBLIC)
    if getattr(user, "is_authenticated", False):
        member = Q(organisation__memberships__user=user)
        token = _token(auth)
        if token is not None:
            orgs = list(token.organisations.values_list("pk", flat=True))
            if orgs:
                member &= Q(organisation__in=orgs)
        q |= Q(visibility=Visibility.PRIVATE) & member
    return q


def can_view(user, adapter, auth=None) -> bool:
    if adapter.visibility == Visibility.PUBLIC:
        return True
    if role_in(user, adapter.organisation) is None:
        return False
    return token_allows_org(_token(auth), adapter.organisation)


def ensure_can_view(user, adapter, auth=None) -> None:
    """Raise 404 (never 403) so that a private adapter's existence is not revealed."""
    if not can_view(user, adapter, auth):
        raise NotFound("no such adapter")


def ensure_can_write(user, organisation, auth=None, *, action: str = "upload to") -> None:
    """Owners and maintainers may write; a token must have the upload scope and cover the org.

    Raises PermissionDeniedError (403) with a message saying which rule failed. Anonymous
    callers are refused by the views (401) before this is reached.
    """
    token = _token(auth)
    if token is not None and not token_allows_upload(token):
        raise PermissionDeniedError("this token has the read scope; create one with the upload scope")
    if token is not None and not token_allows_org(token, organisation):
        raise PermissionDeniedError(f"this token is not valid for the organisation '{organisation.slug}'")
    role = role_in(user, organisation)
    if role is None:
        raise PermissionDeniedError(f"you are not a member of the organisation '{organisation.slug}'")
    if role not in WRITE_ROLES:
        raise PermissionDeniedError(
            f"your role in '{organisation.slug}' is '{role}'; only owners and maintainers may {action} it"
        )
