"""Reads for conversations: the one rule of who may see which conversation, inbox and threads."""

from collections.abc import Callable

from django.db.models import F, QuerySet

from config.exceptions import ApplicationError, NotFound
from config.ids import uuid_or_none
from config.pagination import keyset_page
from config.precompiled import CompiledQuery
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


def conversations_visible(
    *, org, contact, device, verified: bool, external_id: str | None
) -> QuerySet[Conversation]:
    """Every conversation a contact token may see; the only place this rule is written (SPEC §2).

    Anonymous and non-verified tokens see what was created on their device by their contact;
    verified tokens see their contact's conversations created through a verified path, on any
    device. `external_id` narrows either set, it never widens it. The arguments are the token's
    principal's (`_visibility`); the compiled queries below pass placeholders in their place.
    """
    conversations = Conversation.objects.filter(org=org, contact=contact)
    if verified:
        conversations = conversations.filter(created_verified=True)
    else:
        # The contact filter matters too: a device's conversations adopted by a verified contact
        # must vanish from the browser token that created them.
        conversations = conversations.filter(device=device)
    if external_id:
        conversations = conversations.filter(external_id=external_id)
    return conversations


def _visibility(principal: ContactPrincipal, external_id: str | None) -> dict:
    return {
        "org": principal.org,
        "contact": principal.contact,
        "device": principal.device,
        "verified": principal.is_verified,
        "external_id": external_id,
    }


_CONVERSATION = Conversation._meta
# The rule's values; each query below adds its own. A widget request runs one of these on every
# call, so the ORM builds and compiles each shape once (config.precompiled.CompiledQuery).
_VISIBILITY_PARAMS = {
    "org": _CONVERSATION.get_field("org"),
    "contact": _CONVERSATION.get_field("contact"),
    "device": _CONVERSATION.get_field("device"),
    "external_id": _CONVERSATION.get_field("external_id"),
}

_VISIBLE_ONE = CompiledQuery(
    lambda *, pk, for_update, **rule: _locked(
        conversations_visible(**rule).filter(pk=pk).order_by(), for_update
    ),
    params={**_VISIBILITY_PARAMS, "pk": _CONVERSATION.pk},
    # A primary-key lookup: the same plan whatever the values, so it is prepared.
    prepare=True,
)


def _locked(conversations: QuerySet[Conversation], for_update: bool) -> QuerySet[Conversation]:
    return conversations.select_for_update() if for_update else conversations


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
    pk = uuid_or_none(conversation_id)
    rows = (
        _VISIBLE_ONE.run(pk=pk, for_update=for_update, **_visibility(principal, external_id))
        if pk
        else []
    )
    if not rows:
        raise NotFound()
    return rows[0]


def conversation_visible_locking_statement(
    *, principal: ContactPrincipal, conversation_id, external_id: str | None
) -> tuple[str, list, Callable] | None:
    """`conversation_visible_get(for_update=True)` as SQL to run inside a larger statement: its
    SQL, parameters and row loader (see `CompiledQuery.statement`); None for a malformed id."""
    pk = uuid_or_none(conversation_id)
    if not pk:
        return None
    return _VISIBLE_ONE.statement(pk=pk, for_update=True, **_visibility(principal, external_id))


HISTORY_ORDERING = "created_at"

# What a history item shows (conversations.api.serializers.SessionOutputSerializer, which a test
# holds to this list); the JSON columns and the keys stay in the database.
HISTORY_FIELDS = ("id", "status", "created_at", "last_message_at", "external_id")

_HISTORY_PAGE = CompiledQuery(
    lambda *, after_at, after_pk, limit, **rule: keyset_page(
        _with_last_message(conversations_visible(**rule).only(*HISTORY_FIELDS)),
        ordering_field=HISTORY_ORDERING,
        position=(after_at, after_pk) if after_at else None,
        limit=limit,
    ),
    params={
        **_VISIBILITY_PARAMS,
        "after_at": _CONVERSATION.get_field(HISTORY_ORDERING),
        "after_pk": _CONVERSATION.pk,
    },
    # Prepared: PostgreSQL plans it once per connection and soon settles on a plan made without
    # the values, which guesses a contact has one conversation. With indexes ending in
    # created_at only, that plan read all of a 10,000-conversation customer's rows and sorted
    # them (600 ms, `make bench-scale`); the history indexes hold the whole ordering (created_at,
    # id), so it reads the page in order and stops (0.3 ms; see Conversation.Meta.indexes).
    prepare=True,
)


def conversation_history_page(
    *, principal: ContactPrincipal, external_id: str | None, position: tuple | None, limit: int
) -> list[Conversation]:
    """The widget's history: visible conversations with their last message, newest first.

    At most `limit` of them, after the keyset `position` (`created_at`, pk) when one is given.
    """
    external_id_require(principal=principal, external_id=external_id)
    after_at, after_pk = position or (None, None)
    return _HISTORY_PAGE.run(
        after_at=after_at, after_pk=after_pk, limit=limit, **_visibility(principal, external_id)
    )


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
    pk = uuid_or_none(conversation_id)
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
