"""The landing page. The full web UI (browse, search, adapter pages, upload form) comes in a later issue."""

from django.db.models import Count, Q
from django.shortcuts import render

from registry.choices import Visibility
from registry.models import Adapter, Task


def index(request):
    tasks = Task.objects.annotate(
        public_adapters=Count("adapters", filter=Q(adapters__visibility=Visibility.PUBLIC))
    ).prefetch_related("subtasks")
    context = {
        "tasks": tasks,
        "adapter_count": Adapter.objects.filter(visibility=Visibility.PUBLIC).count(),
    }
    return render(request, "hubsite/index.html", context)
