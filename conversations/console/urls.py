"""Console routes, mounted at /console/ (page routes, no trailing slash past the root)."""

from django.contrib.auth.views import LogoutView
from django.urls import path

from conversations.console import views

app_name = "console"

urlpatterns = [
    path("", views.inbox, name="inbox"),
    path("login", views.ConsoleLoginView.as_view(), name="login"),
    path("logout", LogoutView.as_view(next_page="console:login"), name="logout"),
    path("conversations/<uuid:conversation_id>", views.conversation_detail, name="conversation"),
    path(
        "conversations/<uuid:conversation_id>/reply",
        views.conversation_reply,
        name="conversation-reply",
    ),
    path(
        "conversations/<uuid:conversation_id>/close",
        views.conversation_close,
        name="conversation-close",
    ),
    path("contacts/<uuid:contact_id>", views.contact_detail, name="contact"),
]
