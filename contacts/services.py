"""Writes for the contacts app: visitor identities, their devices, tokens and senderAuthInfo."""

from datetime import datetime

from django.conf import settings

from contacts.models import Contact, Device
from identity.models import Organization
from identity.tokens import contact_token_mint


def contact_token_lifetime(*, org: Organization, trust: str):
    return {
        Contact.Trust.ANONYMOUS: org.anonymous_token_lifetime,
        Contact.Trust.NON_VERIFIED: org.non_verified_token_lifetime,
        Contact.Trust.VERIFIED: org.verified_token_lifetime,
    }[trust]


def contact_token_issue(
    *, org: Organization, contact: Contact, device: Device
) -> tuple[str, datetime]:
    """Sign a contact token for `device` with the org's lifetime for the contact's trust level."""
    return contact_token_mint(
        key=settings.CONTACT_TOKEN_KEY,
        issuer=settings.PUBLIC_URL,
        org_id=str(org.pk),
        contact_id=str(contact.pk),
        device_id=str(device.pk),
        trust=contact.trust,
        lifetime=contact_token_lifetime(org=org, trust=contact.trust),
    )
