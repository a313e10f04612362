"""Tiledesk-compatible /v3/auth routes: one viewset for the whole family."""

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.decorators import action
from rest_framework.response import Response

from config.api import ViewSet
from config.exceptions import Unauthenticated
from config.http import client_ip
from contacts import selectors, services
from contacts.api.authentication import bearer_token
from contacts.api.serializers import (
    SignInAnonymouslyInputSerializer,
    TiledeskCustomTokenOutputSerializer,
    TiledeskVisitorSignInOutputSerializer,
)
from contacts.api.throttles import (
    AnonymousMintIpThrottle,
    AnonymousMintProjectThrottle,
    CustomTokenIpThrottle,
)
from contacts.middleware import TILEDESK_BROWSER_ROUTES, cors_for_org
from identity import services as identity_services
from identity.api.serializers import SignInInputSerializer, TiledeskSignInOutputSerializer
from identity.api.throttles import AgentSignInIpThrottle
from identity.selectors import organization_by_public_id

V3_ERRORS = {
    400: OpenApiResponse(description="Invalid input"),
    401: OpenApiResponse(description="Not authenticated"),
    404: OpenApiResponse(description="Unknown project"),
    429: OpenApiResponse(description="Locked out or throttled"),
}


class TiledeskAuthViewSet(ViewSet):
    """`/v3/auth/…` in Tiledesk's request and response shapes (`success`, `token: "JWT …"`).

    The two visitor routes answer CORS as the widget routes do: a preflight for any origin
    (contacts.middleware, before any throttle counts it), and a response the page may read when
    the org it signed into allows the page's origin (or when no org was found: such an error
    tells nothing about one). Agent sign-in is not for browsers' cross-origin calls.
    """

    authentication_classes: list = []
    permission_classes: list = []
    cors_org = None  # the org a visitor route signed into, set by the action

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        if request.path in TILEDESK_BROWSER_ROUTES:
            cors_for_org(request, response, self.cors_org)
        return response

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

    @extend_schema(
        request=SignInAnonymouslyInputSerializer,
        responses={200: TiledeskVisitorSignInOutputSerializer, **V3_ERRORS},
    )
    @action(
        detail=False,
        methods=["post"],
        url_path="signinAnonymously",
        throttle_classes=[AnonymousMintIpThrottle, AnonymousMintProjectThrottle],
    )
    def signin_anonymously(self, request):
        data = SignInAnonymouslyInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        fields = data.validated_data
        org = self.cors_org = organization_by_public_id(org_id=fields["id_project"])
        firstname = fields.get("firstname") or ""
        lastname = fields.get("lastname") or ""
        given_name = services.full_name(firstname, lastname)
        firstname = firstname or services.guest_name_new()
        issued = services.contact_unverified_sign_in(
            org=org,
            current_device=None,
            name=given_name,
            email=fields.get("email"),
            custom_data=fields.get("attributes"),
            method=services.AuthMethod.BROWSER,
            user_agent=request.META.get("HTTP_USER_AGENT", ""),
            display_name=services.full_name(firstname, lastname),
        )
        user = {
            "_id": str(issued.contact.pk),
            "firstname": firstname,
            "lastname": lastname,
            "email": issued.contact.email,
            "attributes": issued.contact.non_verified_custom_data,
            "emailverified": False,
        }
        body = {"success": True, "token": f"JWT {issued.token}", "user": user}
        return Response(TiledeskVisitorSignInOutputSerializer(body).data)

    @extend_schema(
        request=None,
        responses={200: TiledeskCustomTokenOutputSerializer, **V3_ERRORS},
        description="Header `Authorization: JWT <customer-signed token>`. Returns our own "
        "short-lived verified contact token, never an echo of the customer's. A contact token "
        "of ours (from any /v3/auth or /widget route), still valid, is answered with itself and "
        "its contact: how Tiledesk clients resume a stored session.",
    )
    @action(
        detail=False,
        methods=["post"],
        url_path="signinWithCustomToken",
        throttle_classes=[],  # the exchange's own, below: a resume is not counted
    )
    def signin_with_custom_token(self, request):
        token = bearer_token(request)
        if not token:
            raise Unauthenticated()
        resumed = selectors.contact_principal_of_own_token(token=token)
        if resumed is not None:
            self.cors_org = resumed.org
            return Response(TiledeskCustomTokenOutputSerializer(_resumed(resumed, token)).data)
        # Tiledesk's widget resumes its stored token here on every page load, so resumes are no
        # more limited than GET /widget/me; only exchanges of customer-signed tokens (and tokens
        # that verify as neither) count against the per-IP rate.
        throttle = CustomTokenIpThrottle()
        if not throttle.allow_request(request, self):
            self.throttled(request, throttle.wait())
        issued, claims = services.contact_custom_token_sign_in(
            token=token, user_agent=request.META.get("HTTP_USER_AGENT", "")
        )
        contact = issued.contact
        self.cors_org = contact.org
        user = {
            "_id": claims["_id"],
            "firstname": claims.get("firstname") or "",
            "lastname": claims.get("lastname") or "",
            "email": contact.email,
            # The token's own attributes: the contact's merged custom_data may hold what the
            # customer's backend told us server to server, which is not the browser's to read.
            "attributes": claims.get("attributes") or {},
            "emailverified": bool(contact.email),
        }
        body = {
            "success": True,
            "token": f"JWT {issued.token}",
            "expires_at": issued.expires_at,
            "contact": contact,
            "user": user,
        }
        return Response(TiledeskCustomTokenOutputSerializer(body).data)


def _resumed(principal, token: str) -> dict:
    """Tiledesk's answer to a client presenting the token we gave it: the same token, its
    contact. Only what the widget may see (GET /widget/me's fields): never custom data the
    customer's backend sent, and a browser's own data only to that browser."""
    contact = principal.contact
    attributes = {} if contact.is_verified else contact.non_verified_custom_data
    user = {
        "_id": (contact.is_verified and contact.user_id) or str(contact.pk),
        "firstname": contact.name,
        "lastname": "",
        "email": contact.email,
        "attributes": attributes or {},
        "emailverified": contact.is_verified and bool(contact.email),
    }
    return {
        "success": True,
        "token": f"JWT {token}",
        "expires_at": principal.claims.expires_at,
        "contact": contact,
        "user": user,
    }
