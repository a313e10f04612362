"""Data rights: an operator exports everything stored about a contact, or erases it.

It spans contacts and conversations, so it lives in the top app. Both services are audited, and
both cover the same data: the contact with its devices; the conversations it owns, whole; and
the conversations it opened on one of its devices that a verified contact has adopted since
(adoption moves a conversation to the verified contact but keeps its device and each message's
sender). Of an adopted one, only what the contact put there is its data: its form answers, the
external id and senderAuthInfo it was opened under, and the contact's own messages.
"""

from dataclasses import dataclass

from django.db import transaction
from django.db.models import Prefetch, Q, QuerySet
from django.utils import timezone

from contacts.models import Contact, Device
from contacts.selectors import contact_for_org
from conversations.models import Conversation, Message
from identity.models import AuditEvent, Organization, User
from identity.services import audit_record

ERASED_TEXT = "[erased]"

# What an erased senderAuthInfo keeps: how trust was established, never who it was about.
_KEPT_AUTH_KEYS = ("authType", "method", "verified")


@dataclass(frozen=True)
class ContactExport:
    """A contact with its devices and conversations, messages oldest first.

    A conversation it owns comes with every message, agents' replies included; one adopted since
    by a verified contact comes with only the messages this contact wrote.
    """

    contact: Contact
    devices: list[Device]
    conversations: list[Conversation]


@dataclass(frozen=True)
class ContactErasure:
    """What an erasure changed; all zeros when the contact had been erased before.

    `conversations` counts those it owns and those adopted from its devices; `messages` its own.
    """

    contact: Contact
    devices_revoked: int
    conversations: int
    messages: int


@transaction.atomic
def contact_export(
    *, org: Organization, contact_id, actor_user: User | None, ip: str = ""
) -> ContactExport:
    """Everything stored about one of `org`'s contacts, for a subject-access request.

    Reads the contact, its devices and its conversations with their messages (agents' replies
    included: they are part of the conversation the person had). A conversation it opened that a
    verified contact has adopted since is exported as opened (form answers, external id,
    senderAuthInfo) with only this contact's messages: what the adopting contact or the agents
    wrote there after is not this contact's data. Writes one `contact.exported` audit event.
    Another org's, an unknown or a malformed id raises NotFound and writes nothing.
    """
    contact = contact_for_org(org=org, contact_id=contact_id)
    devices = list(Device.objects.filter(contact=contact).order_by("created_at", "pk"))
    exported_messages = Message.objects.filter(
        Q(conversation__contact=contact) | Q(sender_contact=contact)
    ).order_by("pk")
    conversations = list(
        _conversations_holding(org=org, contact=contact)
        .prefetch_related(Prefetch("messages", queryset=exported_messages))
        .order_by("created_at", "pk")
    )
    audit_record(
        org=org,
        action=AuditEvent.Action.CONTACT_EXPORTED,
        actor_user=actor_user,
        target=str(contact.pk),
        ip=ip,
        details={
            "devices": len(devices),
            "conversations": len(conversations),
            "messages": sum(len(c.messages.all()) for c in conversations),
        },
    )
    return ContactExport(contact=contact, devices=devices, conversations=conversations)


@transaction.atomic
def contact_erase(
    *, org: Organization, contact_id, actor_user: User | None, ip: str = ""
) -> ContactErasure:
    """Erase one of `org`'s contacts: personal and custom data go, the trust level stays.

    In one transaction: the contact's name, email, phone, avatar, language, `user_id`, custom
    data, chat context and HTTP-action overrides are cleared and its senderAuthInfo reduced to
    how trust was established; every device is revoked (so every token dies) and loses its user
    agent; its conversations, and those it opened that a verified contact has adopted since, lose
    their form fields and external id and have their senderAuthInfo reduced likewise; the
    contact's own messages, wherever they are now, read "[erased]" without senderAuthInfo, and
    every message in the conversations it owns loses its senderAuthInfo. Agents' replies and the
    adopting contact's messages stay. `erased_at` is set; `trust`, `verified_at` and the
    timestamps stay for statistics. One `contact.erased` audit event is written.

    Idempotent: erasing an erased contact changes nothing and writes no second event. Another
    org's, an unknown or a malformed id raises NotFound and writes nothing.
    """
    pk = contact_for_org(org=org, contact_id=contact_id).pk
    # The contact, then its devices, then its conversations: the order in which a visitor's post
    # locks device and conversation, so the two queue rather than deadlock. FOR NO KEY UPDATE, as
    # a post's message INSERT checks its sender's key (FOR KEY SHARE) and must not wait on this.
    contact = Contact.objects.select_for_update(no_key=True).get(pk=pk)
    if contact.erased_at is not None:
        return ContactErasure(contact=contact, devices_revoked=0, conversations=0, messages=0)

    now = timezone.now()
    for field in ("name", "email", "phone", "avatar_url", "language", "user_id", "chat_context"):
        setattr(contact, field, "")
    contact.custom_data = {}
    contact.non_verified_custom_data = {}
    contact.http_action_overrides = {}
    contact.sender_auth_info = _sender_auth_info_reduce(contact.sender_auth_info)
    contact.erased_at = now
    contact.save()

    devices_revoked = Device.objects.filter(contact=contact, revoked_at__isnull=True).update(
        revoked_at=now
    )
    Device.objects.filter(contact=contact).exclude(user_agent="").update(user_agent="")

    conversations = list(_conversations_holding(org=org, contact=contact).select_for_update())
    for conversation in conversations:
        conversation.fields = {}
        conversation.external_id = ""
        conversation.sender_auth_info = _sender_auth_info_reduce(conversation.sender_auth_info)
    Conversation.objects.bulk_update(
        conversations, ["fields", "external_id", "sender_auth_info"], batch_size=500
    )

    # The contact's words: in its conversations, and any it wrote before a verified contact
    # adopted them (adoption moves conversations, not message senders). The same messages are
    # exported: a contact writes only where its token may, and only adoption moves a conversation.
    own_messages = Message.objects.filter(org=org).filter(
        Q(conversation__contact=contact, sender_kind=Message.SenderKind.CONTACT)
        | Q(sender_contact=contact)
    )
    messages = own_messages.update(body=ERASED_TEXT, sender_auth_info={})
    Message.objects.filter(conversation__contact=contact).update(sender_auth_info={})

    audit_record(
        org=org,
        action=AuditEvent.Action.CONTACT_ERASED,
        actor_user=actor_user,
        target=str(contact.pk),
        ip=ip,
        details={
            "trust": contact.trust,
            "devices_revoked": devices_revoked,
            "conversations": len(conversations),
            "messages": messages,
        },
    )
    return ContactErasure(
        contact=contact,
        devices_revoked=devices_revoked,
        conversations=len(conversations),
        messages=messages,
    )


def _conversations_holding(*, org: Organization, contact: Contact) -> QuerySet[Conversation]:
    """The contact's conversations, and those opened on its devices that another contact owns now.

    A device belongs to one contact for good, and adoption keeps a conversation's device, so the
    device tells reliably who opened (and answered the form of) an adopted conversation.
    """
    its_devices = Device.objects.filter(contact=contact).values("pk")
    return Conversation.objects.filter(org=org).filter(
        Q(contact=contact) | Q(device__in=its_devices)
    )


def _sender_auth_info_reduce(info: dict) -> dict:
    """Keep authType, method, verified and authVar.uid: how trust was proven, not by whom."""
    if not isinstance(info, dict) or not info:
        return {}
    reduced = {key: info[key] for key in _KEPT_AUTH_KEYS if key in info}
    auth_var = info.get("authVar")
    if isinstance(auth_var, dict) and "uid" in auth_var:
        reduced["authVar"] = {"uid": auth_var["uid"]}
    return reduced
