"""Reads for conversations: the one rule of who may see which conversation, inbox and threads."""

import uuid

from django.db.models import F, QuerySet

from config.exceptions import ApplicationError, NotFound
from contacts.models import Contact
from contacts.selectors import ContactPrincipal
from conversations.models import Conversation, Message
from identity.models import Organization

THREAD_PAGE_SIZE = 200


class ExternalIdRequired(ApplicationError):
    default_code = "external_id_required"
    default_detail = "A non-verified contact must send an externalId."


def external_id_require(*, principal: ContactPrincipal, external_id: str | None) -> None:
    """SPEC §2 rule 3 (OpenCX): a non-verified token lists and opens only under an externalId."""
    if principal.trust == Contact.Trust.NON_VERIFIED and not external_id:
        raise ExternalIdRequired()


def conversations_visible_to_contact(
    *, principal: ContactPrincipal, external_id: str | None
) -> QuerySet[Conversation]:
    """Every conversation a contact token may see; the only place this rule is written (SPEC §2).

    Anonymous and non-verified tokens see what was created on their device by their contact;
    verified tokens see their contact's conversations created through a verified path, on any
    device. `external_id` narrows either set, it never widens it.
    """
    conversations = Conversation.objects.filter(org=principal.org, contact=principal.contact)
    if principal.is_verified:
        conversations = conversations.filter(created_verified=True)
    else:
        # The contact filter matters too: a device's conversations adopted by a verified contact
        # must vanish from the browser token that created them.
        conversations = conversations.filter(device=principal.device)
    if external_id:
        conversations = conversations.filter(external_id=external_id)
    return conversations


def conversation_visible_get(
    *,
    principal: ContactPrincipal,
    conversation_id,
    external_id: str | None,
    for_update: bool = False,
) -> Conversation:
    """One visible conversation; any other id (unknown, malformed, invisible) is the same 404.

    `for_update` locks its row in the same query (inside the caller's transaction).
    """
    pk = _uuid_or_none(conversation_id)
    visible = conversations_visible_to_contact(principal=principal, external_id=external_id)
    if for_update:
        visible = visible.select_for_update()
    conversation = visible.filter(pk=pk).first() if pk else None
    if conversation is None:
        raise NotFound()
    return conversation


def conversation_history_for_contact(
    *, principal: ContactPrincipal, external_id: str | None
) -> QuerySet[Conversation]:
    """The widget's history list: visible conversations with their last message, newest first."""
    external_id_require(principal=principal, external_id=external_id)
    conversations = conversations_visible_to_contact(principal=principal, external_id=external_id)
    return _with_last_message(conversations).order_by("-created_at", "-pk")


def conversation_inbox(
    *,
    org: Organization,
    status: str | None = None,
    trust: str | None = None,
    assignee_id: int | None = None,
) -> QuerySet[Conversation]:
    """The agents' inbox: an org's conversations, newest activity first, with contact, assignee
    and last message in the same query."""
    conversations = Conversation.objects.filter(org=org).select_related("contact", "assignee")
    if status:
        conversations = conversations.filter(status=status)
    if trust:
        conversations = conversations.filter(contact__trust=trust)
    if assignee_id is not None:
        conversations = conversations.filter(assignee_id=assignee_id)
    return _with_last_message(conversations).order_by("-last_message_at", "-pk")


def conversation_for_org(*, org: Organization, conversation_id) -> Conversation:
    """One conversation of `org` for agents; unknown, malformed and other orgs' ids are a 404."""
    pk = _uuid_or_none(conversation_id)
    conversation = (
        Conversation.objects.select_related("contact", "assignee").filter(org=org, pk=pk).first()
        if pk
        else None
    )
    if conversation is None:
        raise NotFound()
    return conversation


def messages_for_conversation(
    *, conversation: Conversation, after_id: int | None = None
) -> QuerySet[Message]:
    """A thread, oldest first, at most 200 messages; `after_id` continues after a seen message."""
    messages = Message.objects.filter(conversation=conversation).select_related(
        "sender_user", "sender_contact", "sender_api_key"
    )
    if after_id is not None:
        messages = messages.filter(pk__gt=after_id)
    return messages.order_by("pk")[:THREAD_PAGE_SIZE]


def _with_last_message(conversations: QuerySet[Conversation]) -> QuerySet[Conversation]:
    # One LEFT JOIN on the primary key the services keep in `last_message`, in the same query.
    return conversations.annotate(
        last_message_text=F("last_message__body"),
        last_message_sender_kind=F("last_message__sender_kind"),
        last_message_created_at=F("last_message__created_at"),
    )


def _uuid_or_none(value) -> uuid.UUID | None:
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None
