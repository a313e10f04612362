"""Widget routes: config, browser identities (unverified, me, logout) and authenticate-user."""

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.decorators import action
from rest_framework.response import Response

from config.api import ViewSet
from contacts import selectors, services
from contacts.api.authentication import (
    ContactTokenAuthentication,
    WidgetTokenAuthentication,
    optional_bearer_token,
)
from contacts.api.serializers import (
    AuthenticateUserInputSerializer,
    AuthenticateUserOutputSerializer,
    MeOutputSerializer,
    UnverifiedInputSerializer,
    UnverifiedOutputSerializer,
    WidgetConfigOutputSerializer,
)
from contacts.api.throttles import (
    AnonymousMintIpThrottle,
    AnonymousMintWidgetThrottle,
    AuthenticateUserKeyThrottle,
)
from identity import widget_cache
from identity.api.access import ApiKeyScopePermission
from identity.api.authentication import ApiKeyAuthentication
from identity.api.throttles import OneRoundTripThrottlesMixin
from identity.models import ApiKey

WIDGET_TOKEN = OpenApiParameter(
    "X-Widget-Token", location=OpenApiParameter.HEADER, required=True, description="wgt_…"
)
UNAUTHENTICATED = OpenApiResponse(description="Unknown widget token or invalid contact token")


class WidgetViewSet(OneRoundTripThrottlesMixin, ViewSet):
    """Routes that need only the org's public widget token."""

    authentication_classes = [WidgetTokenAuthentication]
    permission_classes: list = []

    @extend_schema(
        parameters=[WIDGET_TOKEN],
        responses={200: WidgetConfigOutputSerializer, 401: UNAUTHENTICATED},
    )
    @action(detail=False, methods=["get"])
    def config(self, request):
        org = request.user.org
        # Rendered once per memoised org (identity.widget_cache): the hottest widget route.
        data = widget_cache.memo_derived(
            org, "config", lambda: WidgetConfigOutputSerializer(org).data
        )
        return Response(data)

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


# One instance for every request: its to_representation reads nothing but the contact it is
# given, and making a serializer cost more than rendering its four fields (docs/PERFORMANCE.md).
_ME_OUTPUT = MeOutputSerializer()


class WidgetContactViewSet(ViewSet):
    """Routes that act as the visitor holding a contact token."""

    authentication_classes = [ContactTokenAuthentication]
    permission_classes: list = []

    @extend_schema(
        parameters=[WIDGET_TOKEN], responses={200: MeOutputSerializer, 401: UNAUTHENTICATED}
    )
    @action(detail=False, methods=["get"])
    def me(self, request):
        return Response(_ME_OUTPUT.to_representation(request.user.contact))

    @extend_schema(
        parameters=[WIDGET_TOKEN], request=None, responses={204: None, 401: UNAUTHENTICATED}
    )
    @action(detail=False, methods=["post"])
    def logout(self, request):
        services.device_revoke(device=request.user.device)
        return Response(status=status.HTTP_204_NO_CONTENT)


class WidgetServerViewSet(ViewSet):
    """Server-to-server: the customer's backend vouches for a user with a scoped org API key."""

    authentication_classes = [ApiKeyAuthentication]
    permission_classes = [ApiKeyScopePermission]
    required_scope = ApiKey.Scope.WIDGET_AUTHENTICATE

    @extend_schema(
        request=AuthenticateUserInputSerializer,
        responses={
            201: AuthenticateUserOutputSerializer,
            400: OpenApiResponse(description="Invalid input"),
            401: OpenApiResponse(description="Missing or unusable API key"),
            403: OpenApiResponse(description="The key lacks widget:authenticate"),
            409: OpenApiResponse(description="The email belongs to another verified user_id"),
            429: OpenApiResponse(description="Throttled"),
        },
    )
    @action(
        detail=False,
        methods=["post"],
        url_path="authenticate-user",
        throttle_classes=[AuthenticateUserKeyThrottle],
    )
    def authenticate_user(self, request):
        principal = request.user  # an API key with the scope (ApiKeyScopePermission)
        data = AuthenticateUserInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        fields = data.validated_data
        issued = services.contact_verified_sign_in(
            org=principal.org,
            profile=services.VerifiedProfile(
                email=fields["email"],
                user_id=fields.get("user_id", ""),
                name=fields.get("name"),
                phone=fields.get("phone"),
                avatar_url=fields.get("avatar_url"),
                language=fields.get("language"),
                custom_data=fields.get("customData"),
                chat_context=fields.get("chat_context"),
                http_action_overrides=fields.get("http_action_overrides"),
            ),
            proof=services.VerifiedProof(
                method=services.AuthMethod.API_KEY, key_id=principal.api_key.prefix
            ),
            user_agent=request.META.get("HTTP_USER_AGENT", ""),
        )
        body = {"token": issued.token, "contact": issued.contact, "expires_at": issued.expires_at}
        return Response(AuthenticateUserOutputSerializer(body).data, status=status.HTTP_201_CREATED)
