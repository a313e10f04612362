from django.urls import include, path
from rest_framework.routers import SimpleRouter

from identity.api.credentials import ApiKeyViewSet, SigningSecretViewSet
from identity.api.orgs import MyOrgsViewSet
from identity.api.views import AgentAuthViewSet
from identity.api.widget_settings import WidgetSettingsViewSet

router = SimpleRouter(trailing_slash=False)
router.register("auth", AgentAuthViewSet, basename="agent-auth")
router.register("orgs", MyOrgsViewSet, basename="my-orgs")

# Routes under one org; the uuid converter makes a malformed org id a plain 404.
org_router = SimpleRouter(trailing_slash=False)
org_router.register("api-keys", ApiKeyViewSet, basename="org-api-keys")
org_router.register("signing-secrets", SigningSecretViewSet, basename="org-signing-secrets")

urlpatterns = [
    path(
        "orgs/<uuid:org_id>/widget-settings",
        WidgetSettingsViewSet.as_view({"get": "retrieve", "patch": "partial_update"}),
        name="widget-settings",
    ),
    path(
        "orgs/<uuid:org_id>/widget-settings/rotate-token",
        WidgetSettingsViewSet.as_view({"post": "rotate_token"}),
        name="widget-settings-rotate-token",
    ),
    *router.urls,
    path("orgs/<uuid:org_id>/", include(org_router.urls)),
]
