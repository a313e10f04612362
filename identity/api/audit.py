"""Operators' audit trail: GET /api/v1/orgs/{org}/audit-events, newest first."""

from django.urls import path
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import serializers

from config.fields import UtcDateTimeField
from config.pagination import KeysetPagination
from identity.api.access import OrgScopedViewSet
from identity.api.serializers import ErrorOutputSerializer
from identity.audit import audit_events_for_org
from identity.models import AuditEvent


class AuditEventQuerySerializer(serializers.Serializer):
    action = serializers.ChoiceField(choices=AuditEvent.Action.choices, required=False)
    cursor = serializers.CharField(required=False, help_text="The `next` of the previous page.")


class AuditActorOutputSerializer(serializers.Serializer):
    """Who acted: an agent (id and email) or an API key (prefix); null for sign-in lockouts."""

    kind = serializers.ChoiceField(choices=["user", "api_key"])
    id = serializers.CharField()
    label = serializers.CharField()


class AuditEventOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    action = serializers.ChoiceField(choices=AuditEvent.Action.choices)
    actor = serializers.SerializerMethodField()
    target = serializers.CharField()
    ip = serializers.CharField()
    details = serializers.DictField()
    created_at = UtcDateTimeField()

    @extend_schema_field(AuditActorOutputSerializer(allow_null=True))
    def get_actor(self, event: AuditEvent) -> dict | None:
        if event.actor_user is not None:
            return {"kind": "user", "id": str(event.actor_user.pk), "label": event.actor_user.email}
        if event.actor_api_key is not None:
            key = event.actor_api_key
            return {"kind": "api_key", "id": str(key.pk), "label": key.prefix}
        return None


class AuditEventPagination(KeysetPagination):
    page_size = 50
    ordering_field = "created_at"


def _error(description: str) -> OpenApiResponse:
    return OpenApiResponse(response=ErrorOutputSerializer, description=description)


class AuditEventViewSet(OrgScopedViewSet):
    """The org's security-relevant changes: keys, secrets, widget settings, exports, erasures."""

    operator_only = True
    pagination_class = AuditEventPagination

    @extend_schema(
        summary="List the org's audit events, newest first (cursor-paginated)",
        parameters=[AuditEventQuerySerializer],
        responses={
            200: AuditEventOutputSerializer(many=True),  # the pagination class wraps it
            400: _error("Unknown action filter, or an invalid cursor"),
            401: _error("Not authenticated"),
            403: _error("Not an operator of this org, or an API key"),
            404: _error("Unknown org, or not a member of it"),
        },
    )
    def list(self, request, org_id):
        query = AuditEventQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        events = audit_events_for_org(
            org=self.access.org, action=query.validated_data.get("action")
        )
        page = self.paginate_queryset(events)
        return self.get_paginated_response(AuditEventOutputSerializer(page, many=True).data)


urlpatterns = [
    path(
        "orgs/<uuid:org_id>/audit-events",
        AuditEventViewSet.as_view({"get": "list"}),
        name="org-audit-events",
    ),
]
