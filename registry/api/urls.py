"""Routes of the REST API, mounted at /api/v1/."""

from django.urls import path, register_converter

from . import schema, views, views_catalog, views_index, views_manage, views_tokens  # noqa: F401 - schema registers
from .fastpath import anonymous_cache
from .uploads import upload_urlpatterns


class TextConverter:
    """A path segment without control characters (Postgres refuses NUL: that must be a 404, not a 500)."""

    regex = r"[^/\x00-\x1f\x7f]{1,200}"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


register_converter(TextConverter, "text")

app_name = "api"
urlpatterns = [
    path("", views_index.ApiIndexView.as_view(), name="index"),
    path("adapters", anonymous_cache(views.AdapterListView.as_view()), name="adapter-list"),
    path("adapters/<int:pk>", anonymous_cache(views.AdapterDetailView.as_view()), name="adapter-detail"),
    path("adapters/<int:pk>/versions", views.VersionListView.as_view(), name="version-list"),
    path("adapters/<int:pk>/versions/<text:version>", views.VersionDetailView.as_view(), name="version-detail"),
    path("adapters/<int:pk>/versions/<text:version>/yank", views_manage.YankView.as_view(), name="version-yank"),
    path(
        "adapters/<int:pk>/versions/<text:version>/unyank", views_manage.UnyankView.as_view(), name="version-unyank"
    ),
    path("adapters/<int:pk>/default-version", views_manage.DefaultVersionView.as_view(), name="default-version"),
    path("resolve", anonymous_cache(views.ResolveView.as_view()), name="resolve"),
    path("tasks", views_catalog.TaskListView.as_view(), name="task-list"),
    path("tasks/<text:slug>", views_catalog.TaskDetailView.as_view(), name="task-detail"),
    path("organisations", views_catalog.OrganisationListView.as_view(), name="organisation-list"),
    path("organisations/<text:slug>", views_catalog.OrganisationDetailView.as_view(), name="organisation-detail"),
    path("tokens", views_tokens.TokenListView.as_view(), name="token-list"),
    path("tokens/<int:pk>", views_tokens.TokenDetailView.as_view(), name="token-detail"),
    *upload_urlpatterns,
]
