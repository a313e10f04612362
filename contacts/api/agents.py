"""Agents' and integrations' contact routes: `/api/v1/orgs/{org}/contacts` and `…/{id}`."""

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from config.fields import StrictCharField, UtcDateTimeField
from config.pagination import KeysetPagination
from config.serializers import FieldsOnceSerializer
from contacts import selectors
from contacts.models import Contact
from identity.api.access import OrgScopedViewSet
from identity.models import ApiKey


class ContactListQuerySerializer(FieldsOnceSerializer):
    trust = serializers.ChoiceField(choices=Contact.Trust.choices, required=False)
    search = StrictCharField(
        max_length=255,
        required=False,
        allow_blank=True,
        help_text="Name (contains), email (prefix) or user_id (exact).",
    )


class ContactOutputFields(FieldsOnceSerializer):
    """What every agent's view of a contact shows, the list's items and the detail alike."""

    id = serializers.UUIDField()
    trust = serializers.ChoiceField(choices=Contact.Trust.choices)
    name = serializers.CharField()
    email = serializers.CharField()
    user_id = serializers.CharField()
    verified_at = UtcDateTimeField(allow_null=True)
    first_seen_at = UtcDateTimeField()
    last_seen_at = UtcDateTimeField()


_DATETIME = UtcDateTimeField()


class ContactListItemOutputSerializer(ContactOutputFields):
    """One contact in the agents' list, newest activity first."""

    def to_representation(self, contact: Contact) -> dict:
        # What DRF renders from the fields above, in their order, built directly: a page has
        # twenty rows, and DRF's per-field dispatch cost more than the rest of the page's
        # rendering (docs/PERFORMANCE.md). A test holds this to DRF's own rendering; the fields
        # stay declared for the schema and that test.
        verified_at = contact.verified_at and _DATETIME.to_representation(contact.verified_at)
        return {
            "id": str(contact.id),
            "trust": contact.trust,
            "name": contact.name,
            "email": contact.email,
            "user_id": contact.user_id,
            "verified_at": verified_at,
            "first_seen_at": _DATETIME.to_representation(contact.first_seen_at),
            "last_seen_at": _DATETIME.to_representation(contact.last_seen_at),
        }


class ContactDetailOutputSerializer(ContactOutputFields):
    """Trusted `custom_data` and browser-supplied `non_verified_custom_data` are kept apart."""

    phone = serializers.CharField()
    avatar_url = serializers.CharField()
    language = serializers.CharField()
    custom_data = serializers.DictField(help_text="Set by server-to-server paths only: trusted.")
    non_verified_custom_data = serializers.DictField(
        help_text="Supplied by the browser: never proof of anything."
    )
    sender_auth_info = serializers.DictField(help_text="SPEC §4: how the identity was proven.")
    chat_context = serializers.CharField()
    http_action_overrides = serializers.DictField()


class ContactPagination(KeysetPagination):
    ordering_field = selectors.CONTACT_LIST_ORDERING


ERRORS = {
    401: OpenApiResponse(description="Not authenticated"),
    403: OpenApiResponse(description="API key without contacts:read"),
    404: OpenApiResponse(description="Unknown or another org's org or contact"),
}


class ContactViewSet(OrgScopedViewSet):
    """An org's contacts with their trust and senderAuthInfo."""

    required_scopes = {
        "list": ApiKey.Scope.CONTACTS_READ,
        "retrieve": ApiKey.Scope.CONTACTS_READ,
    }
    pagination_class = ContactPagination
    # Never read: it types the {id} path parameter in the OpenAPI schema.
    queryset = Contact.objects.none()

    @extend_schema(
        parameters=[ContactListQuerySerializer],
        responses={
            200: ContactListItemOutputSerializer(many=True),
            400: OpenApiResponse(description="Invalid filter or cursor"),
            **ERRORS,
        },
    )
    def list(self, request, **kwargs):
        query = ContactListQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        page = self.paginator.paginate_fetch(
            lambda position, limit: selectors.contacts_page(
                org=self.access.org,
                trust=query.validated_data.get("trust"),
                search=query.validated_data.get("search"),
                position=position,
                limit=limit,
            ),
            request,
            Contact,
        )
        return self.get_paginated_response(ContactListItemOutputSerializer(page, many=True).data)

    @extend_schema(responses={200: ContactDetailOutputSerializer, **ERRORS})
    def retrieve(self, request, pk=None, **kwargs):
        contact = selectors.contact_for_org(org=self.access.org, contact_id=pk)
        return Response(ContactDetailOutputSerializer(contact).data)
