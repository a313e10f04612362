"""Playground routes, mounted at /playground/: the page and the demo backend."""

from django.urls import path
from rest_framework.routers import SimpleRouter

from conversations.playground import views

app_name = "playground"

router = SimpleRouter(trailing_slash=False)
router.register("demo-backend", views.DemoBackendViewSet, basename="demo-backend")

urlpatterns = [
    path("", views.playground, name="index"),
    *router.urls,
]
