"""Tasks (with subtasks) and organisations."""

from __future__ import annotations

from django.db.models import Count, Q
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.views import APIView

from ..choices import Visibility
from ..models import Organisation, Task
from .pagination import HubPagination
from .serializers import OrganisationSerializer, TaskDetailSerializer, TaskSerializer
from .views_common import ERROR, page_of

PUBLIC_COUNT = Count("adapters", filter=Q(adapters__visibility=Visibility.PUBLIC))


class TaskListView(APIView):
    @extend_schema(operation_id="tasks_list", responses={200: page_of(TaskSerializer, "TaskPage"), 404: ERROR})
    def get(self, request):
        paginator = HubPagination()
        page = paginator.paginate_queryset(Task.objects.order_by("slug"), request, view=self)
        return paginator.get_paginated_response(TaskSerializer(page, many=True).data)


class TaskDetailView(APIView):
    @extend_schema(operation_id="tasks_retrieve", responses={200: TaskDetailSerializer, 404: ERROR})
    def get(self, request, slug: str):
        task = Task.objects.prefetch_related("subtasks").filter(slug=slug).first()
        if task is None:
            raise exceptions.NotFound(f"no task '{slug}'")
        return Response(TaskDetailSerializer(task).data)


class OrganisationListView(APIView):
    @extend_schema(
        operation_id="organisations_list",
        responses={200: page_of(OrganisationSerializer, "OrganisationPage"), 404: ERROR},
    )
    def get(self, request):
        paginator = HubPagination()
        orgs = Organisation.objects.annotate(public_adapters=PUBLIC_COUNT).order_by("slug")
        page = paginator.paginate_queryset(orgs, request, view=self)
        return paginator.get_paginated_response(OrganisationSerializer(page, many=True).data)


class OrganisationDetailView(APIView):
    @extend_schema(operation_id="organisations_retrieve", responses={200: OrganisationSerializer, 404: ERROR})
    def get(self, request, slug: str):
        org = Organisation.objects.annotate(public_adapters=PUBLIC_COUNT).filter(slug=slug).first()
        if org is None:
            raise exceptions.NotFound(f"no organisation '{slug}'")
        return Response(OrganisationSerializer(org).data)
