"""Operators' widget settings: /api/v1/orgs/{org}/widget-settings and token rotation."""

import ipaddress
import re
from datetime import timedelta

from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import serializers
from rest_framework.decorators import action
from rest_framework.fields import empty
from rest_framework.response import Response

from config.fields import (
    StrictBooleanField,
    StrictCharField,
    entry_shown,
    unknown_keys_refuse,
)
from config.http import client_ip
from identity import services
from identity.api.access import OrgScopedViewSet
from identity.models import (
    MAX_EXTRA_FIELD_NAME,
    MAX_EXTRA_FIELDS,
    MAX_LIFETIME,
    MAX_VERIFIED_LIFETIME,
    MIN_LIFETIME,
)

FIELD_TYPES = ("text", "email", "number", "select", "checkbox")
RESERVED_FIELD_NAMES = frozenset({"name", "email"})
FIELD_NAME = re.compile(rf"^[A-Za-z][A-Za-z0-9_]{{0,{MAX_EXTRA_FIELD_NAME - 1}}}$")
MAX_ALLOWED_ORIGINS = 50
DEFAULT_PORTS = {"https": 443, "http": 80}
# Browsers treat these as secure contexts, so plain http is fine for local development only.
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "[::1]")
ORIGIN_SHAPE = re.compile(
    r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://(?P<authority>[^/?#]*)(?P<rest>.*)"
)
AUTHORITY = re.compile(r"(?P<host>\[[0-9A-Fa-f:.]+\]|[^:\[\]]+)(?::(?P<port>[0-9]+))?")
DNS_NAME = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)(?:\.(?!-)[a-z0-9-]{1,63}(?<!-))*")
# A host whose last label is a number is an IPv4 address to a browser (WHATWG URL), never a name.
NUMERIC_LABEL = re.compile(r"[0-9]+|0x[0-9a-f]*")
THEME_COLOR = re.compile(r"#[0-9a-fA-F]{6}")
MAX_THEME_TEXT = 200


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
        if value.lower() in RESERVED_FIELD_NAMES:
            # The pre-chat form's own Name and Email rows use these names: a field of the org
            # called so would never be asked, and the visitor's name would land in its answer.
            raise serializers.ValidationError(
                "name and email are the form's own fields: choose another name."
            )
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
        return data

    def run_validation(self, data=empty):
        # Range-check the plain int first: timedelta() overflows long before a JSON integer ends.
        return timedelta(seconds=super().run_validation(data))

    def to_representation(self, value):
        return int(value.total_seconds())


class OriginField(StrictCharField):
    """One origin, normalised to what a browser sends in `Origin`: lower-case scheme and host, no
    default port. contacts.middleware compares the stored value with that header verbatim."""

    default_error_messages = {
        "not_an_origin": "Must be an origin like https://shop.example.com.",
        "wildcard": "Wildcards are not allowed: list each origin.",
        "not_ascii": "Write the host in ASCII (punycode, xn--…), as browsers send it.",
        "not_bare": "An origin has no path, query or fragment: use https://host[:port].",
        "user_info": "An origin has no user name or password: use https://host[:port].",
        "port": "The port must be between 1 and 65535.",
        "not_https": "Use https://; http:// is allowed for localhost, 127.0.0.1 and [::1] only.",
    }

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        if "*" in value:
            self.fail("wildcard")
        if not value.isascii():
            self.fail("not_ascii")
        shape = ORIGIN_SHAPE.fullmatch(value)
        if shape is None:
            self.fail("not_an_origin")
        if shape["rest"] not in ("", "/"):
            self.fail("not_bare")
        if "@" in shape["authority"]:
            self.fail("user_info")
        scheme = shape["scheme"].lower()
        if scheme not in DEFAULT_PORTS:
            self.fail("not_https")
        authority = AUTHORITY.fullmatch(shape["authority"])
        if authority is None:
            self.fail("not_an_origin")
        host = self._host(authority["host"])
        if scheme == "http" and host not in LOOPBACK_HOSTS:
            self.fail("not_https")
        if authority["port"] is None:
            return f"{scheme}://{host}"
        port = int(authority["port"])
        if not 1 <= port <= 65535:
            self.fail("port")
        return (
            f"{scheme}://{host}" if port == DEFAULT_PORTS[scheme] else f"{scheme}://{host}:{port}"
        )

    def _host(self, host: str) -> str:
        if host.startswith("["):
            try:
                return f"[{ipaddress.IPv6Address(host[1:-1]).compressed}]"
            except ValueError:
                self.fail("not_an_origin")
        host = host.lower()
        if len(host) > 253 or not DNS_NAME.fullmatch(host):
            self.fail("not_an_origin")
        if NUMERIC_LABEL.fullmatch(host.rsplit(".", 1)[-1]):
            try:
                address = ipaddress.IPv4Address(host)
            except ValueError:
                self.fail("not_an_origin")
            if str(address) != host:
                self.fail("not_an_origin")
        return host


class AllowedOriginsField(serializers.ListField):
    """At most MAX_ALLOWED_ORIGINS origins, normalised, duplicates dropped (first kept); each
    refused entry is named in the one `allowedOrigins` error."""

    def __init__(self, **kwargs):
        super().__init__(
            child=OriginField(max_length=255), max_length=MAX_ALLOWED_ORIGINS, **kwargs
        )

    def to_internal_value(self, data):
        # Before the entries, so a huge list costs one check and not one message per entry.
        if isinstance(data, list) and len(data) > MAX_ALLOWED_ORIGINS:
            self.fail("max_length", max_length=MAX_ALLOWED_ORIGINS)
        return super().to_internal_value(data)

    def run_child_validation(self, data):
        origins, problems = [], []
        for entry in data:
            try:
                origins.append(self.child.run_validation(entry))
            except serializers.ValidationError as exc:
                problems.extend(f"{entry_shown(entry)}: {message}" for message in exc.detail)
        if problems:
            raise serializers.ValidationError(problems)
        return list(dict.fromkeys(origins))


class ThemeColorField(StrictCharField):
    default_error_messages = {"not_a_color": "Must be a color like #18bdf7: # and six hex digits."}

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        if not THEME_COLOR.fullmatch(value):
            self.fail("not_a_color")
        return value.lower()


THEME_FIELDS = {
    "primaryColor": ThemeColorField(),
    "title": StrictCharField(max_length=MAX_THEME_TEXT),
}


@extend_schema_field(
    {
        "type": "object",
        "properties": {
            "primaryColor": {"type": "string", "pattern": f"^{THEME_COLOR.pattern}$"},
            "title": {"type": "string", "maxLength": MAX_THEME_TEXT},
        },
        "additionalProperties": False,
    }
)
class ThemeField(serializers.Field):
    """The keys the widget reads, each bounded: GET /widget/config serves the theme to anyone,
    so it holds nothing a page reading it could mistake for markup or CSS."""

    default_error_messages = {"not_an_object": "Must be a JSON object."}

    def to_internal_value(self, data):
        if not isinstance(data, dict):
            self.fail("not_an_object")
        unknown_keys_refuse(data, known=THEME_FIELDS)
        theme, problems = {}, []
        for key, value in data.items():
            try:
                theme[key] = THEME_FIELDS[key].run_validation(value)
            except serializers.ValidationError as exc:
                problems.extend(f"{key}: {message}" for message in exc.detail)
        if problems:
            raise serializers.ValidationError(problems)
        return theme

    def to_representation(self, value):
        return value


class WidgetSettingsSerializer(serializers.Serializer):
    """Input (partial) and output of the widget settings, in the widget's camelCase."""

    collectUserData = StrictBooleanField(source="collect_user_data", required=False)
    extraDataCollectionFields = ExtraFieldSerializer(
        source="extra_data_collection_fields",
        many=True,
        required=False,
        max_length=MAX_EXTRA_FIELDS,
    )
    requireVerifiedIdentity = StrictBooleanField(source="require_verified_identity", required=False)
    theme = ThemeField(required=False)
    allowedOrigins = AllowedOriginsField(source="allowed_origins", required=False)
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
