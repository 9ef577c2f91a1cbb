"""Top-level URLs: the REST API, its schema and docs, the web UI, the admin."""

from django.contrib import admin
from django.http import JsonResponse
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView


def healthz(request):
    return JsonResponse({"status": "ok"})


# Under /api/ the framework's own error pages are JSON too (CONTRACTS.md section 5).
handler400 = "registry.api.handlers.bad_request"
handler403 = "registry.api.handlers.permission_denied"
handler404 = "registry.api.handlers.page_not_found"
handler500 = "registry.api.handlers.server_error"

urlpatterns = [
    path("", include("registry.web.urls")),
    path("accounts/", include("django.contrib.auth.urls")),
    path("healthz", healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("api/v1/", include("registry.api.urls")),
]
