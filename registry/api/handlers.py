"""JSON errors for everything under /api/, including the framework's own pages (CONTRACTS.md section 5).

DRF views answer through registry.api.errors. What happens outside them (a URL that does not
resolve, a body over Django's memory limit, a crash) reaches Django's error handlers, which
``hubsite.urls`` points here, and ``ApiJsonErrorsMiddleware`` replaces any non-JSON error page
that still leaves an /api/ URL (e.g. with DEBUG on).
"""

from __future__ import annotations

import logging
from http import HTTPStatus

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.http import JsonResponse
from django.views import defaults

log = logging.getLogger(__name__)

API_PREFIX = "/api/"
CODES_BY_STATUS = {
    400: "bad_request", 401: "not_authenticated", 403: "permission_denied", 404: "not_found",
    405: "method_not_allowed", 406: "not_acceptable", 413: "too_large", 415: "unsupported_media_type",
    429: "throttled", 500: "server_error", 503: "service_unavailable",
}


def is_api(request) -> bool:
    return request.path.startswith(API_PREFIX)


def json_error(status: int, detail: str = "", code: str | None = None, **extra) -> JsonResponse:
    """The API's error body ``{"code", "detail", ...}`` with ``status``."""
    code = code or CODES_BY_STATUS.get(status, "error")
    detail = detail or HTTPStatus(status).phrase.lower()
    return JsonResponse({"code": code, "detail": detail, **extra}, status=status)


def limit_error(exception) -> JsonResponse | None:
    if isinstance(exception, RequestDataTooBig):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        return json_error(413, f"the request's form fields are over the limit of {limit} bytes", limit=limit)
    if isinstance(exception, TooManyFieldsSent):
        limit = settings.DATA_UPLOAD_MAX_NUMBER_FIELDS
        return json_error(400, f"more than {limit} fields sent", code="invalid_input", limit=limit)
    if isinstance(exception, TooManyFilesSent):
        limit = settings.DATA_UPLOAD_MAX_NUMBER_FILES
        return json_error(413, f"more than {limit} files sent", code="too_many_files", limit=limit)
    return None


def bad_request(request, exception=None, template_name="400.html"):
    if not is_api(request):
        return defaults.bad_request(request, exception, template_name)
    return limit_error(exception) or json_error(400, "the request could not be read")


def permission_denied(request, exception=None, template_name="403.html"):
    if not is_api(request):
        return defaults.permission_denied(request, exception, template_name)
    return json_error(403, "you do not have permission to perform this action")


def page_not_found(request, exception=None, template_name="404.html"):
    if not is_api(request):
        return defaults.page_not_found(request, exception, template_name)
    return json_error(404, "no API endpoint here; GET /api/v1/ lists them")


def server_error(request, template_name="500.html"):
    if not is_api(request):
        return defaults.server_error(request, template_name)
    return json_error(500, "internal error; it has been logged")


def _is_json(response) -> bool:
    return response.get("Content-Type", "").split(";")[0].strip().endswith("json")


class ApiJsonErrorsMiddleware:
    """A last line: an error response under /api/ that is not JSON becomes ``{"code", "detail"}``."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if response.status_code < 400 or not is_api(request) or _is_json(response):
            return response
        replaced = json_error(response.status_code)
        for header in ("Retry-After", "WWW-Authenticate", "Allow"):
            if header in response:
                replaced[header] = response[header]
        return replaced
