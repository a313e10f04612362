"""Input and output serializers for the widget's visitor routes and Tiledesk's visitor routes."""

from rest_framework import serializers

from config.fields import (
    CustomDataField,
    IdentifierField,
    StrictCharField,
    StrictEmailField,
    StrictURLField,
    UtcDateTimeField,
    unknown_keys_refuse,
)
from config.serializers import FieldsOnceSerializer
from contacts.services import FULL_NAME_TOO_LONG, MAX_NAME_LENGTH, AuthMethod, full_name


class UnverifiedInputSerializer(FieldsOnceSerializer):
    email = StrictEmailField(max_length=254, required=False, allow_blank=True)
    name = StrictCharField(max_length=200, required=False, allow_blank=True)
    customData = CustomDataField(required=False)
    externalId = StrictCharField(max_length=255, required=False, allow_blank=True)
    method = serializers.ChoiceField(
        choices=[AuthMethod.COLLECT_FORM, AuthMethod.BROWSER],
        required=False,
        default=AuthMethod.BROWSER,
        help_text="collect_form when the widget's form collected the details; browser when the "
        "page passed them.",
    )


class ContactRefOutputSerializer(FieldsOnceSerializer):
    id = serializers.UUIDField()
    trust = serializers.CharField()


class UnverifiedOutputSerializer(FieldsOnceSerializer):
    token = serializers.CharField()
    contact = ContactRefOutputSerializer()
    externalId = serializers.CharField()
    expires_at = UtcDateTimeField()


class MeOutputSerializer(FieldsOnceSerializer):
    """The contact as the widget may see it: nothing agent-only, no custom data."""

    id = serializers.UUIDField()
    trust = serializers.CharField()
    name = serializers.CharField()
    email = serializers.CharField()

    def to_representation(self, contact) -> dict:
        # What DRF renders from the fields above, in their order, built directly: `/widget/me`
        # is the hottest route with a query, and DRF's per-field dispatch was a tenth of its
        # own cost (docs/PERFORMANCE.md). A test holds this to DRF's own rendering; the fields
        # stay declared for the schema and that test.
        return {
            "id": str(contact.id),
            "trust": contact.trust,
            "name": contact.name,
            "email": contact.email,
        }


class ExtraFieldOutputSerializer(serializers.Serializer):
    name = serializers.CharField()
    label = serializers.CharField()
    type = serializers.CharField()
    required = serializers.BooleanField()
    options = serializers.ListField(child=serializers.CharField(), required=False)


class OrgRefOutputSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()


class WidgetConfigOutputSerializer(serializers.Serializer):
    org = OrgRefOutputSerializer(source="*")
    collectUserData = serializers.BooleanField(source="collect_user_data")
    extraDataCollectionFields = ExtraFieldOutputSerializer(
        source="extra_data_collection_fields", many=True
    )
    requireVerifiedIdentity = serializers.BooleanField(source="require_verified_identity")
    theme = serializers.DictField()


class SignInAnonymouslyInputSerializer(serializers.Serializer):
    id_project = StrictCharField(max_length=64)
    firstname = StrictCharField(max_length=100, required=False, allow_blank=True)
    lastname = StrictCharField(max_length=100, required=False, allow_blank=True)
    email = StrictEmailField(max_length=254, required=False, allow_blank=True)
    attributes = CustomDataField(required=False)

    def validate(self, attrs):
        # The contact keeps one name, "firstname lastname", held to SPEC §5's 200 characters.
        if len(full_name(attrs.get("firstname"), attrs.get("lastname"))) > MAX_NAME_LENGTH:
            raise serializers.ValidationError({"lastname": [FULL_NAME_TOO_LONG]})
        return attrs


class TiledeskVisitorOutputSerializer(serializers.Serializer):
    _id = serializers.CharField()
    firstname = serializers.CharField()
    lastname = serializers.CharField()
    email = serializers.CharField()
    attributes = serializers.DictField()
    emailverified = serializers.BooleanField()


class TiledeskVisitorSignInOutputSerializer(serializers.Serializer):
    success = serializers.BooleanField()
    token = serializers.CharField(help_text='"JWT <contact token>"')
    user = TiledeskVisitorOutputSerializer()


class HttpActionOverridesSerializer(FieldsOnceSerializer):
    """OpenCX's overrides for integrations' HTTP actions: stored, never used for identity.

    The object replaces the stored one whole, so a key it does not know is refused: dropped
    silently, a typo (`query_param`) would store an empty object over the customer's overrides.
    """

    query_params = CustomDataField(required=False)
    path_params = CustomDataField(required=False)
    body_params = CustomDataField(required=False)
    headers = CustomDataField(required=False)

    def to_internal_value(self, data):
        if isinstance(data, dict):
            unknown_keys_refuse(data, known=self.fields)
        return super().to_internal_value(data)


class AuthenticateUserInputSerializer(FieldsOnceSerializer):
    email = StrictEmailField(max_length=254)
    name = StrictCharField(max_length=200, required=False, allow_blank=True)
    user_id = IdentifierField(max_length=255, required=False, allow_blank=True)
    phone = StrictCharField(max_length=64, required=False, allow_blank=True)
    avatar_url = StrictURLField(max_length=2048, required=False, allow_blank=True)
    language = StrictCharField(max_length=35, required=False, allow_blank=True)
    customData = CustomDataField(required=False)
    chat_context = StrictCharField(max_length=10_000, required=False, allow_blank=True)
    http_action_overrides = HttpActionOverridesSerializer(required=False)


class ContactIdOutputSerializer(FieldsOnceSerializer):
    id = serializers.UUIDField()


class AuthenticateUserOutputSerializer(FieldsOnceSerializer):
    token = serializers.CharField(help_text="Pass it to the widget as user.token.")
    contact = ContactIdOutputSerializer()
    expires_at = UtcDateTimeField()


class TiledeskVerifiedUserOutputSerializer(serializers.Serializer):
    _id = serializers.CharField(
        help_text="The customer's user id (the token's _id); the contact id when none."
    )
    firstname = serializers.CharField()
    lastname = serializers.CharField()
    email = serializers.CharField()
    attributes = serializers.DictField()
    emailverified = serializers.BooleanField()


class ContactTrustOutputSerializer(FieldsOnceSerializer):
    id = serializers.UUIDField()
    trust = serializers.CharField(
        help_text="verified for a customer-signed token; a resumed token's own trust otherwise."
    )


class TiledeskCustomTokenOutputSerializer(serializers.Serializer):
    success = serializers.BooleanField()
    token = serializers.CharField(help_text='"JWT <our own contact token>"')
    expires_at = UtcDateTimeField()
    contact = ContactTrustOutputSerializer()
    user = TiledeskVerifiedUserOutputSerializer()
