"""Routes of the conversations layer, for config/urls.py to include.

`widget_urlpatterns` go at the site root (`widget/sessions…`); `org_urlpatterns` under `api/v1/`
(`orgs/<org_id>/conversations…`, and `…/contacts…`, the agents' contact reads).
"""

from django.urls import include, path
from rest_framework.routers import SimpleRouter

from contacts.api.agents import ContactViewSet
from conversations.api.views import ConversationViewSet, WidgetSessionViewSet

widget_router = SimpleRouter(trailing_slash=False)
widget_router.register("widget/sessions", WidgetSessionViewSet, basename="widget-sessions")

org_router = SimpleRouter(trailing_slash=False)
org_router.register("contacts", ContactViewSet, basename="org-contacts")
org_router.register("conversations", ConversationViewSet, basename="org-conversations")

widget_urlpatterns = widget_router.urls
org_urlpatterns = [path("orgs/<uuid:org_id>/", include(org_router.urls))]
