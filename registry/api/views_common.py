"""Helpers shared by the API views: the error schema, login checks, visible-adapter lookup."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema_serializer, inline_serializer
from rest_framework import exceptions, serializers

from ..models import Adapter
from ..permissions import ensure_can_write
from ..querysets import visible_adapters


@extend_schema_serializer(component_name="ApiError")
class ErrorSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="stable machine-readable error code")
    detail = serializers.CharField(help_text="human-readable explanation")


ERROR = OpenApiResponse(ErrorSerializer, description="error: {code, detail, ...}")
READ_ERRORS = {400: ERROR, 404: ERROR, 429: ERROR}
WRITE_ERRORS = {400: ERROR, 401: ERROR, 403: ERROR, 404: ERROR, 409: ERROR, 429: ERROR}


def page_of(serializer_class, name: str):
    """The schema of a HubPagination answer: {count, next, previous, results: [serializer_class]}."""
    return inline_serializer(name, {
        "count": serializers.IntegerField(),
        "next": serializers.URLField(allow_null=True),
        "previous": serializers.URLField(allow_null=True),
        "results": serializer_class(many=True),
    })


def require_login(request) -> None:
    """Anonymous writes are 401 (RELIABILITY.md access control)."""
    if not getattr(request.user, "is_authenticated", False):
        raise exceptions.NotAuthenticated("sign in or send 'Authorization: Bearer <token>'")


def visible_adapter(request, pk: int) -> Adapter:
    """The adapter ``pk`` when the caller may see it; 404 (never 403) otherwise."""
    adapter = visible_adapters(request.user, request.auth).select_related("default_version").filter(pk=pk).first()
    if adapter is None:
        raise exceptions.NotFound("no such adapter")
    return adapter


def writable_adapter(request, pk: int, action: str) -> Adapter:
    """401 for anonymous callers, 404 when invisible, 403 unless an owner/maintainer (with a fitting token)."""
    require_login(request)
    adapter = visible_adapter(request, pk)
    ensure_can_write(request.user, adapter.organisation, request.auth, action=action)
    return adapter


def query_params(serializer_class, request) -> dict:
    """Validate query parameters (400 invalid_input on bad values); blank values count as absent."""
    ser = serializer_class(data=request.query_params)
    ser.is_valid(raise_exception=True)
    return {k: v for k, v in ser.validated_data.items() if v not in ("", None)}
