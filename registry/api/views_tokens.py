"""API tokens of the signed-in user: list, create (raw value shown once), revoke."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import APIView

from ..choices import TokenScope
from ..errors import InvalidInput, PermissionDeniedError
from ..models import ApiToken, Membership, Organisation
from ..tokens import create_token
from .pagination import HubPagination
from .serializers import TokenCreatedSerializer, TokenCreateSerializer, TokenSerializer
from .views_common import WRITE_ERRORS, page_of, require_login


def _organisations(user, slugs: list[str]) -> list[Organisation]:
    """The organisations named by ``slugs``; each must exist and count ``user`` as a member."""
    orgs = []
    for slug in dict.fromkeys(slugs):
        org = Organisation.objects.filter(slug=slug).first()
        if org is None:
            raise InvalidInput(f"no organisation '{slug}'", field="organisations")
        if not Membership.objects.filter(user=user, organisation=org).exists():
            raise PermissionDeniedError(f"you are not a member of the organisation '{slug}'")
        orgs.append(org)
    return orgs


def _no_wider_than(current, scope: str, orgs: list[Organisation]) -> None:
    """A token may only mint tokens that can do no more than itself."""
    if not isinstance(current, ApiToken):
        return
    if scope == TokenScope.UPLOAD and current.scope != TokenScope.UPLOAD:
        raise PermissionDeniedError("a read-scope token cannot create an upload-scope token")
    allowed = set(current.organisations.values_list("pk", flat=True))
    if allowed and (not orgs or not {o.pk for o in orgs} <= allowed):
        raise PermissionDeniedError("this token may only create tokens for its own organisations")


def _expiry(current, days: int | None):
    """When the new token expires: never later than the token creating it (which it inherits by default)."""
    wanted = timezone.now() + timedelta(days=days) if days else None
    limit = current.expires_at if isinstance(current, ApiToken) else None
    if limit is None:
        return wanted
    if wanted is None:
        return limit
    if wanted > limit:
        raise PermissionDeniedError(
            f"this token expires at {limit.isoformat()}; it cannot create a token that expires later",
            expires_at=limit.isoformat(),
        )
    return wanted


class TokenListView(APIView):
    @extend_schema(operation_id="tokens_list", responses={200: page_of(TokenSerializer, "TokenPage"),
                                                           **WRITE_ERRORS})
    def get(self, request):
        require_login(request)
        paginator = HubPagination()
        tokens = ApiToken.objects.filter(user=request.user).prefetch_related("organisations")
        tokens = tokens.order_by("-created_at", "-id")
        page = paginator.paginate_queryset(tokens, request, view=self)
        return paginator.get_paginated_response(TokenSerializer(page, many=True).data)

    @extend_schema(
        operation_id="tokens_create", request=TokenCreateSerializer,
        responses={201: TokenCreatedSerializer, **WRITE_ERRORS},
    )
    def post(self, request):
        require_login(request)
        body = TokenCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        orgs = _organisations(request.user, data["organisations"])
        _no_wider_than(request.auth, data["scope"], orgs)
        token, raw = create_token(
            request.user, scope=data["scope"], organisations=orgs,
            expires_at=_expiry(request.auth, data.get("expires_days")), name=data.get("name", ""),
        )
        out = TokenSerializer(token).data
        out["token"] = raw
        return Response(out, status=status.HTTP_201_CREATED)


class TokenDetailView(APIView):
    @extend_schema(operation_id="tokens_revoke", responses={204: None, **WRITE_ERRORS})
    def delete(self, request, pk: int):
        require_login(request)
        token = ApiToken.objects.filter(user=request.user, pk=pk).first()
        if token is None:
            raise exceptions.NotFound("no such token")
        if token.revoked_at is None:
            token.revoked_at = timezone.now()
            token.save(update_fields=["revoked_at"])
        return Response(status=status.HTTP_204_NO_CONTENT)
