"""Owner actions: yank / unyank a version, set the default version (owners and maintainers only)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from ..querysets import adapter_with_current
from ..services import versions
from .serializers import AdapterDetailSerializer, DefaultVersionSerializer, VersionSerializer, YankSerializer
from .views_common import WRITE_ERRORS, writable_adapter


class YankView(APIView):
    """Hide a version from default resolution; pinned downloads keep working with a warning."""

    @extend_schema(
        operation_id="adapters_versions_yank", request=YankSerializer,
        responses={200: VersionSerializer, **WRITE_ERRORS},
    )
    def post(self, request, pk: int, version: str):
        adapter = writable_adapter(request, pk, action="yank versions of")
        body = YankSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        found = versions.yank(adapter, version, body.validated_data.get("reason", ""))
        return Response(VersionSerializer(found).data)


class UnyankView(APIView):
    """Undo a yank."""

    @extend_schema(
        operation_id="adapters_versions_unyank", request=None, responses={200: VersionSerializer, **WRITE_ERRORS}
    )
    def post(self, request, pk: int, version: str):
        adapter = writable_adapter(request, pk, action="unyank versions of")
        return Response(VersionSerializer(versions.unyank(adapter, version)).data)


class DefaultVersionView(APIView):
    """Choose the version resolved when none is pinned (null: newest valid, non-yanked)."""

    @extend_schema(
        operation_id="adapters_default_version", request=DefaultVersionSerializer,
        responses={200: AdapterDetailSerializer, **WRITE_ERRORS},
    )
    def post(self, request, pk: int):
        adapter = writable_adapter(request, pk, action="set the default version of")
        body = DefaultVersionSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        updated = versions.set_default_version(adapter, body.validated_data["version"])
        return Response(AdapterDetailSerializer(adapter_with_current(updated.pk), context={"request": request}).data)
