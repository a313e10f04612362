from rest_framework.routers import SimpleRouter

from contacts.api.views import WidgetContactViewSet, WidgetServerViewSet, WidgetViewSet

router = SimpleRouter(trailing_slash=False)
router.register("widget", WidgetViewSet, basename="widget")
router.register("widget", WidgetContactViewSet, basename="widget-contact")
router.register("widget", WidgetServerViewSet, basename="widget-server")

urlpatterns = router.urls
