"""Input and output serializers for the widget's sessions routes and the agents' conversations."""

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from config.fields import StrictCharField, UtcDateTimeField
from config.serializers import FieldsOnceSerializer
from contacts.models import Contact
from conversations.models import MAX_MESSAGE_LENGTH, Conversation, Message
from conversations.services import ASSIGNEE_NOT_A_MEMBER
from identity.models import User

MAX_BIGINT = 2**63 - 1


class BlankAsNullCharField(serializers.CharField):
    """A stored "" (never given) goes out as null."""

    def __init__(self, **kwargs):
        super().__init__(allow_null=True, **kwargs)

    def to_representation(self, value):
        return value or None


class StrictIntegerField(serializers.IntegerField):
    """A JSON integer: refuses the strings, floats and booleans IntegerField would coerce."""

    default_error_messages = {"not_an_integer": "Must be a whole number."}

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("not_an_integer")
        return super().to_internal_value(data)


class MessageTextField(StrictCharField):
    """Message text as typed (not trimmed): 1 to 10,000 characters, not only whitespace."""

    def __init__(self, **kwargs):
        super().__init__(max_length=MAX_MESSAGE_LENGTH, trim_whitespace=False, **kwargs)

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        if not value.strip():
            self.fail("blank")
        return value


# --- widget -----------------------------------------------------------------------------------


class ExternalIdQuerySerializer(FieldsOnceSerializer):
    externalId = StrictCharField(max_length=255, required=False, allow_blank=True)


class QueryIdField(serializers.IntegerField):
    """An id in the query string: ASCII digits only, then DRF's range checks.

    DRF's IntegerField reads the value with `int()`, which also takes other scripts' digits (an
    Arabic-Indic one is 1), "1_000", " 7" and "7.0". The console reads ids as strictly
    (`conversations.console.views._after_id`).
    """

    def to_internal_value(self, data):
        if not (isinstance(data, str) and data.isascii() and data.isdigit()):
            self.fail("invalid")
        return super().to_internal_value(data)


class ThreadQuerySerializer(FieldsOnceSerializer):
    after = QueryIdField(
        min_value=0, max_value=MAX_BIGINT, required=False, help_text="Only messages after this id."
    )


class MessagesQuerySerializer(ThreadQuerySerializer):
    externalId = StrictCharField(max_length=255, required=False, allow_blank=True)


class SessionCreateInputSerializer(serializers.Serializer):
    externalId = StrictCharField(max_length=255, required=False, allow_blank=True)
    fields = serializers.DictField(
        required=False, help_text="Answers to the org's extraDataCollectionFields, by name."
    )


class MessageInputSerializer(FieldsOnceSerializer):
    text = MessageTextField()


class LastMessageOutputSerializer(serializers.Serializer):
    text = serializers.CharField()
    sender_kind = serializers.ChoiceField(choices=Message.SenderKind.choices)
    created_at = UtcDateTimeField()


class WithLastMessageSerializer(FieldsOnceSerializer):
    """Reads the `last_message_*` annotations the list selectors add: no query per row."""

    last_message = serializers.SerializerMethodField()

    @extend_schema_field(LastMessageOutputSerializer(allow_null=True))
    def get_last_message(self, conversation: Conversation) -> dict | None:
        # The LastMessageOutputSerializer shape, built without a serializer per row (lists are hot).
        if conversation.last_message_created_at is None:
            return None
        return {
            "text": conversation.last_message_text,
            "sender_kind": conversation.last_message_sender_kind,
            "created_at": _DATETIME.to_representation(conversation.last_message_created_at),
        }


_DATETIME = UtcDateTimeField()


class SessionOutputSerializer(WithLastMessageSerializer):
    id = serializers.UUIDField()
    status = serializers.ChoiceField(choices=Conversation.Status.choices)
    created_at = UtcDateTimeField()
    last_message_at = UtcDateTimeField()
    external_id = BlankAsNullCharField()

    def to_representation(self, conversation: Conversation) -> dict:
        # What DRF renders from the fields above, in its order, built directly: its per-field
        # dispatch cost about 10 us a row, and a history page has up to twenty rows. A test holds
        # this to DRF's own rendering; the fields stay declared for the schema and that test.
        return {
            "last_message": self.get_last_message(conversation),
            "id": str(conversation.id),
            "status": conversation.status,
            "created_at": _DATETIME.to_representation(conversation.created_at),
            "last_message_at": _DATETIME.to_representation(conversation.last_message_at),
            "external_id": conversation.external_id or None,
        }


class SessionCreatedOutputSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    status = serializers.ChoiceField(choices=Conversation.Status.choices)
    created_at = UtcDateTimeField()
    external_id = BlankAsNullCharField()
    fields = serializers.DictField()


class WidgetMessageOutputSerializer(FieldsOnceSerializer):
    """A message as the visitor sees it: agents by first name only, nothing agent-only."""

    id = serializers.IntegerField()
    text = serializers.CharField(source="body")
    sender_kind = serializers.ChoiceField(choices=Message.SenderKind.choices)
    sender_name = serializers.SerializerMethodField()
    created_at = UtcDateTimeField()

    def get_sender_name(self, message: Message) -> str | None:
        if message.sender_kind != Message.SenderKind.AGENT:
            return None
        if message.sender_user is not None:
            return message.sender_user.first_name or None
        return message.sender_api_key.name if message.sender_api_key else None


class WidgetMessagesOutputSerializer(FieldsOnceSerializer):
    results = WidgetMessageOutputSerializer(many=True)


# --- agents and integrations ------------------------------------------------------------------


class InboxQuerySerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=Conversation.Status.choices, required=False)
    trust = serializers.ChoiceField(choices=Contact.Trust.choices, required=False)
    assignee = QueryIdField(
        min_value=1, max_value=MAX_BIGINT, required=False, help_text="An agent's user id."
    )


class AssignInputSerializer(serializers.Serializer):
    assignee = StrictIntegerField(
        min_value=1, max_value=MAX_BIGINT, allow_null=True, help_text="A member's user id, or null."
    )

    def validate_assignee(self, value: int | None) -> User | None:
        """The user named; whether they may be assigned is conversation_assign's rule."""
        if value is None:
            return None
        user = User.objects.filter(pk=value).first()
        if user is None:
            raise serializers.ValidationError(ASSIGNEE_NOT_A_MEMBER)
        return user


class ConversationContactOutputSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()
    email = serializers.CharField()
    trust = serializers.CharField()


class AssigneeOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    email = serializers.EmailField()
    name = serializers.CharField(source="display_name")


class InboxItemOutputSerializer(WithLastMessageSerializer):
    id = serializers.UUIDField()
    status = serializers.ChoiceField(choices=Conversation.Status.choices)
    created_at = UtcDateTimeField()
    last_message_at = UtcDateTimeField()
    external_id = BlankAsNullCharField()
    created_verified = serializers.BooleanField()
    contact = ConversationContactOutputSerializer()
    assignee = AssigneeOutputSerializer(allow_null=True)


class ConversationDetailOutputSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    status = serializers.ChoiceField(choices=Conversation.Status.choices)
    created_at = UtcDateTimeField()
    last_message_at = UtcDateTimeField()
    closed_at = UtcDateTimeField(allow_null=True)
    external_id = BlankAsNullCharField()
    created_verified = serializers.BooleanField()
    fields = serializers.DictField()
    sender_auth_info = serializers.DictField(help_text="SPEC §4, as it was at creation.")
    contact = ConversationContactOutputSerializer()
    assignee = AssigneeOutputSerializer(allow_null=True)


class AgentMessageOutputSerializer(serializers.Serializer):
    """A message as agents see it, with the senderAuthInfo each contact message was sent with."""

    id = serializers.IntegerField()
    text = serializers.CharField(source="body")
    sender_kind = serializers.ChoiceField(choices=Message.SenderKind.choices)
    sender_name = serializers.SerializerMethodField()
    sender_user_id = serializers.IntegerField(allow_null=True)
    sender_contact_id = serializers.UUIDField(allow_null=True)
    sender_auth_info = serializers.DictField()
    created_at = UtcDateTimeField()

    def get_sender_name(self, message: Message) -> str | None:
        if message.sender_user is not None:
            return message.sender_user.display_name
        if message.sender_api_key is not None:
            return message.sender_api_key.name
        if message.sender_contact is not None:
            return message.sender_contact.name or None
        return None


class AgentMessagesOutputSerializer(serializers.Serializer):
    results = AgentMessageOutputSerializer(many=True)
