"""Writes for the contacts app: visitor identities, their devices, tokens and senderAuthInfo."""

import secrets
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from config.exceptions import ApplicationError, Conflict
from config.fields import check_custom_data
from contacts.models import Contact, Device
from identity.models import Organization
from identity.tokens import contact_token_mint


class CustomDataTooLarge(ApplicationError):
    default_code = "custom_data_too_large"
    default_detail = "Custom data would exceed 16 KiB or 5 levels once merged."


@dataclass(frozen=True)
class IssuedToken:
    """A contact token as handed to a client, with the contact and device behind it."""

    token: str
    expires_at: datetime
    contact: Contact
    device: Device


class AuthMethod:
    """How an identity was established: SPEC §4 `method`."""

    ANONYMOUS = "anonymous"
    COLLECT_FORM = "collect_form"
    BROWSER = "browser"
    API_KEY = "api_key"
    CUSTOM_JWT = "custom_jwt"


_AUTH_TYPES = {
    Contact.Trust.ANONYMOUS: "ANONYMOUS",
    Contact.Trust.NON_VERIFIED: "NON_VERIFIED",
    Contact.Trust.VERIFIED: "VERIFIED",
}


def sender_auth_info_build(
    *,
    contact: Contact,
    method: str,
    key_id: str | None = None,
    token_claims: dict | None = None,
) -> dict:
    """The SPEC §4 record of how `contact`'s identity was established.

    Built by the server only; it holds claims at most, never a raw token, signature, key or secret.
    """
    verified = contact.trust == Contact.Trust.VERIFIED
    auth_var: dict = {"uid": str(contact.pk), "keyId": key_id}
    if token_claims is not None:
        auth_var["token"] = {
            claim: token_claims.get(claim) for claim in ("iss", "sub", "aud", "iat", "exp", "jti")
        }
    return {
        "authType": _AUTH_TYPES[contact.trust],
        "method": method,
        "verified": verified,
        "verifiedAt": contact.verified_at.isoformat() if verified and contact.verified_at else None,
        "authVar": auth_var,
    }


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


def external_id_new() -> str:
    return f"ext_{secrets.token_hex(12)}"


def guest_name_new() -> str:
    """Tiledesk's default first name for anonymous visitors: guest#xxxx."""
    return "guest#" + secrets.token_hex(2)


@transaction.atomic
def contact_unverified_sign_in(
    *,
    org: Organization,
    current_device: Device | None,
    name: str | None,
    email: str | None,
    custom_data: dict | None,
    method: str,
    user_agent: str = "",
    display_name: str = "",
) -> IssuedToken:
    """Mint a browser identity: anonymous without details, non-verified with a name or email.

    With `current_device` (the device of a valid token this browser already holds) the same
    contact and device are kept and the details updated; an anonymous contact given details
    becomes non-verified, never the other way. Browser data lands only in the non-verified
    fields (`name`, `email`, `non_verified_custom_data`), never in `custom_data`, `user_id` or
    `verified_at`. A verified contact's device is refused: its details come from its backend.
    """
    has_details = bool(name or email)
    now = timezone.now()
    if current_device is not None:
        contact = Contact.objects.select_for_update().get(pk=current_device.contact_id)
        if contact.is_verified:
            raise Conflict(
                "A verified contact's details are set by the customer's backend.",
                code="contact_is_verified",
            )
        device = current_device
    else:
        contact = Contact(org=org, first_seen_at=now, name=display_name)
        device = Device(org=org, contact=contact, user_agent=user_agent[:512], created_at=now)

    if has_details:
        contact.trust = Contact.Trust.NON_VERIFIED
    if name:
        contact.name = name
    if email:
        contact.email = email
    if custom_data:
        merged = {**contact.non_verified_custom_data, **custom_data}
        if check_custom_data(merged):
            raise CustomDataTooLarge()
        contact.non_verified_custom_data = merged
    contact.last_seen_at = now
    method = method if contact.trust == Contact.Trust.NON_VERIFIED else AuthMethod.ANONYMOUS
    if current_device is None or has_details or custom_data:
        contact.sender_auth_info = sender_auth_info_build(contact=contact, method=method)
    contact.save()
    device.last_seen_at = now
    device.save()
    token, expires_at = contact_token_issue(org=org, contact=contact, device=device)
    return IssuedToken(token=token, expires_at=expires_at, contact=contact, device=device)


@transaction.atomic
def device_revoke(*, device: Device) -> None:
    """Log a browser out: its token (and any other token of this device) is refused from now on."""
    Device.objects.filter(pk=device.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
