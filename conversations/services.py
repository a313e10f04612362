"""Writes for conversations: open, post, close, assign, and adopt a device's history on verify."""

import copy
import functools
import math
from datetime import datetime

from django.core.exceptions import ValidationError
from django.db import DEFAULT_DB_ALIAS, connection, connections, transaction
from django.utils import timezone

from config.emails import email_clean
from config.exceptions import ApplicationError, Conflict, Forbidden, NotFound, Unauthenticated
from config.precompiled import InsertAndUpdate, execute_prepared, mark_saved, save_values
from contacts.models import Contact, Device
from contacts.selectors import ContactPrincipal
from contacts.services import device_lock_unrevoked
from conversations.models import MAX_MESSAGE_LENGTH, Conversation, Message
from conversations.selectors import (
    conversation_visible_get,
    conversation_visible_locking_statement,
    external_id_require,
)
from identity.models import (
    MAX_EXTRA_FIELD_NAME,
    MAX_EXTRA_FIELDS,
    ApiKey,
    Membership,
    Organization,
    User,
)

MAX_FIELD_TEXT_LENGTH = 1000
CLOSED_NOTICE = "Conversation closed."


class ConversationClosed(Conflict):
    default_code = "conversation_closed"
    default_detail = "This conversation is closed."


class VerifiedIdentityRequired(Forbidden):
    default_code = "verified_identity_required"
    default_detail = "This organization chats with verified contacts only."


@transaction.atomic
def conversation_open(
    *, principal: ContactPrincipal, external_id: str | None, fields: dict | None
) -> Conversation:
    """Open a conversation for the token's contact on the token's device.

    Records how it was created (`created_verified`, a copy of the contact's senderAuthInfo) and
    the `external_id` it lives under. `fields` must answer the org's extraDataCollectionFields.
    Raises 400 (`external_id_required`, field errors) or 403 (`verified_identity_required`).
    """
    _contact_may_chat(principal)
    external_id_require(principal=principal, external_id=external_id)
    cleaned = conversation_fields_clean(org=principal.org, fields=fields or {})
    _principal_device_lock(principal)
    now = timezone.now()
    return Conversation.objects.create(
        org=principal.org,
        contact=principal.contact,
        device=principal.device,
        created_verified=principal.is_verified,
        external_id=external_id or "",
        fields=cleaned,
        sender_auth_info=copy.deepcopy(principal.contact.sender_auth_info),
        created_at=now,
        last_message_at=now,
    )


def message_post_contact(
    *, principal: ContactPrincipal, conversation_id, external_id: str | None, text: str
) -> Message:
    """The contact's message in one of the conversations their token may see (else a 404).

    The visibility check locks the conversation's row in the same query. The message keeps a copy
    of the contact's senderAuthInfo as it is now. Raises 409 `conversation_closed` when the
    conversation is closed. On PostgreSQL the lock, the INSERT and the conversation's UPDATE are
    one statement (`_contact_post_sql`).
    """
    _contact_may_chat(principal)
    sender = {
        "sender_kind": Message.SenderKind.CONTACT,
        "sender_contact": principal.contact,
        "sender_auth_info": copy.deepcopy(principal.contact.sender_auth_info),
    }
    if connection.vendor == "postgresql":
        return _message_post_contact_statement(
            principal=principal,
            conversation_id=conversation_id,
            external_id=external_id,
            message=Message(body=_text_clean(text), **sender),
        )
    with transaction.atomic():
        _principal_device_lock(principal)
        conversation = conversation_visible_get(
            principal=principal,
            conversation_id=conversation_id,
            external_id=external_id,
            for_update=True,
        )
        return _message_append(conversation=conversation, already_locked=True, text=text, **sender)


def _principal_device_lock(principal: ContactPrincipal) -> None:
    """Lock the token's device for this transaction, and refuse the token (401) if it has been
    revoked since the request checked it: a logout, an adoption or an erasure that committed in
    between stands, and an erasure still running finishes first and then finds nothing new.
    The device comes before the conversation, as in the erasure (conversations.data_rights)."""
    if device_lock_unrevoked(device=principal.device) is None:
        raise Unauthenticated()


_MESSAGE, _CONVERSATION, _DEVICE = Message._meta, Conversation._meta, Device._meta
# The message's columns the statement fills from parameters; the others come from the locked
# conversation (org, conversation), the sequence (id) and the clock under the lock (created_at).
_POSTED_FIELDS = tuple(
    field
    for field in _MESSAGE.concrete_fields
    if field.name not in ("id", "org", "conversation", "created_at")
)


@functools.lru_cache(maxsize=16)
def _contact_post_sql(visible_sql: str) -> str:
    """One statement: lock the token's device (only while unrevoked) and then the visible
    conversation, INSERT the message if it is open, point the conversation at it, and return the
    conversation's row with the message's id and created_at.

    `visible_sql` is the ORM's own locking query (`conversations.selectors`), so the visibility
    rule is not written again here. The message's `created_at` is the database's clock once the
    lock is held, so ids and timestamps advance together as they do under the ORM path.
    """
    quote = connection.ops.quote_name

    def column(meta, name: str) -> str:
        return quote(meta.get_field(name).column)

    message, conversation = quote(_MESSAGE.db_table), quote(_CONVERSATION.db_table)
    device, principal = quote(_DEVICE.db_table), quote("principal")
    visible, new = quote("visible"), quote("new")
    new_id, new_created_at = (
        f"{new}.{column(_MESSAGE, 'id')}",
        f"{new}.{column(_MESSAGE, 'created_at')}",
    )
    columns = [
        column(_MESSAGE, "org"),
        column(_MESSAGE, "conversation"),
        *(quote(f.column) for f in _POSTED_FIELDS),
        column(_MESSAGE, "created_at"),
    ]
    values = [
        f"{visible}.{column(_CONVERSATION, 'org')}",
        f"{visible}.{column(_CONVERSATION, 'id')}",
        *(["%s"] * len(_POSTED_FIELDS)),
        "clock_timestamp()",
    ]
    # Identifiers from the models' own metadata, quoted; values are all parameters.
    return (
        # The token's device, locked first and only while unrevoked (`_principal_device_lock`).
        f"WITH {principal} AS MATERIALIZED (SELECT 1 FROM {device}"  # noqa: S608
        f" WHERE {column(_DEVICE, 'id')} = %s AND {column(_DEVICE, 'revoked_at')} IS NULL"
        f" FOR SHARE),"
        f" {visible} AS (SELECT * FROM ({visible_sql}) AS {quote('v')}"
        f" WHERE EXISTS (SELECT 1 FROM {principal})),"
        f" {new} AS (INSERT INTO {message} ({', '.join(columns)})"
        f" SELECT {', '.join(values)} FROM {visible}"
        f" WHERE {visible}.{column(_CONVERSATION, 'status')} = %s"
        f" RETURNING {column(_MESSAGE, 'id')}, {column(_MESSAGE, 'conversation')},"
        f" {column(_MESSAGE, 'created_at')}),"
        f" {quote('linked')} AS (UPDATE {conversation}"
        f" SET {column(_CONVERSATION, 'last_message_at')} = {new_created_at},"
        f" {column(_CONVERSATION, 'last_message')} = {new_id}"
        f" FROM {new} WHERE {conversation}.{column(_CONVERSATION, 'id')}"
        f" = {new}.{column(_MESSAGE, 'conversation')})"
        f" SELECT {visible}.*, {new_id}, {new_created_at} FROM {visible} LEFT JOIN {new} ON TRUE"
    )


def _message_post_contact_statement(
    *, principal: ContactPrincipal, conversation_id, external_id: str | None, message: Message
) -> Message:
    statement = conversation_visible_locking_statement(
        principal=principal, conversation_id=conversation_id, external_id=external_id
    )
    if statement is None:
        raise NotFound()
    visible_sql, visible_params, load = statement
    # The connection itself, not `django.db.connection`, which looks it up on every attribute.
    db = connections[DEFAULT_DB_ALIAS]
    params = [
        principal.device.pk,
        *visible_params,
        *save_values(message, _POSTED_FIELDS, db, add=True),
        Conversation.Status.OPEN,
    ]
    row = execute_prepared(db, _contact_post_sql(visible_sql), params, fetch=True)
    if row is None:
        # Nothing visible, or the token's device was revoked since the request checked it.
        revoked = not Device.objects.filter(
            pk=principal.device.pk, revoked_at__isnull=True
        ).exists()
        raise Unauthenticated() if revoked else NotFound()
    *conversation_row, message_id, created_at = row
    if message_id is None:
        raise ConversationClosed()
    conversation = load(conversation_row)
    message.pk, message.created_at = message_id, created_at
    message.org_id, message.conversation = conversation.org_id, conversation
    mark_saved(message, db.alias)
    conversation.last_message_at, conversation.last_message = created_at, message
    return message


@transaction.atomic
def message_post_agent(
    *,
    org: Organization,
    conversation: Conversation,
    text: str,
    user: User | None = None,
    api_key: ApiKey | None = None,
) -> Message:
    """An agent's reply, or an integration's reply when `api_key` is given (exactly one of them).

    Integration replies are `sender_kind="agent"` with no `sender_user`; the key's name is shown
    as the sender. Raises 409 `conversation_closed` when the conversation is closed.
    """
    if (user is None) == (api_key is None):
        raise TypeError("message_post_agent needs exactly one of user and api_key")
    _same_org(org=org, conversation=conversation)
    return _message_append(
        conversation=conversation,
        sender_kind=Message.SenderKind.AGENT,
        text=text,
        sender_user=user,
        sender_api_key=api_key,
    )


@transaction.atomic
def conversation_close(
    *, org: Organization, conversation: Conversation, user: User | None = None
) -> Conversation:
    """Close a conversation; idempotent. The first close adds a system message naming `user`.

    Once closed, nobody can post into it (409 `conversation_closed`).
    """
    _same_org(org=org, conversation=conversation)
    locked = _conversation_lock(conversation)
    if locked.status == Conversation.Status.CLOSED:
        return locked
    now = _locked_now()
    notice = Message.objects.create(
        org=locked.org,
        conversation=locked,
        sender_kind=Message.SenderKind.SYSTEM,
        sender_user=user,
        body=CLOSED_NOTICE,
        created_at=now,
    )
    locked.status = Conversation.Status.CLOSED
    locked.closed_at = now
    locked.last_message_at = now
    locked.last_message = notice
    locked.save(update_fields=["status", "closed_at", "last_message_at", "last_message"])
    return locked


ASSIGNEE_NOT_A_MEMBER = "Must be an active member of this organization."


@transaction.atomic
def conversation_assign(
    *, org: Organization, conversation: Conversation, assignee: User | None
) -> Conversation:
    """Assign a conversation to an active member of `org`, or unassign it with None.

    The assignee's membership row stays locked until this commits, so a removal of that member
    at the same time either waits and then unassigns the conversation
    (`member_conversations_unassign`), or has committed first and this is refused.
    """
    _same_org(org=org, conversation=conversation)
    if assignee is not None and not (
        Membership.objects.in_force()
        .filter(org=org, user=assignee)
        .select_for_update(no_key=True, of=("self",))
        .exists()
    ):
        raise ValidationError({"assignee": [ASSIGNEE_NOT_A_MEMBER]})
    locked = _conversation_lock(conversation)
    locked.assignee = assignee
    locked.save(update_fields=["assignee"])
    return locked


def member_conversations_unassign(*, org_id, user_id, **signal) -> int:
    """Unassign the open conversations of a member who left `org_id`, for the members who
    remain to take up; closed ones keep the assignee as who handled them. Connected to
    `identity.signals.membership_removed` (conversations.apps), so it runs inside the removal's
    transaction. Returns the count.
    """
    return Conversation.objects.filter(
        org_id=org_id, assignee_id=user_id, status=Conversation.Status.OPEN
    ).update(assignee=None)


@transaction.atomic
def device_history_adopt(
    *, org: Organization, verified_principal: ContactPrincipal, previous_device: Device
) -> int:
    """Move a browser device's conversations to the verified contact now holding that browser.

    Only conversations created on `previous_device` by that device's own (anonymous or
    non-verified) contact move. They become `created_verified=True`, so the verified contact sees
    them on every device, as if opened through the verified path; each keeps the senderAuthInfo it
    was created with, and each message its sender, so agents still see how they began. Returns the
    count. When the org turned `merge_device_history_on_verify` off, nothing moves and 0 returns.
    Revoking the previous token is the caller's job.
    """
    if not verified_principal.is_verified or verified_principal.org.pk != org.pk:
        raise Forbidden()
    previous_contact = Contact.objects.filter(pk=previous_device.contact_id).first()
    if previous_device.org_id != org.pk or previous_contact is None:
        raise NotFound()
    if previous_contact.is_verified:
        raise ApplicationError(
            "Only an anonymous or non-verified device's history can be adopted.",
            code="previous_token_verified",
        )
    if not org.merge_device_history_on_verify:
        return 0
    return Conversation.objects.filter(
        org=org, device=previous_device, contact=previous_contact
    ).update(contact=verified_principal.contact, created_verified=True)


def conversation_fields_clean(*, org: Organization, fields: dict) -> dict:
    """Check `fields` against the org's extraDataCollectionFields and type each value.

    Unknown names and missing required answers are errors; optional fields left empty are
    dropped. Raises ValidationError keyed `fields.<name>`.
    """
    specs = {
        spec["name"]: spec
        for spec in org.extra_data_collection_fields
        if isinstance(spec, dict) and isinstance(spec.get("name"), str)
    }
    # Unknown names are named back, but only as many and as long as real ones can be: an error
    # body never grows with what the client sent.
    unknown = [name for name in fields if name not in specs]
    named = [name for name in unknown if len(name) <= MAX_EXTRA_FIELD_NAME][:MAX_EXTRA_FIELDS]
    errors: dict[str, list[str]] = {f"fields.{name}": ["Unknown field."] for name in named}
    if len(unknown) > len(named):
        errors["fields"] = [f"{len(unknown) - len(named)} more unknown fields."]
    cleaned = {}
    for name, spec in specs.items():
        try:
            value = _field_value_clean(spec, fields.get(name))
        except ValidationError as exc:
            errors[f"fields.{name}"] = exc.messages
            continue
        if value is not None:
            cleaned[name] = value
    if errors:
        raise ValidationError(errors)
    return cleaned


MAX_SAFE_INTEGER = 2**53 - 1


def _field_value_clean(spec: dict, value):
    kind = spec.get("type", "text")
    if isinstance(value, str):
        value = value.strip()
    if value is None or value == "":
        if spec.get("required"):
            raise ValidationError("This field is required.")
        return None
    if kind == "checkbox":
        if not isinstance(value, bool):
            raise ValidationError("Must be true or false.")
        if spec.get("required") and not value:
            raise ValidationError("This field is required.")
        return value
    if kind == "number":
        is_number = isinstance(value, int | float) and not isinstance(value, bool)
        # Python's integers have no bound (a 400-digit one is valid JSON, and too large for a
        # float): hold them to what a JavaScript number keeps exactly, as agents' pages read them.
        if not is_number or abs(value) > MAX_SAFE_INTEGER or not math.isfinite(value):
            raise ValidationError(
                f"Must be a number between -{MAX_SAFE_INTEGER} and {MAX_SAFE_INTEGER}."
            )
        return value
    if not isinstance(value, str):
        raise ValidationError("Must be a string.")
    if len(value) > MAX_FIELD_TEXT_LENGTH:
        raise ValidationError(f"Must be at most {MAX_FIELD_TEXT_LENGTH} characters.")
    if kind == "email":
        return email_clean(value)  # one spelling, as contacts' and agents' emails
    if kind == "select" and value not in (spec.get("options") or []):
        raise ValidationError("Must be one of the field's options.")
    return value


def _contact_may_chat(principal: ContactPrincipal) -> None:
    if principal.org.require_verified_identity and not principal.is_verified:
        raise VerifiedIdentityRequired()


def _same_org(*, org: Organization, conversation: Conversation) -> None:
    if conversation.org_id != org.pk:
        raise NotFound()


def _locked_now() -> datetime:
    """When a message written under its conversation's row lock happens: on PostgreSQL the
    database's `clock_timestamp()`, the clock a visitor's post reads in its own statement
    (`_contact_post_sql`), so that every app server stamps one conversation's messages from one
    clock and their `created_at` advances with their ids whichever server wrote them; elsewhere
    (SQLite, one process's database) the app's clock. Call it with the lock held.
    """
    if connection.vendor != "postgresql":
        return timezone.now()
    with connection.cursor() as cursor:
        cursor.execute("SELECT clock_timestamp()")
        return cursor.fetchone()[0]


def _conversation_lock(conversation: Conversation) -> Conversation:
    # The row lock serializes every write to one conversation: message ids, their created_at and
    # the conversation's last_message_at advance together, and a close cannot interleave a post.
    locked = Conversation.objects.select_for_update().filter(pk=conversation.pk).first()
    if locked is None:
        raise NotFound()
    return locked


def _text_clean(text: str) -> str:
    if not isinstance(text, str) or not text.strip():
        raise ValidationError({"text": ["This field may not be blank."]})
    if len(text) > MAX_MESSAGE_LENGTH:
        raise ValidationError(
            {"text": [f"Ensure this field has no more than {MAX_MESSAGE_LENGTH} characters."]}
        )
    if "\x00" in text:
        raise ValidationError({"text": ["Null characters are not allowed."]})
    return text


# Every message posted is this INSERT and its conversation's UPDATE: one statement on PostgreSQL.
_MESSAGE_APPEND = InsertAndUpdate(
    Message, update=Conversation, fields=["last_message_at"], link="last_message"
)


def _message_append(
    *,
    conversation: Conversation,
    sender_kind: str,
    text: str,
    already_locked: bool = False,
    **sender,
) -> Message:
    """Append a message; `already_locked`: the caller holds the conversation's row lock (and
    `conversation` is the row it read with it)."""
    text = _text_clean(text)
    locked = conversation if already_locked else _conversation_lock(conversation)
    if locked.status == Conversation.Status.CLOSED:
        raise ConversationClosed()
    now = _locked_now()
    message = Message(
        org_id=locked.org_id,
        conversation=locked,
        sender_kind=sender_kind,
        body=text,
        created_at=now,
        **sender,
    )
    locked.last_message_at = now
    _MESSAGE_APPEND.run(message, locked)
    conversation.last_message_at, conversation.last_message = now, message
    return message
