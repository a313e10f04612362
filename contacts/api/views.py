"""Widget routes for browser identities: config, unverified contacts, me and logout."""

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from contacts import selectors, services
from contacts.api.authentication import (
    ContactTokenAuthentication,
    WidgetTokenAuthentication,
    optional_bearer_token,
)
from contacts.api.serializers import (
    MeOutputSerializer,
    UnverifiedInputSerializer,
    UnverifiedOutputSerializer,
    WidgetConfigOutputSerializer,
)
from contacts.api.throttles import AnonymousMintIpThrottle, AnonymousMintWidgetThrottle

WIDGET_TOKEN = OpenApiParameter(
    "X-Widget-Token", location=OpenApiParameter.HEADER, required=True, description="wgt_…"
)
UNAUTHENTICATED = OpenApiResponse(description="Unknown widget token or invalid contact token")


class WidgetViewSet(viewsets.ViewSet):
    """Routes that need only the org's public widget token."""

    authentication_classes = [WidgetTokenAuthentication]
    permission_classes: list = []

    @extend_schema(
        parameters=[WIDGET_TOKEN],
        responses={200: WidgetConfigOutputSerializer, 401: UNAUTHENTICATED},
    )
    @action(detail=False, methods=["get"])
    def config(self, request):
        return Response(WidgetConfigOutputSerializer(request.user.org).data)

    @extend_schema(
        parameters=[WIDGET_TOKEN],
        request=UnverifiedInputSerializer,
        responses={
            201: UnverifiedOutputSerializer,
            400: OpenApiResponse(description="Invalid input"),
            401: UNAUTHENTICATED,
            409: OpenApiResponse(description="The presented token belongs to a verified contact"),
            429: OpenApiResponse(description="Throttled"),
        },
    )
    @action(
        detail=False,
        methods=["post"],
        url_path="contacts/unverified",
        throttle_classes=[AnonymousMintIpThrottle, AnonymousMintWidgetThrottle],
    )
    def unverified(self, request):
        data = UnverifiedInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        org = request.user.org
        issued = services.contact_unverified_sign_in(
            org=org,
            current_device=selectors.device_for_reuse(
                org=org, token=optional_bearer_token(request)
            ),
            name=data.validated_data.get("name"),
            email=data.validated_data.get("email"),
            custom_data=data.validated_data.get("customData"),
            method=data.validated_data["method"],
            user_agent=request.META.get("HTTP_USER_AGENT", ""),
        )
        body = {
            "token": issued.token,
            "contact": issued.contact,
            "externalId": data.validated_data.get("externalId") or services.external_id_new(),
            "expires_at": issued.expires_at,
        }
        return Response(UnverifiedOutputSerializer(body).data, status=status.HTTP_201_CREATED)


class WidgetContactViewSet(viewsets.ViewSet):
    """Routes that act as the visitor holding a contact token."""

    authentication_classes = [ContactTokenAuthentication]
    permission_classes: list = []

    @extend_schema(
        parameters=[WIDGET_TOKEN], responses={200: MeOutputSerializer, 401: UNAUTHENTICATED}
    )
    @action(detail=False, methods=["get"])
    def me(self, request):
        return Response(MeOutputSerializer(request.user.contact).data)

    @extend_schema(
        parameters=[WIDGET_TOKEN], request=None, responses={204: None, 401: UNAUTHENTICATED}
    )
    @action(detail=False, methods=["post"])
    def logout(self, request):
        services.device_revoke(device=request.user.device)
        return Response(status=status.HTTP_204_NO_CONTENT)
