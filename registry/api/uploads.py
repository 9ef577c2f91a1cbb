"""Upload and download endpoints. ``upload_urlpatterns`` is included by registry.api.urls.

POST /api/v1/adapters/upload            multipart upload of one version (201 new, 200 identical)
GET  /api/v1/files/<file_id>/download   302 to a short-lived presigned URL, or the bytes
"""

from __future__ import annotations

import json
from contextlib import nullcontext

from django.conf import settings
from django.http import FileResponse, HttpResponseRedirect
from django.urls import path, reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.response import Response
from rest_framework.throttling import ScopedRateThrottle
from rest_framework.views import APIView

from ..choices import Visibility
from ..errors import InvalidInput
from ..services import download as download_service
from ..services import upload as upload_service
from ..uploadhandlers import HubMultiPartParser, LimitedUploadHandler
from .views_common import ERROR

class UploadRequestSerializer(serializers.Serializer):
    """The multipart form of an upload (documentation; the service does the checking)."""

    archive = serializers.FileField(
        required=False,
        help_text="Instead of files: one zip or tar(.gz) of the adapter folder (files at the top or in one folder).",
    )
    files = serializers.ListField(
        child=serializers.FileField(), required=False,
        help_text="The adapter folder's files, one part each, named by their file name: adapter_config.json, "
                  "adapter.safetensors, optionally head_config.json + model_head.safetensors, "
                  "adapter_fusion_config.json + model_adapter_fusion.safetensors, README.md.",
    )
    identifier = serializers.CharField(help_text="task/subtask@org, e.g. sentiment/sst-2@ukp")
    model_name = serializers.CharField(help_text="The backbone, e.g. bert-base-uncased")
    version = serializers.CharField(help_text="1-64 of letters, digits, '.', '_', '-', '+'")
    claimed_score = serializers.FloatField(required=False)
    description = serializers.CharField(
        required=False, max_length=settings.HUB_MAX_DESCRIPTION_CHARS,
        help_text="free text; longer is 400 invalid_input (HUB_MAX_DESCRIPTION_CHARS); lists show a summary",
    )
    license = serializers.CharField(required=False, max_length=settings.HUB_MAX_LICENSE_CHARS)
    visibility = serializers.ChoiceField(choices=Visibility.choices, required=False)
    sha256 = serializers.CharField(
        required=False, help_text='JSON object mapping file names to their sha256 hex digest, checked on arrival'
    )


class UploadResponseSerializer(serializers.Serializer):
    url = serializers.CharField()
    identifier = serializers.CharField()
    version = serializers.CharField()
    status = serializers.CharField()
    digest = serializers.CharField()
    created = serializers.BooleanField()
    files = inline_serializer(
        "UploadedFile",
        {"id": serializers.IntegerField(), "name": serializers.CharField(), "size": serializers.IntegerField(),
         "sha256": serializers.CharField(), "download_url": serializers.CharField()},
        many=True,
    )


def _declared_sha256(raw) -> dict | None:
    if raw in (None, ""):
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        raise InvalidInput("sha256 must be a JSON object mapping file names to hex digests",
                           field="sha256") from None
    if not isinstance(value, dict):
        raise InvalidInput("sha256 must be a JSON object mapping file names to hex digests", field="sha256")
    return value


def _version_body(request, result) -> dict:
    version = result.version
    adapter = version.adapter
    return {
        "url": request.build_absolute_uri(
            reverse("api:version-detail", kwargs={"pk": adapter.pk, "version": version.version})
        ),
        "identifier": adapter.identifier,
        "model_name": adapter.model_name,
        "method": adapter.method,
        "config_hash": adapter.config_hash,
        "version": version.version,
        "status": version.status,
        "digest": version.digest,
        "created": result.created,
        "files": [
            {"id": f.pk, "name": f.name, "size": f.size, "sha256": f.sha256,
             "download_url": request.build_absolute_uri(reverse("api:file-download", kwargs={"file_id": f.pk}))}
            for f in version.files.order_by("name")
        ],
    }


class UploadView(APIView):
    """Upload a version. Files stream to disk under the limits of LimitedUploadHandler."""

    permission_classes = [IsAuthenticated]
    parser_classes = [HubMultiPartParser]
    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "upload"

    def dispatch(self, request, *args, **kwargs):
        # Installed before anything reads the body (the CSRF check of session auth may).
        handler = LimitedUploadHandler(request)
        request.upload_handlers = [handler]
        try:
            return super().dispatch(request, *args, **kwargs)
        finally:
            handler.cleanup()

    @extend_schema(
        operation_id="upload_adapter_version",
        request={"multipart/form-data": UploadRequestSerializer},
        responses={
            201: OpenApiResponse(UploadResponseSerializer, description="a new version, status pending"),
            200: OpenApiResponse(UploadResponseSerializer, description="identical re-upload: nothing changed"),
            400: ERROR, 401: ERROR, 403: ERROR, 404: ERROR, 409: ERROR, 413: ERROR, 415: ERROR, 429: ERROR,
            503: ERROR,
        },
    )
    def post(self, request):
        data = request.data
        files = request.FILES.getlist("files")
        archives = request.FILES.getlist("archive")
        unknown = sorted(set(request.FILES) - {"files", "archive"})
        if unknown:
            raise InvalidInput(f"unexpected file field(s) {', '.join(unknown)}; send files as 'files'",
                               field=unknown[0])
        if archives and files or len(archives) > 1:
            raise InvalidInput("send either the files or one archive, not both", field="archive")
        with upload_service.unpacked_archive(archives[0]) if archives else nullcontext(files) as incoming:
            result = upload_service.upload_version(
                request.user, request.auth, data.get("identifier", ""), incoming,
                model_name=data.get("model_name", ""), version=data.get("version", ""),
                claimed_score=data.get("claimed_score"), description=data.get("description", ""),
                license=data.get("license", ""), declared_sha256=_declared_sha256(data.get("sha256")),
                visibility=data.get("visibility") or Visibility.PUBLIC,
            )
        code = status.HTTP_201_CREATED if result.created else status.HTTP_200_OK
        return Response(_version_body(request, result), status=code)


class FileDownloadView(APIView):
    """One file of a version: 302 to a presigned URL (S3) or the bytes (filesystem store)."""

    permission_classes = [AllowAny]

    @extend_schema(
        operation_id="download_file",
        responses={
            (200, "application/octet-stream"): OpenApiResponse(OpenApiTypes.BINARY, description="the file"),
            302: OpenApiResponse(description="redirect to a short-lived presigned URL"),
            404: ERROR, 503: ERROR,
        },
    )
    def get(self, request, file_id: int):
        result = download_service.download_file(request.user, request.auth, file_id)
        vf = result.file
        if result.url:
            response = HttpResponseRedirect(result.url)
        else:
            response = FileResponse(result.handle, as_attachment=True, filename=vf.name,
                                    content_type="application/octet-stream")
            response["Content-Length"] = str(vf.size)
        response["X-Checksum-Sha256"] = vf.sha256
        response["Cache-Control"] = "private, no-store"
        return response


upload_urlpatterns = [
    path("adapters/upload", UploadView.as_view(), name="adapter-upload"),
    path("files/<int:file_id>/download", FileDownloadView.as_view(), name="file-download"),
]
