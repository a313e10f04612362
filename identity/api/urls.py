from rest_framework.routers import SimpleRouter

from identity.api.orgs import MyOrgsViewSet
from identity.api.views import AgentAuthViewSet

router = SimpleRouter(trailing_slash=False)
router.register("auth", AgentAuthViewSet, basename="agent-auth")
router.register("orgs", MyOrgsViewSet, basename="my-orgs")

urlpatterns = router.urls
