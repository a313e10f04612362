"""Fixtures for conversations: visitors with contact tokens minted directly, integration clients."""

from dataclasses import dataclass

import pytest
from rest_framework.test import APIClient

from contacts.models import Contact, Device
from contacts.selectors import ContactPrincipal, contact_principal
from contacts.services import contact_token_issue
from conversations.models import Conversation, Message
from identity import services as identity_services
from identity.models import ApiKey
from tests.factories import (
    ContactFactory,
    DeviceFactory,
    MessageFactory,
    UserFactory,
    VerifiedContactFactory,
)

NOT_FOUND = {"error": {"code": "not_found", "message": "Not found."}}
FORBIDDEN = {
    "error": {
        "code": "permission_denied",
        "message": "You do not have permission to perform this action.",
    }
}


def sender_auth_info(contact: Contact, auth_type: str, method: str) -> dict:
    verified = auth_type == "VERIFIED"
    return {
        "authType": auth_type,
        "method": method,
        "verified": verified,
        "verifiedAt": contact.verified_at.isoformat() if verified else None,
        "authVar": {"uid": str(contact.pk), "keyId": "csk_0123456789abcdef" if verified else None},
    }


@dataclass
class Visitor:
    """One browser: a contact, its device, a contact token and a widget client carrying both."""

    contact: Contact
    device: Device
    token: str
    client: APIClient

    def principal(self) -> ContactPrincipal:
        return contact_principal(org=self.contact.org, token=self.token)


def visitor_for(contact: Contact, device: Device | None = None) -> Visitor:
    device = device or DeviceFactory(contact=contact)
    token, _ = contact_token_issue(org=contact.org, contact=contact, device=device)
    client = APIClient(
        HTTP_X_WIDGET_TOKEN=contact.org.widget_token, HTTP_AUTHORIZATION=f"Bearer {token}"
    )
    return Visitor(contact=contact, device=device, token=token, client=client)


def contact_with_trust(org, trust: str) -> Contact:
    if trust == Contact.Trust.VERIFIED:
        contact = VerifiedContactFactory(org=org)
        contact.sender_auth_info = sender_auth_info(contact, "VERIFIED", "api_key")
    elif trust == Contact.Trust.NON_VERIFIED:
        contact = ContactFactory(
            org=org, trust=trust, name="Nina Visitor", email="nina@visitor.test"
        )
        contact.sender_auth_info = sender_auth_info(contact, "NON_VERIFIED", "collect_form")
    else:
        contact = ContactFactory(org=org)
        contact.sender_auth_info = sender_auth_info(contact, "ANONYMOUS", "anonymous")
    contact.save(update_fields=["sender_auth_info"])
    return contact


def visitor_with_trust(org, trust: str) -> Visitor:
    return visitor_for(contact_with_trust(org, trust))


@pytest.fixture
def anonymous(org) -> Visitor:
    return visitor_with_trust(org, Contact.Trust.ANONYMOUS)


@pytest.fixture
def non_verified(org) -> Visitor:
    return visitor_with_trust(org, Contact.Trust.NON_VERIFIED)


@pytest.fixture
def verified(org) -> Visitor:
    return visitor_with_trust(org, Contact.Trust.VERIFIED)


def api_key_client(org, *scopes: str, name: str = "Support bot") -> APIClient:
    issued = identity_services.api_key_create(
        org=org, created_by=None, name=name, scopes=list(scopes), expires_at=None
    )
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issued.key}")
    return client


def thread_add(conversation: Conversation, count: int, *, api_key: ApiKey) -> None:
    """`count` more messages in `conversation`, from every kind of sender in turn: its contact,
    an agent (a new one each time, so no sender repeats), `api_key` (an integration) and the
    system. For query budgets: a thread that loaded a sender per message would show it."""
    senders = [
        lambda: {"sender_kind": Message.SenderKind.CONTACT, "sender_contact": conversation.contact},
        lambda: {"sender_kind": Message.SenderKind.AGENT, "sender_user": UserFactory()},
        lambda: {"sender_kind": Message.SenderKind.AGENT, "sender_api_key": api_key},
        lambda: {"sender_kind": Message.SenderKind.SYSTEM},
    ]
    for index in range(count):
        MessageFactory(conversation=conversation, **senders[index % len(senders)]())
