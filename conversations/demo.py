"""Demo seed for the conversations layer: one conversation per trust level, with agent replies."""

import copy
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from contacts.models import Contact, Device
from contacts.services import AuthMethod, sender_auth_info_build
from conversations.models import Conversation, Message
from identity.demo import demo_api_key
from identity.models import ApiKey, Organization, User

DEMO_THREADS = [
    {
        "trust": Contact.Trust.ANONYMOUS,
        "method": AuthMethod.ANONYMOUS,
        "external_id": "",
        "lines": [
            (Message.SenderKind.CONTACT, "Hi! Do you ship to Canada?"),
            (Message.SenderKind.AGENT, "We do: 3 to 5 business days, tracked."),
        ],
    },
    {
        "trust": Contact.Trust.NON_VERIFIED,
        "method": AuthMethod.COLLECT_FORM,
        "external_id": "ext_demo_nonverified",
        "contact": {
            "name": "Robin Guest",
            "email": "robin@guest.example",
            "non_verified_custom_data": {"plan": "gold", "note": "typed in the browser"},
        },
        "lines": [
            (Message.SenderKind.CONTACT, "I'm a gold customer, can you refund order 1042?"),
            (Message.SenderKind.AGENT, "I can't confirm your account from here. Please sign in."),
            (Message.SenderKind.CONTACT, "OK, signing in now."),
        ],
    },
    {
        "trust": Contact.Trust.VERIFIED,
        "method": AuthMethod.API_KEY,
        "external_id": "",
        "contact": {
            "name": "Dana Customer",
            "email": "dana@customer.example",
            "user_id": "demo-user-1",
            "custom_data": {"plan": "gold", "orders": 12},
        },
        "lines": [
            (Message.SenderKind.CONTACT, "Where is order 1042?"),
            (Message.SenderKind.AGENT, "It left our warehouse this morning, Dana."),
        ],
    },
]


@transaction.atomic
def seed_conversations(*, org: Organization, agent_user: User) -> None:
    """Give the demo org one contact, device and conversation per trust level; skip if it has any.

    Each contact carries the senderAuthInfo its identity model would produce (SPEC §4), copied onto
    its conversation and its messages as the real paths do; agent lines are `agent_user`'s. The
    verified one names the org's demo API key (`seed_identity`'s), never an operator's own key.
    """
    if Conversation.objects.filter(org=org).exists():
        return
    api_key = demo_api_key(org)
    start = timezone.now() - timedelta(hours=len(DEMO_THREADS))
    for index, thread in enumerate(DEMO_THREADS):
        contact = _demo_contact(org=org, thread=thread, api_key=api_key)
        device = Device.objects.create(org=org, contact=contact)
        created_at = start + timedelta(hours=index)
        conversation = Conversation.objects.create(
            org=org,
            contact=contact,
            device=device,
            created_verified=contact.is_verified,
            external_id=thread["external_id"],
            sender_auth_info=copy.deepcopy(contact.sender_auth_info),
            created_at=created_at,
            last_message_at=created_at,
        )
        for offset, (kind, text) in enumerate(thread["lines"]):
            at = created_at + timedelta(minutes=offset + 1)
            from_contact = kind == Message.SenderKind.CONTACT
            conversation.last_message = Message.objects.create(
                org=org,
                conversation=conversation,
                sender_kind=kind,
                sender_contact=contact if from_contact else None,
                sender_user=None if from_contact else agent_user,
                sender_auth_info=copy.deepcopy(contact.sender_auth_info) if from_contact else {},
                body=text,
                created_at=at,
            )
            conversation.last_message_at = at
        conversation.save(update_fields=["last_message_at", "last_message"])


def _demo_contact(*, org: Organization, thread: dict, api_key: ApiKey | None) -> Contact:
    verified = thread["trust"] == Contact.Trust.VERIFIED
    details = thread.get("contact", {})
    # A verified contact is unique per user_id: reuse it if an earlier seed left it behind.
    contact = (
        Contact.objects.filter(
            org=org, trust=Contact.Trust.VERIFIED, user_id=details["user_id"]
        ).first()
        if verified
        else None
    )
    if contact is None:
        contact = Contact.objects.create(
            org=org,
            trust=thread["trust"],
            verified_at=timezone.now() if verified else None,
            **details,
        )
    contact.sender_auth_info = sender_auth_info_build(
        contact=contact,
        method=thread["method"],
        key_id=api_key.prefix if verified and api_key else None,
    )
    contact.save(update_fields=["sender_auth_info"])
    return contact
