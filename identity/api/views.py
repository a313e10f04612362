"""Agent authentication routes: /api/v1/auth/token, /refresh and /logout."""

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.decorators import action
from rest_framework.response import Response

from config.api import ViewSet
from config.http import client_ip
from identity import services
from identity.api.serializers import (
    RefreshInputSerializer,
    SignInInputSerializer,
    TokenPairOutputSerializer,
)
from identity.api.throttles import AgentSignInIpThrottle

ERRORS = {
    400: OpenApiResponse(description="Invalid input"),
    401: OpenApiResponse(description="Not authenticated"),
    429: OpenApiResponse(description="Locked out or throttled"),
}


class AgentAuthViewSet(ViewSet):
    """Email + password sign-in for agents, with rotating refresh tokens."""

    authentication_classes: list = []
    permission_classes: list = []

    @extend_schema(
        request=SignInInputSerializer, responses={200: TokenPairOutputSerializer, **ERRORS}
    )
    @action(detail=False, methods=["post"], throttle_classes=[AgentSignInIpThrottle])
    def token(self, request):
        data = SignInInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        user = services.agent_sign_in(**data.validated_data, ip=client_ip(request))
        return Response(TokenPairOutputSerializer(services.agent_tokens_issue(user=user)).data)

    @extend_schema(
        request=RefreshInputSerializer, responses={200: TokenPairOutputSerializer, **ERRORS}
    )
    @action(detail=False, methods=["post"])
    def refresh(self, request):
        data = RefreshInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        tokens = services.agent_tokens_refresh(**data.validated_data)
        return Response(TokenPairOutputSerializer(tokens).data)

    @extend_schema(request=RefreshInputSerializer, responses={204: None, **ERRORS})
    @action(detail=False, methods=["post"])
    def logout(self, request):
        data = RefreshInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.agent_tokens_revoke(**data.validated_data)
        return Response(status=status.HTTP_204_NO_CONTENT)
