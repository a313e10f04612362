"""Tiledesk-compatible /v3/auth routes: one viewset for the whole family."""

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from config.http import client_ip
from identity import services as identity_services
from identity.api.serializers import SignInInputSerializer, TiledeskSignInOutputSerializer
from identity.api.throttles import AgentSignInIpThrottle

V3_ERRORS = {
    400: OpenApiResponse(description="Invalid input"),
    401: OpenApiResponse(description="Not authenticated"),
    429: OpenApiResponse(description="Locked out or throttled"),
}


class TiledeskAuthViewSet(viewsets.ViewSet):
    """`/v3/auth/…` in Tiledesk's request and response shapes (`success`, `token: "JWT …"`)."""

    authentication_classes: list = []
    permission_classes: list = []

    @extend_schema(
        request=SignInInputSerializer,
        responses={200: TiledeskSignInOutputSerializer, **V3_ERRORS},
    )
    @action(detail=False, methods=["post"], throttle_classes=[AgentSignInIpThrottle])
    def signin(self, request):
        data = SignInInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        user = identity_services.agent_sign_in(**data.validated_data, ip=client_ip(request))
        tokens = identity_services.agent_tokens_issue(user=user)
        body = {"success": True, "token": f"JWT {tokens['access']}", "user": user}
        return Response(TiledeskSignInOutputSerializer(body).data)
