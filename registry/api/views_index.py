"""GET /api/v1/: an index of the API's endpoints, with links to the schema and the docs."""

from __future__ import annotations

from django.urls import reverse
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

# (name, method(s), path under /api/v1/, what it does)
ENDPOINTS = (
    ("adapters", "GET", "adapters", "search and list adapters (q, task, subtask, org, model_name, method, sort)"),
    ("adapter", "GET, DELETE", "adapters/{id}", "one adapter"),
    ("versions", "GET", "adapters/{id}/versions", "its versions"),
    ("version", "GET", "adapters/{id}/versions/{version}", "one version with its files and report"),
    ("yank", "POST", "adapters/{id}/versions/{version}/yank", "hide a version from defaults"),
    ("unyank", "POST", "adapters/{id}/versions/{version}/unyank", "undo a yank"),
    ("default_version", "POST", "adapters/{id}/default-version", "choose the default version"),
    ("upload", "POST", "adapters/upload", "upload a version (multipart)"),
    ("resolve", "GET", "resolve", "identifier (+ model_name, config, version) -> files"),
    ("download", "GET", "files/{id}/download", "one file's bytes or a presigned URL"),
    ("tasks", "GET", "tasks", "tasks"),
    ("task", "GET", "tasks/{slug}", "one task with its subtasks"),
    ("organisations", "GET", "organisations", "organisations"),
    ("organisation", "GET", "organisations/{slug}", "one organisation"),
    ("tokens", "GET, POST", "tokens", "your API tokens; create one"),
    ("token", "DELETE", "tokens/{id}", "revoke a token"),
)

_Index = inline_serializer("ApiIndex", {
    "name": serializers.CharField(), "version": serializers.CharField(), "schema": serializers.CharField(),
    "docs": serializers.CharField(),
    "endpoints": inline_serializer("ApiEndpoint", {
        "name": serializers.CharField(), "methods": serializers.CharField(), "path": serializers.CharField(),
        "description": serializers.CharField(),
    }, many=True),
})


class ApiIndexView(APIView):
    """The API's endpoints, so that /api/v1/ itself answers."""

    permission_classes = [AllowAny]

    @extend_schema(operation_id="api_index", responses={200: _Index})
    def get(self, request):
        base = request.build_absolute_uri(reverse("api:index"))
        return Response({
            "name": "Adapter Hub API",
            "version": "1",
            "schema": request.build_absolute_uri(reverse("api-schema")),
            "docs": request.build_absolute_uri(reverse("api-docs")),
            "endpoints": [
                {"name": name, "methods": methods, "path": base + path, "description": description}
                for name, methods, path, description in ENDPOINTS
            ],
        })
