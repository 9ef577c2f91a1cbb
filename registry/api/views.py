"""Read API for adapters: list/search with facets, detail, versions, and identifier resolution."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from ..querysets import adapter_with_current, visible_adapters
from ..services import download as download_service
from ..services import search, versions
from ..services.resolve import resolve
from . import caching
from .pagination import HubPagination
from .serializers import (
    AdapterDetailSerializer, AdapterPageSerializer, AdapterSerializer, FileSerializer, ResolveQuerySerializer,
    ResolveSerializer, SearchQuerySerializer, VersionDetailSerializer, VersionSerializer,
)
from .views_common import (
    ERROR, READ_ERRORS, WRITE_ERRORS, page_of, query_params, visible_adapter, writable_adapter,
)


class AdapterListView(APIView):
    """List and search adapters."""

    @extend_schema(
        operation_id="adapters_list", parameters=[SearchQuerySerializer],
        responses={200: AdapterPageSerializer, **READ_ERRORS},
    )
    def get(self, request):
        params = query_params(SearchQuerySerializer, request)
        return Response(caching.cached(request, "adapters", lambda: self._page(request, params)))

    def _page(self, request, params: dict) -> dict:
        fields = {k: v for k, v in params.items() if k in search.SearchParams.__dataclass_fields__}
        ordered, filtered = search.search_adapters(
            visible_adapters(request.user, request.auth), search.SearchParams(**fields)
        )
        paginator = HubPagination()
        page = paginator.paginate_queryset(ordered, request, view=self)
        return {
            "count": paginator.page.paginator.count,
            "next": paginator.get_next_link(),
            "previous": paginator.get_previous_link(),
            "results": AdapterSerializer(page, many=True, context={"request": request}).data,
            "facets": search.facets(filtered),
        }


class AdapterDetailView(APIView):
    """One adapter (GET) or its removal (DELETE, private adapters only)."""

    @extend_schema(operation_id="adapters_retrieve", responses={200: AdapterDetailSerializer, 404: ERROR, 429: ERROR})
    def get(self, request, pk: int):
        def build():
            adapter = adapter_with_current(visible_adapter(request, pk).pk)
            return AdapterDetailSerializer(adapter, context={"request": request}).data

        return Response(caching.cached(request, "adapter", build))

    @extend_schema(operation_id="adapters_destroy", responses={204: None, **WRITE_ERRORS})
    def delete(self, request, pk: int):
        adapter = writable_adapter(request, pk, action="delete adapters of")
        versions.delete_adapter(adapter)
        return Response(status=status.HTTP_204_NO_CONTENT)


class VersionListView(APIView):
    """Every version of an adapter, newest first (all statuses, yanked ones included)."""

    pagination_class = HubPagination

    @extend_schema(operation_id="adapters_versions_list", responses={200: page_of(VersionSerializer, "VersionPage"),
                                                                    **READ_ERRORS})
    def get(self, request, pk: int):
        adapter = visible_adapter(request, pk)
        paginator = HubPagination()
        page = paginator.paginate_queryset(adapter.versions.order_by("-created_at", "-id"), request, view=self)
        return paginator.get_paginated_response(VersionSerializer(page, many=True).data)


class VersionDetailView(APIView):
    """One version with its files (download URLs) and validation report."""

    @extend_schema(operation_id="adapters_versions_retrieve", responses={200: VersionDetailSerializer, **READ_ERRORS})
    def get(self, request, pk: int, version: str):
        adapter = visible_adapter(request, pk)
        found = versions.get_version(adapter, version)
        return Response(VersionDetailSerializer(found, context={"request": request}).data)


class ResolveView(APIView):
    """Resolve ``task/subtask[@org]`` (+ backbone, config, version) to one version and its files."""

    @extend_schema(
        operation_id="resolve", parameters=[ResolveQuerySerializer],
        responses={200: ResolveSerializer, 400: ERROR, 404: ERROR, 409: ERROR, 429: ERROR},
    )
    def get(self, request):
        params = query_params(ResolveQuerySerializer, request)
        answer = caching.cached(request, "resolve", lambda: self._resolve(request, params))
        if params.get("direct"):  # signed and counted on every request, never cached
            urls = download_service.direct_urls(answer)
            answer = {**answer, "files": [{**f, "direct_url": urls[f["id"]]} if f["id"] in urls else f
                                          for f in answer["files"]]}
        return Response(answer)

    def _resolve(self, request, params: dict) -> dict:
        found = resolve(
            params["id"], user=request.user, auth=request.auth, model_name=params.get("model_name", ""),
            config=params.get("config", ""), version=params.get("version", ""),
        )
        adapter, chosen = found.adapter, found.version
        return {
            "identifier": adapter.identifier, "adapter_id": adapter.pk, "model_name": adapter.model_name,
            "model_type": adapter.model_type, "method": adapter.method, "config": adapter.config,
            "config_hash": adapter.config_hash, "version": chosen.version, "status": chosen.status,
            "yanked": chosen.yanked, "digest": chosen.digest, "warning": found.warning,
            "backbone_fingerprint": chosen.backbone_fingerprint,
            "files": FileSerializer(found.files, many=True, context={"request": request}).data,
        }
