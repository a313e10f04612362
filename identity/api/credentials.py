"""Operators' org credentials: /api/v1/orgs/{org}/api-keys and …/signing-secrets."""

from drf_spectacular.utils import OpenApiResponse, PolymorphicProxySerializer, extend_schema
from rest_framework import status
from rest_framework.response import Response

from config.http import client_ip
from identity import selectors, services
from identity.api.access import OrgScopedViewSet
from identity.api.serializers import (
    ApiKeyCreatedOutputSerializer,
    ApiKeyCreateInputSerializer,
    ApiKeyOutputSerializer,
    ErrorOutputSerializer,
    PublicKeySigningSecretCreatedOutputSerializer,
    SharedSigningSecretCreatedOutputSerializer,
    SigningSecretCreateInputSerializer,
    SigningSecretOutputSerializer,
)
from identity.models import ApiKey, SigningSecret


def _error(description: str) -> OpenApiResponse:
    return OpenApiResponse(response=ErrorOutputSerializer, description=description)


READ_ERRORS = {
    401: _error("Not authenticated"),
    403: _error("Not an operator of this org, or an API key (keys cannot manage credentials)"),
    404: _error("Unknown org, or not a member of it"),
}
WRITE_ERRORS = {400: _error("Invalid input; `fields` says where"), **READ_ERRORS}
DELETE_ERRORS = {
    **READ_ERRORS,
    404: _error("Unknown org, or no such credential in this org"),
}


class ApiKeyViewSet(OrgScopedViewSet):
    """API keys for server-to-server calls. The full key is shown once, at creation."""

    operator_only = True
    queryset = ApiKey.objects.none()  # describes the `{id}` path parameter; never queried
    # Digits only, and few enough to fit a bigint: anything else is a 404, never a 500.
    lookup_value_regex = r"[0-9]{1,18}"

    @extend_schema(
        summary="List the org's API keys (never the key itself)",
        responses={200: ApiKeyOutputSerializer(many=True), **READ_ERRORS},
    )
    def list(self, request, org_id):
        api_keys = selectors.api_keys_for_org(org=self.access.org)
        return Response(ApiKeyOutputSerializer(api_keys, many=True).data)

    @extend_schema(
        summary="Create an API key; the response holds the full key, once",
        request=ApiKeyCreateInputSerializer,
        responses={201: ApiKeyCreatedOutputSerializer, **WRITE_ERRORS},
    )
    def create(self, request, org_id):
        data = ApiKeyCreateInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        issued = services.api_key_create(
            org=self.access.org,
            created_by=self.access.user,
            ip=client_ip(request),
            **data.validated_data,
        )
        return Response(ApiKeyCreatedOutputSerializer(issued).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        summary="Revoke an API key (idempotent; the row stays, marked revoked)",
        responses={204: None, **DELETE_ERRORS},
    )
    def destroy(self, request, org_id, pk):
        services.api_key_revoke(
            org=self.access.org,
            api_key_id=int(pk),
            revoked_by=self.access.user,
            ip=client_ip(request),
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


SIGNING_SECRET_CREATED = PolymorphicProxySerializer(
    component_name="SigningSecretCreated",
    serializers=[
        SharedSigningSecretCreatedOutputSerializer,
        PublicKeySigningSecretCreatedOutputSerializer,
    ],
    resource_type_field_name=None,
)


class SigningSecretViewSet(OrgScopedViewSet):
    """Keys that verify customer-signed tokens: generated HS256 secrets or uploaded public keys."""

    operator_only = True
    queryset = SigningSecret.objects.none()  # describes the `{kid}` path parameter; never queried
    lookup_field = "kid"
    lookup_value_regex = r"[A-Za-z0-9_-]{1,64}"

    @extend_schema(
        summary="List the org's signing secrets (kids only, never key material)",
        responses={200: SigningSecretOutputSerializer(many=True), **READ_ERRORS},
    )
    def list(self, request, org_id):
        signing_secrets = selectors.signing_secrets_for_org(org=self.access.org)
        return Response(SigningSecretOutputSerializer(signing_secrets, many=True).data)

    @extend_schema(
        summary="Generate an HS256 secret (shown once) or register an RS256/ES256 public key",
        request=SigningSecretCreateInputSerializer,
        responses={
            201: SIGNING_SECRET_CREATED,
            **WRITE_ERRORS,
            409: _error("The org already has two active signing secrets"),
        },
    )
    def create(self, request, org_id):
        data = SigningSecretCreateInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        if data.validated_data["algorithm"] == SigningSecret.Algorithm.HS256:
            issued = services.signing_secret_create_shared(
                org=self.access.org, created_by=self.access.user, ip=client_ip(request)
            )
            body = SharedSigningSecretCreatedOutputSerializer(issued).data
        else:
            signing_secret = services.signing_secret_create_public_key(
                org=self.access.org,
                created_by=self.access.user,
                ip=client_ip(request),
                **data.validated_data,
            )
            body = PublicKeySigningSecretCreatedOutputSerializer(signing_secret).data
        return Response(body, status=status.HTTP_201_CREATED)

    @extend_schema(
        summary="Retire a signing secret: tokens under its kid are refused at once",
        responses={204: None, **DELETE_ERRORS},
    )
    def destroy(self, request, org_id, kid):
        services.signing_secret_retire(
            org=self.access.org, kid=kid, retired_by=self.access.user, ip=client_ip(request)
        )
        return Response(status=status.HTTP_204_NO_CONTENT)
