"""Operators' data-rights routes: /api/v1/orgs/{org}/contacts/{id}/export and …/erase."""

from django.urls import path
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from config.http import client_ip
from contacts.models import Contact, Device
from conversations import data_rights
from conversations.models import Conversation, Message
from identity.api.access import OrgScopedViewSet
from identity.api.serializers import ErrorOutputSerializer


class ContactExportContactSerializer(serializers.ModelSerializer):
    class Meta:
        model = Contact
        fields = (
            "id",
            "trust",
            "name",
            "email",
            "phone",
            "avatar_url",
            "language",
            "user_id",
            "custom_data",
            "non_verified_custom_data",
            "chat_context",
            "http_action_overrides",
            "sender_auth_info",
            "verified_at",
            "first_seen_at",
            "last_seen_at",
            "erased_at",
        )


class ContactExportDeviceSerializer(serializers.ModelSerializer):
    class Meta:
        model = Device
        fields = ("id", "created_at", "last_seen_at", "user_agent", "revoked_at")


class ContactExportMessageSerializer(serializers.ModelSerializer):
    text = serializers.CharField(source="body")

    class Meta:
        model = Message
        fields = ("id", "sender_kind", "text", "sender_auth_info", "created_at")


class ContactExportConversationSerializer(serializers.ModelSerializer):
    device_id = serializers.UUIDField(allow_null=True)
    messages = ContactExportMessageSerializer(many=True)

    class Meta:
        model = Conversation
        fields = (
            "id",
            "status",
            "external_id",
            "created_verified",
            "device_id",
            "fields",
            "sender_auth_info",
            "created_at",
            "last_message_at",
            "closed_at",
            "messages",
        )


class ContactExportOutputSerializer(serializers.Serializer):
    contact = ContactExportContactSerializer()
    devices = ContactExportDeviceSerializer(many=True)
    conversations = ContactExportConversationSerializer(many=True)


class ContactErasedOutputSerializer(serializers.Serializer):
    erased = serializers.BooleanField()


def _error(description: str) -> OpenApiResponse:
    return OpenApiResponse(response=ErrorOutputSerializer, description=description)


ERRORS = {
    401: _error("Not authenticated"),
    403: _error("Not an operator of this org, or an API key (keys cannot export or erase)"),
    404: _error("Unknown org, or no such contact in this org"),
}


class ContactDataRightsViewSet(OrgScopedViewSet):
    """Subject-access export and erasure of one contact; operators only, each call audited."""

    operator_only = True

    @extend_schema(
        summary="Export everything stored about a contact (audited)",
        responses={200: ContactExportOutputSerializer, **ERRORS},
    )
    def export(self, request, org_id, contact_id):
        exported = data_rights.contact_export(
            org=self.access.org,
            contact_id=contact_id,
            actor_user=self.access.user,
            ip=client_ip(request),
        )
        return Response(ContactExportOutputSerializer(exported).data)

    @extend_schema(
        summary="Erase a contact's personal data; trust level kept (idempotent, audited)",
        request=None,
        responses={200: ContactErasedOutputSerializer, **ERRORS},
    )
    def erase(self, request, org_id, contact_id):
        data_rights.contact_erase(
            org=self.access.org,
            contact_id=contact_id,
            actor_user=self.access.user,
            ip=client_ip(request),
        )
        return Response(ContactErasedOutputSerializer({"erased": True}).data)


urlpatterns = [
    path(
        "orgs/<uuid:org_id>/contacts/<uuid:contact_id>/export",
        ContactDataRightsViewSet.as_view({"get": "export"}),
        name="org-contact-export",
    ),
    path(
        "orgs/<uuid:org_id>/contacts/<uuid:contact_id>/erase",
        ContactDataRightsViewSet.as_view({"post": "erase"}),
        name="org-contact-erase",
    ),
]
