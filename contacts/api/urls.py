from rest_framework.routers import SimpleRouter

from contacts.api.views import WidgetContactViewSet, WidgetViewSet

router = SimpleRouter(trailing_slash=False)
router.register("widget", WidgetViewSet, basename="widget")
router.register("widget", WidgetContactViewSet, basename="widget-contact")

urlpatterns = router.urls
