"""Routes: JSON routes have no trailing slash (SPEC §3)."""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.routers import SimpleRouter

from config import views
from contacts.api.v3 import TiledeskAuthViewSet

v3_router = SimpleRouter(trailing_slash=False)
v3_router.register("v3/auth", TiledeskAuthViewSet, basename="v3-auth")

urlpatterns = [
    path("healthz", views.healthz, name="healthz"),
    path("readyz", views.readyz, name="readyz"),
    path("api/v1/", include("identity.api.urls")),
    path("", include("contacts.api.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
    path("admin/", admin.site.urls),
    *v3_router.urls,
]

handler400 = "config.exceptions.bad_request"
handler403 = "config.exceptions.permission_denied"
handler404 = "config.exceptions.page_not_found"
handler500 = "config.exceptions.server_error"
