"""Every API error is JSON ``{"code", "detail", ...}`` with a fitting status (CONTRACTS.md section 5)."""

from __future__ import annotations

import json
import logging

from django.core.exceptions import PermissionDenied
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from ..errors import PlatformError, RegistryError
from .handlers import limit_error

log = logging.getLogger(__name__)

_DRF_CODES = {
    exceptions.NotAuthenticated: "not_authenticated",
    exceptions.AuthenticationFailed: "authentication_failed",
    exceptions.PermissionDenied: "permission_denied",
    exceptions.NotFound: "not_found",
    exceptions.MethodNotAllowed: "method_not_allowed",
    exceptions.NotAcceptable: "not_acceptable",
    exceptions.UnsupportedMediaType: "unsupported_media_type",
    exceptions.Throttled: "throttled",
    exceptions.ParseError: "parse_error",
    exceptions.ValidationError: "invalid_input",
}


def _drf_code(exc) -> str:
    for cls in type(exc).__mro__:
        if cls in _DRF_CODES:
            return _DRF_CODES[cls]
    return "error"


def exception_handler(exc, context):
    if isinstance(exc, RegistryError):
        response = Response(exc.to_dict(), status=exc.status)
        if isinstance(exc, PlatformError):
            response["Retry-After"] = str(exc.retry_after)
        return response
    framework_limit = limit_error(exc)  # form fields over Django's memory limit, too many fields
    if framework_limit is not None:
        return Response(json.loads(framework_limit.content), status=framework_limit.status_code)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        body = {"code": "invalid_input", "detail": "the request is invalid", "errors": exc.detail}
    else:
        detail = exc.detail if isinstance(exc, exceptions.APIException) else str(exc)
        body = {"code": _drf_code(exc), "detail": str(detail)}
    if isinstance(exc, exceptions.Throttled):
        body["retry_after"] = exc.wait
        response["Retry-After"] = str(int(exc.wait or 1))
    response.data = body
    if response.status_code == status.HTTP_401_UNAUTHORIZED and "WWW-Authenticate" not in response:
        response["WWW-Authenticate"] = 'Bearer realm="api"'
    return response
