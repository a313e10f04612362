"""Operators' widget settings: /api/v1/orgs/{org}/widget-settings and token rotation."""

import re
from datetime import timedelta
from urllib.parse import urlsplit

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.decorators import action
from rest_framework.response import Response

from config.fields import StrictBooleanField, StrictCharField, check_custom_data
from config.http import client_ip
from identity import services
from identity.api.access import OrgScopedViewSet

FIELD_TYPES = ("text", "email", "number", "select", "checkbox")
FIELD_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")
MIN_LIFETIME = timedelta(minutes=5)
MAX_LIFETIME = timedelta(days=365)
MAX_VERIFIED_LIFETIME = timedelta(days=7)


class ExtraFieldSerializer(serializers.Serializer):
    name = StrictCharField(max_length=64)
    label = StrictCharField(max_length=200)
    type = serializers.ChoiceField(choices=FIELD_TYPES)
    required = StrictBooleanField(default=False)
    options = serializers.ListField(
        child=StrictCharField(max_length=200), required=False, max_length=50
    )

    def validate_name(self, value):
        if not FIELD_NAME.match(value):
            raise serializers.ValidationError("Use letters, digits and underscores.")
        return value

    def validate(self, attrs):
        # A PATCH makes the root serializer partial, and DRF then skips required and default
        # handling in nested serializers too; a field definition is always replaced whole.
        missing = [name for name in ("name", "label", "type") if name not in attrs]
        if missing:
            required = "This field is required."
            raise serializers.ValidationError({key: [required] for key in missing})
        attrs.setdefault("required", False)
        if attrs["type"] == "select" and not attrs.get("options"):
            raise serializers.ValidationError({"options": ["A select field needs options."]})
        return attrs


class LifetimeField(serializers.IntegerField):
    """A token lifetime in seconds on the wire, a timedelta in the model."""

    def __init__(self, *, max_value: timedelta, **kwargs):
        super().__init__(
            min_value=int(MIN_LIFETIME.total_seconds()),
            max_value=int(max_value.total_seconds()),
            **kwargs,
        )

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int):
            raise serializers.ValidationError("Must be a whole number of seconds.")
        return timedelta(seconds=super().to_internal_value(data))

    def run_validators(self, value):
        # The min/max validators compare seconds, not the timedelta to_internal_value returns.
        super().run_validators(int(value.total_seconds()))

    def to_representation(self, value):
        return int(value.total_seconds())


class OriginField(StrictCharField):
    def to_internal_value(self, data):
        value = super().to_internal_value(data).rstrip("/")
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.path or parts.query:
            raise serializers.ValidationError("Must be an origin like https://shop.example.com.")
        return value


class WidgetSettingsSerializer(serializers.Serializer):
    """Input (partial) and output of the widget settings, in the widget's camelCase."""

    collectUserData = StrictBooleanField(source="collect_user_data", required=False)
    extraDataCollectionFields = ExtraFieldSerializer(
        source="extra_data_collection_fields", many=True, required=False, max_length=20
    )
    requireVerifiedIdentity = StrictBooleanField(source="require_verified_identity", required=False)
    theme = serializers.DictField(required=False)
    allowedOrigins = serializers.ListField(
        child=OriginField(max_length=255), source="allowed_origins", required=False, max_length=50
    )
    mergeDeviceHistoryOnVerify = StrictBooleanField(
        source="merge_device_history_on_verify", required=False
    )
    anonymousTokenLifetime = LifetimeField(
        source="anonymous_token_lifetime", max_value=MAX_LIFETIME, required=False
    )
    nonVerifiedTokenLifetime = LifetimeField(
        source="non_verified_token_lifetime", max_value=MAX_LIFETIME, required=False
    )
    verifiedTokenLifetime = LifetimeField(
        source="verified_token_lifetime", max_value=MAX_VERIFIED_LIFETIME, required=False
    )
    widgetToken = serializers.CharField(source="widget_token", read_only=True)

    def validate_theme(self, value):
        problems = check_custom_data(value)
        if problems:
            raise serializers.ValidationError(problems)
        return value

    def validate_extraDataCollectionFields(self, value):
        names = [field["name"] for field in value]
        if len(names) != len(set(names)):
            raise serializers.ValidationError("Field names must be unique.")
        return value


class WidgetTokenOutputSerializer(serializers.Serializer):
    widgetToken = serializers.CharField(source="widget_token")


ERRORS = {
    401: OpenApiResponse(description="Not authenticated"),
    403: OpenApiResponse(description="Not an operator of this org"),
    404: OpenApiResponse(description="Unknown org"),
}


class WidgetSettingsViewSet(OrgScopedViewSet):
    """Owners and admins read and change the widget settings and rotate the widget token."""

    operator_only = True

    @extend_schema(responses={200: WidgetSettingsSerializer, **ERRORS})
    def retrieve(self, request, org_id):
        return Response(WidgetSettingsSerializer(self.access.org).data)

    @extend_schema(
        request=WidgetSettingsSerializer,
        responses={
            200: WidgetSettingsSerializer,
            400: OpenApiResponse(description="Invalid"),
            **ERRORS,
        },
    )
    def partial_update(self, request, org_id):
        data = WidgetSettingsSerializer(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        org = services.organization_widget_settings_update(
            org=self.access.org,
            changes=data.validated_data,
            actor_user=self.access.user,
            ip=client_ip(request),
        )
        return Response(WidgetSettingsSerializer(org).data)

    @extend_schema(request=None, responses={200: WidgetTokenOutputSerializer, **ERRORS})
    @action(detail=False, methods=["post"], url_path="rotate-token")
    def rotate_token(self, request, org_id):
        org = services.organization_widget_token_rotate(
            org=self.access.org, actor_user=self.access.user, ip=client_ip(request)
        )
        return Response(WidgetTokenOutputSerializer(org).data)
