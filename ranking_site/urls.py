from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from core import health
from core.api import errors

api_v1 = [
    path("", include("events.urls")),
    path("", include("events.read_urls")),
    path("", include("rankings.urls")),
    path("", include("videos.urls")),
    path("", include("rankings.activity_urls")),
]

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", include(api_v1)),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="schema"), name="redoc"),
    # Last under api/: every other URL there answers a JSON 404, with DEBUG on too (see api_not_found).
    re_path(r"^api/", errors.api_not_found, name=errors.API_NOT_FOUND_ROUTE),
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", health.metrics_view, name="metrics"),
    path("", include("web.urls")),
]

# API clients get the error shape, not an HTML page, for an unknown URL or a crash.
handler404 = "core.api.errors.not_found"
handler500 = "core.api.errors.server_error"
