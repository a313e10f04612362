"""Writes for the contacts app: visitor identities, their devices, tokens and senderAuthInfo."""

import secrets
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, transaction
from django.db.models import Max, Q
from django.utils import timezone

from config.emails import MAX_EMAIL_LENGTH, email_clean
from config.exceptions import ApplicationError, Conflict, Unauthenticated
from config.fields import check_custom_data
from config.jsontext import as_sentence, json_value_check
from config.precompiled import CompiledQuery, InsertAndUpdate, RowsInsert, RowVersion, row_versions
from contacts.models import Contact, Device
from identity.models import MAX_LIFETIME, MAX_VERIFIED_LIFETIME, Organization
from identity.selectors import custom_token_verify
from identity.services import custom_token_jti_consume, custom_token_jti_release
from identity.tokens import (
    CUSTOM_PROFILE_CLAIMS,
    InvalidTokenError,
    contact_token_mint,
    custom_token_org_id_unverified,
)


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


# A first visit (and a first verified sign-in) writes its contact and device in one statement;
# a verified sign-in on a known contact updates it and inserts its device in one statement too
# (`_KNOWN_CUSTOMER_SIGN_IN`; config.precompiled).
# Both commit asynchronously when they are their own transaction (config.precompiled): losing
# one in a database crash leaves a token whose device does not exist, which is refused.
_NEW_IDENTITY = RowsInsert(Contact, Device, asynchronous_commit=True)


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
    contact and device are kept and the details updated, unless the device was revoked or its
    contact erased since the token was checked: then, as for a first visit, a new contact and
    device. An anonymous contact given details becomes non-verified, never the other way.
    Browser data lands only in the non-verified fields (`name`, `email`,
    `non_verified_custom_data`), never in `custom_data`, `user_id` or `verified_at`. A verified
    contact's device is refused: its details come from its backend.
    """
    now = timezone.now()
    details = {"name": name, "email": email, "custom_data": custom_data, "method": method}
    if current_device is not None:
        # A returning browser: its contact and device are locked and read again, because the
        # token was checked before this transaction began. A logout, an adoption's revocation or
        # an erasure that committed since then stands: the browser gets a fresh identity, as it
        # would had it come a moment later.
        with transaction.atomic():
            # FOR NO KEY UPDATE: a message's INSERT checks its sender's key (FOR KEY SHARE), and
            # a post holding its device waits for that; a full lock here would deadlock with it.
            contact = Contact.objects.select_for_update(no_key=True).get(
                pk=current_device.contact_id
            )
            device = device_lock_unrevoked(device=current_device)
            if device is not None and contact.erased_at is None:
                if contact.is_verified:
                    raise Conflict(
                        "A verified contact's details are set by the customer's backend.",
                        code="contact_is_verified",
                    )
                _browser_details_apply(contact, **details, now=now, first_visit=False)
                device.contact, device.last_seen_at = contact, now
                contact.save()
                device.save(update_fields=["last_seen_at"])
                return _issued(org=org, contact=contact, device=device)
    # A first visit writes its contact and device in one INSERT statement, atomic on its own.
    contact = Contact(org=org, first_seen_at=now, name=display_name)
    device = Device(org=org, contact=contact, user_agent=user_agent[:512], created_at=now)
    _browser_details_apply(contact, **details, now=now, first_visit=True)
    device.last_seen_at = now
    _NEW_IDENTITY.insert(contact, device)
    return _issued(org=org, contact=contact, device=device)


def _issued(*, org: Organization, contact: Contact, device: Device) -> IssuedToken:
    token, expires_at = contact_token_issue(org=org, contact=contact, device=device)
    return IssuedToken(token=token, expires_at=expires_at, contact=contact, device=device)


def custom_data_merge(stored: dict, changes: dict) -> dict:
    """Stored custom data with a sign-in's changes applied: top-level keys replace, and a key sent
    as null is removed (a shallow JSON merge patch, RFC 7396 at the top level only)."""
    merged = {**stored, **changes}
    return {key: value for key, value in merged.items() if value is not None}


def _browser_details_apply(
    contact: Contact,
    *,
    name: str | None,
    email: str | None,
    custom_data: dict | None,
    method: str,
    now: datetime,
    first_visit: bool,
) -> None:
    """Set what a browser may set on its own contact, and senderAuthInfo when that changed."""
    has_details = bool(name or email)
    if has_details:
        contact.trust = Contact.Trust.NON_VERIFIED
    if name:
        contact.name = name
    if email:
        contact.email = email
    if custom_data:
        merged = custom_data_merge(contact.non_verified_custom_data, custom_data)
        if check_custom_data(merged):
            raise CustomDataTooLarge()
        contact.non_verified_custom_data = merged
    _contact_seen(contact, now)
    method = method if contact.trust == Contact.Trust.NON_VERIFIED else AuthMethod.ANONYMOUS
    # senderAuthInfo says how the identity (name, email) was given: custom data alone names no
    # one, so a page's customData must not relabel a form's answers as the page's.
    if first_visit or has_details:
        contact.sender_auth_info = sender_auth_info_build(contact=contact, method=method)


# How finely a contact's `last_seen_at` follows its visits. It orders the agents' lists, which
# need no finer, and it is in two of the contact's indexes: a visit that leaves it (and the other
# indexed columns) as they were rewrites the row without touching any index (a HOT update on
# PostgreSQL), where moving it puts a new entry in every index of the contact, the name's trigram
# index included.
LAST_SEEN_RESOLUTION = timedelta(minutes=1)


def _contact_seen(contact: Contact, now: datetime) -> None:
    """Record a visit at `now`: a new contact's first, or one a resolution after the last."""
    if contact._state.adding or now - contact.last_seen_at >= LAST_SEEN_RESOLUTION:
        contact.last_seen_at = now


def device_lock_unrevoked(*, device: Device) -> Device | None:
    """`device` read again and locked for the caller's transaction, or None once it is revoked.

    For writes that act on a token checked before their transaction began: a logout, an
    adoption's revocation or an erasure that committed in between must stand. Lock a device's
    contact before the device, as the erasure does.
    """
    return Device.objects.select_for_update().filter(pk=device.pk, revoked_at__isnull=True).first()


@transaction.atomic
def device_revoke(*, device: Device) -> None:
    """Log a browser out: its token (and any other token of this device) is refused from now on."""
    Device.objects.filter(pk=device.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())


@dataclass(frozen=True)
class VerifiedProfile:
    """What a customer's backend vouches for. `user_id` empty means: identify by email; `email`
    empty (a custom token may leave it out) keeps a known contact's email."""

    email: str
    user_id: str = ""
    name: str | None = None
    phone: str | None = None
    avatar_url: str | None = None
    language: str | None = None
    custom_data: dict | None = None
    chat_context: str | None = None
    http_action_overrides: dict | None = None


@dataclass(frozen=True)
class VerifiedProof:
    """How the backend vouched: `api_key` with the key's prefix, or `custom_jwt` with its claims."""

    method: str
    key_id: str
    token_claims: dict | None = None


class IdentityConflict(Conflict):
    default_code = "identity_conflict"
    default_detail = "This email already belongs to a verified contact with another user_id."


VERIFIED_UPSERT_ATTEMPTS = 5


def contact_verified_sign_in(
    *, org: Organization, profile: VerifiedProfile, proof: VerifiedProof, user_agent: str = ""
) -> IssuedToken:
    """Upsert the verified contact a customer's backend vouched for and mint its token.

    The identity key is `user_id` when given, else the normalized email. The same `user_id` with
    a new email updates the email; an email held by a verified contact with another `user_id` is
    a 409. A verified contact known by email alone is claimed by the first `user_id` sent for it.
    Each sign-in gets a device of its own, so logging one browser out leaves the others alone.

    On PostgreSQL a sign-in first reads its contact without a lock and writes in one statement
    that applies only if nobody changed the contact in between (its row version); no
    transaction is opened. If someone did, the sign-in runs again the classic way: in a
    transaction, on the locked row. Either way the result is the same as under the lock.
    Concurrent first sign-ins of one user race on the partial unique constraints; the losers
    retry and update the winner's row, so exactly one contact results and nobody sees an error.
    """
    connection = transaction.get_connection()
    for attempt in range(VERIFIED_UPSERT_ATTEMPTS):
        try:
            if row_versions(connection):
                # Inside a caller's transaction a failing statement must not abort it: a
                # savepoint. In autocommit each statement commits or fails on its own.
                with transaction.atomic() if connection.in_atomic_block else nullcontext():
                    issued = _verified_upsert(
                        org=org, profile=profile, proof=proof, user_agent=user_agent, lock=False
                    )
                if issued is not None:
                    return issued
            with transaction.atomic():
                return _verified_upsert(
                    org=org, profile=profile, proof=proof, user_agent=user_agent, lock=True
                )
        except IntegrityError:
            if attempt == VERIFIED_UPSERT_ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


def _verified_match_query(*, org, email: str, user_id: str, lock: bool):
    # Each key restates its partial unique index's predicate (`<> ''`), which the value alone
    # implies only once known: so the plan PostgreSQL makes without the values, which a
    # prepared statement settles on, can still use the indexes.
    keys = Q()
    if email:
        keys |= Q(email=email) & ~Q(email="")
    if user_id:
        keys |= Q(user_id=user_id) & ~Q(user_id="")
    contacts = Contact.objects.filter(org=org, trust=Contact.Trust.VERIFIED, erased_at__isnull=True)
    if lock:
        contacts = contacts.select_for_update()
    return contacts.annotate(row_version=RowVersion()).filter(keys).order_by()[:2]


# Every sign-in runs it: built and compiled once per shape (config.precompiled.CompiledQuery).
_VERIFIED_MATCH = CompiledQuery(
    _verified_match_query,
    params={name: Contact._meta.get_field(name) for name in ("org", "email", "user_id")},
    prepare=True,
)


def _verified_match(*, org: Organization, profile: VerifiedProfile, lock: bool) -> Contact | None:
    """The verified contact this profile names, locked or with its `row_version`; None for a new
    one (one query).

    A blank email or user_id names nobody: contacts without one are not the same person.
    """
    if not profile.email and not profile.user_id:
        return None
    # The partial unique constraints leave at most one row per key, so at most two rows.
    candidates = _VERIFIED_MATCH.run(
        org=org, email=profile.email, user_id=profile.user_id, lock=lock
    )
    by_email = next((c for c in candidates if profile.email and c.email == profile.email), None)
    if not profile.user_id:
        return by_email
    by_user_id = next((c for c in candidates if c.user_id == profile.user_id), None)
    if by_email is not None and by_email.pk != getattr(by_user_id, "pk", None):
        if by_email.user_id:
            raise IdentityConflict()
        if by_user_id is None:
            return by_email
        raise IdentityConflict()
    return by_user_id


# What a verified sign-in may change on an existing contact; nothing else is written.
VERIFIED_UPSERT_FIELDS = (
    "email",
    "user_id",
    "name",
    "phone",
    "avatar_url",
    "language",
    "chat_context",
    "http_action_overrides",
    "custom_data",
    "verified_at",
    "last_seen_at",
    "sender_auth_info",
)
_KNOWN_CUSTOMER_SIGN_IN = InsertAndUpdate(
    Device, update=Contact, fields=VERIFIED_UPSERT_FIELDS, asynchronous_commit=True
)


def _verified_upsert(
    *,
    org: Organization,
    profile: VerifiedProfile,
    proof: VerifiedProof,
    user_agent: str,
    lock: bool,
) -> IssuedToken | None:
    """One sign-in attempt; with `lock`, inside the caller's transaction on the locked row.

    Without it (PostgreSQL), the row is read unlocked and written only if unchanged since:
    None, with nothing written, when it changed.
    """
    now = timezone.now()
    contact = _verified_match(org=org, profile=profile, lock=lock) or Contact(
        org=org, trust=Contact.Trust.VERIFIED, first_seen_at=now
    )
    # A custom token may leave the email out: that keeps the known one, it does not clear it.
    if profile.email:
        contact.email = profile.email
    if profile.user_id:
        contact.user_id = profile.user_id
    for field in ("name", "phone", "avatar_url", "language", "chat_context"):
        value = getattr(profile, field)
        if value is not None:
            setattr(contact, field, value)
    if profile.http_action_overrides is not None:
        contact.http_action_overrides = profile.http_action_overrides
    if profile.custom_data:
        merged = custom_data_merge(contact.custom_data, profile.custom_data)
        if check_custom_data(merged):
            raise CustomDataTooLarge()
        contact.custom_data = merged
    contact.verified_at = now
    _contact_seen(contact, now)
    contact.sender_auth_info = sender_auth_info_build(
        contact=contact, method=proof.method, key_id=proof.key_id, token_claims=proof.token_claims
    )
    device = Device(
        org=org, contact=contact, user_agent=user_agent[:512], created_at=now, last_seen_at=now
    )
    if contact._state.adding:
        _NEW_IDENTITY.insert(contact, device)
    elif lock:
        _KNOWN_CUSTOMER_SIGN_IN.run(device, contact)
    elif not _KNOWN_CUSTOMER_SIGN_IN.run_if_unchanged(device, contact, version=contact.row_version):
        return None
    return _issued(org=org, contact=contact, device=device)


MAX_NAME_LENGTH = Contact._meta.get_field("name").max_length
FULL_NAME_TOO_LONG = f"Together with firstname, at most {MAX_NAME_LENGTH} characters."


def full_name(firstname: str | None, lastname: str | None) -> str:
    """Tiledesk's two names as the contact's one: "firstname lastname", either may be absent."""
    return " ".join(n.strip() for n in (firstname, lastname) if n and n.strip())


def _claims_profile(claims: dict) -> VerifiedProfile:
    """Turn verified custom-token claims into a profile, holding them to the SPEC §5 limits."""
    problems: dict[str, list[str]] = {}
    for claim in CUSTOM_PROFILE_CLAIMS:
        try:
            json_value_check(claims.get(claim))
        except ValueError as exc:
            problems[claim] = [as_sentence(str(exc))]
    email = claims.get("email") or ""
    email_too_long = f"Must be an email address of at most {MAX_EMAIL_LENGTH} characters."
    if not isinstance(email, str):
        problems["email"] = [email_too_long]
    elif "email" not in problems:
        try:
            email = email_clean(email) if email.strip() else ""  # blank: keep the known email
        except DjangoValidationError as exc:
            too_long = exc.code == "max_length"
            problems["email"] = [email_too_long if too_long else "Enter a valid email address."]
    names = [claims.get("firstname") or "", claims.get("lastname") or ""]
    if not all(isinstance(n, str) and len(n) <= 100 for n in names):
        problems.setdefault("firstname", ["Names must be strings of at most 100 characters."])
    elif len(full_name(*names)) > MAX_NAME_LENGTH:
        problems.setdefault("lastname", [FULL_NAME_TOO_LONG])
    attributes = claims.get("attributes")
    if (
        "attributes" not in problems
        and attributes is not None
        and (not isinstance(attributes, dict) or check_custom_data(attributes))
    ):
        problems["attributes"] = ["Must be a JSON object of at most 16 KiB and 5 levels."]
    if problems:
        raise DjangoValidationError(problems)
    name = full_name(*names)
    return VerifiedProfile(
        email=email, user_id=claims["_id"], name=name or None, custom_data=attributes
    )


def contact_custom_token_sign_in(*, token: str, user_agent: str = "") -> tuple[IssuedToken, dict]:
    """Exchange a customer-signed JWT (Tiledesk's custom token) for our own verified token.

    The org is the one the token's `aud` names; the signature, algorithm, `kid`, audience,
    lifetime and claims are checked by identity before anything is written, then the `jti` (or,
    without one, the token itself) is consumed (a replay, on any app server, is refused). A
    sign-in refused against what is stored (the 409 identity conflict, custom data too large once
    merged) writes nothing and gives the `jti` back. Every failure of the token itself is the
    uniform 401. `role` is never read: a customer-signed token cannot create or sign in an agent.
    """
    org_id = custom_token_org_id_unverified(token, public_url=settings.PUBLIC_URL)
    org = Organization.objects.filter(pk=org_id).first() if org_id else None
    if org is None:
        raise Unauthenticated()
    try:
        claims = custom_token_verify(token=token, org=org)
    except InvalidTokenError as exc:
        raise Unauthenticated() from exc
    profile = _claims_profile(claims)
    if not custom_token_jti_consume(
        org=org, jti=claims["jti"], expires_at=claims["exp"], token=token
    ):
        raise Unauthenticated()
    proof = VerifiedProof(method=AuthMethod.CUSTOM_JWT, key_id=claims["kid"], token_claims=claims)
    try:
        issued = contact_verified_sign_in(
            org=org, profile=profile, proof=proof, user_agent=user_agent
        )
    except (IdentityConflict, CustomDataTooLarge):
        # Refused against what is stored, before anything was written: the token is not spent.
        custom_token_jti_release(org=org, jti=claims["jti"], token=token)
        raise
    return issued, claims


# --- pruning devices no token can name any more --------------------------------------------------


def devices_prune(*, now: datetime | None = None, batch_size: int = 5000, dry_run: bool = False):
    """Delete the devices no token can name any more and no conversation holds; return how many
    (or, with `dry_run`, how many would go).

    Each sign-in with a customer-signed token or authenticate-user makes a device, so a site that
    signs its customers in on every page view adds one per view. A device is dead once revoked
    (logout, adoption) or once its last token has surely expired: a returning browser gets a fresh
    token on the device it has (and moves `last_seen_at`, at most a minute behind), so the age
    that counts is the last visit's, against the longest lifetime a token of the contact's trust
    could have had: the widget settings' ceiling (7 days verified, 365 otherwise), or a longer one
    an org holds anyway. A device any conversation refers to stays, dead or not: a browser's
    history is the conversations opened on its device, and an adopted device is how export and
    erasure find the history it handed over (conversations.data_rights).

    Ids are read in one pass and deleted in batches, each its own transaction, so no lock is held
    long on a large table.
    """
    now = now or timezone.now()
    verified_ceiling, browser_ceiling = _lifetime_ceilings()
    last_token = now - LAST_SEEN_RESOLUTION
    dead = (
        Q(revoked_at__isnull=False)
        | Q(last_seen_at__lt=last_token - browser_ceiling)
        | Q(contact__trust=Contact.Trust.VERIFIED, last_seen_at__lt=last_token - verified_ceiling)
    )
    ids = (
        Device.objects.filter(dead, conversations__isnull=True)
        .order_by()
        .values_list("pk", flat=True)
    )
    if dry_run:
        return ids.count()
    pruned, batch = 0, []
    for device_id in ids.iterator(chunk_size=batch_size):
        batch.append(device_id)
        if len(batch) == batch_size:
            pruned += _devices_delete(batch)
            batch = []
    return pruned + (_devices_delete(batch) if batch else 0)


def _lifetime_ceilings() -> tuple[timedelta, timedelta]:
    """The longest lifetime a verified token, and a browser's token, can have had."""
    longest = Organization.objects.aggregate(
        verified=Max("verified_token_lifetime"),
        anonymous=Max("anonymous_token_lifetime"),
        non_verified=Max("non_verified_token_lifetime"),
    )
    verified = max(filter(None, [MAX_VERIFIED_LIFETIME, longest["verified"]]))
    browser = max(
        filter(None, [MAX_LIFETIME, longest["anonymous"], longest["non_verified"], verified])
    )
    return verified, browser


def _devices_delete(ids: list) -> int:
    # Checked again as it deletes: a conversation opened on the device since the ids were read
    # keeps it.
    with transaction.atomic():
        _, deleted = Device.objects.filter(pk__in=ids, conversations__isnull=True).delete()
    return deleted.get(Device._meta.label, 0)
