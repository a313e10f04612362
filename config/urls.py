"""Routes: JSON routes have no trailing slash (SPEC §3)."""

from django.conf import settings
from django.contrib import admin
from django.urls import include, path
from rest_framework.routers import SimpleRouter

from config import views
from config.api_docs import SchemaDocsView, SchemaView
from contacts.api.v3 import TiledeskAuthViewSet
from conversations.api.adopt import WidgetAdoptViewSet
from conversations.api.urls import org_urlpatterns, widget_urlpatterns

v3_router = SimpleRouter(trailing_slash=False)
v3_router.register("v3/auth", TiledeskAuthViewSet, basename="v3-auth")
adopt_router = SimpleRouter(trailing_slash=False)
adopt_router.register("widget", WidgetAdoptViewSet, basename="widget-adopt")

urlpatterns = [
    path("healthz", views.HealthzView.as_view(), name="healthz"),
    path("readyz", views.ReadyzView.as_view(), name="readyz"),
    path("api/v1/", include("identity.api.urls")),
    path("", include("contacts.api.urls")),
    path("", include(widget_urlpatterns)),
    path("", include(adopt_router.urls)),
    path("api/v1/", include(org_urlpatterns)),
    path("api/v1/", include("identity.api.audit")),
    path("api/v1/", include("conversations.api.data_rights")),
    path("api/schema/", SchemaView.as_view(), name="schema"),
    path("api/docs/", SchemaDocsView.as_view(url_name="schema"), name="docs"),
    path("admin/", admin.site.urls),
    path("console/", include("conversations.console.urls")),
    path("playground/", include("conversations.playground.urls")),
    *v3_router.urls,
]
if settings.BENCH_BASELINE:
    # First, so that the baseline pays the least URL resolving of any route: last, it paid
    # 27 us where the widget's routes pay 9-16, which flattered every ratio (docs/PERFORMANCE.md).
    urlpatterns.insert(0, path("", include("bench.baseline")))

handler400 = "config.exceptions.bad_request"
handler403 = "config.exceptions.permission_denied"
handler404 = "config.exceptions.page_not_found"
handler500 = "config.exceptions.server_error"
