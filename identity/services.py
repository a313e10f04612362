"""Writes for the identity app: agent sign-in and tokens, orgs, API keys and signing secrets."""

import hashlib
import logging
import math
import time
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.contrib.auth import authenticate
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from rest_framework.exceptions import Throttled
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.settings import api_settings as jwt_settings
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken
from rest_framework_simplejwt.tokens import RefreshToken
from rest_framework_simplejwt.utils import get_md5_hash_password

from config.exceptions import Conflict, NotFound, Unauthenticated
from identity import lockout, widget_cache
from identity.models import ApiKey, AuditEvent, Membership, Organization, SigningSecret, User
from identity.signals import membership_removed
from identity.tokens import (
    AGENT_TOKEN_CLAIM_ERRORS,
    CUSTOM_TOKEN_LEEWAY_SECONDS,
    InvalidPublicKeyError,
    agent_token_claims_usable,
    api_key_new,
    secret_encrypt,
    signing_kid_new,
    signing_public_key_load,
    signing_public_key_pem,
    signing_secret_new,
    widget_token_new,
)

logger = logging.getLogger(__name__)

API_KEY_NAME_MAX_CHARS = 200


SIGN_IN_LOCKED = "Too many failed sign-ins. Try again later."


def agent_sign_in(*, email: str, password: str, ip: str) -> User:
    """Check an agent's password, with lockout per account and per client IP.

    While a lock holds, every attempt is refused with 429, a correct password included. Unknown
    email, wrong password and inactive user are indistinguishable (the same 401).
    """
    subjects = lockout.subjects_for(email=email, ip=ip)
    wait = lockout.lockout_remaining(subjects)
    if wait:
        raise Throttled(wait=wait, detail=SIGN_IN_LOCKED)
    # Counted before the password is checked, so guesses sent at once cannot all be checked.
    counts = lockout.lockout_attempt_begin(subjects)
    wait = lockout.lockout_over(subjects, counts)
    if wait:
        raise Throttled(wait=wait, detail=SIGN_IN_LOCKED)
    user = authenticate(email=email, password=password)
    if user is None or not user.is_active:
        for subject in lockout.lockout_attempt_failed(subjects, counts):
            # The hashed subject key, never the email: the audit log must not collect addresses.
            audit_record(
                org=None, action=AuditEvent.Action.SIGNIN_LOCKED_OUT, target=subject.key, ip=ip
            )
        raise Unauthenticated()
    lockout.lockout_attempt_succeeded(subjects[0], subjects[1:])
    return user


@transaction.atomic
def agent_tokens_issue(*, user: User) -> dict[str, str]:
    """A fresh refresh token (recorded as outstanding) and its access token."""
    refresh = RefreshToken.for_user(user)
    return {"access": str(refresh.access_token), "refresh": str(refresh)}


def _refresh_token_load(raw: str) -> RefreshToken:
    try:
        token = RefreshToken(raw)
    except (TokenError, *AGENT_TOKEN_CLAIM_ERRORS) as exc:
        raise Unauthenticated() from exc
    if not agent_token_claims_usable(token):
        raise Unauthenticated()
    return token


@transaction.atomic
def agent_tokens_refresh(*, refresh: str) -> dict[str, str]:
    """Rotate a refresh token: the old one is blacklisted, exactly once, even under a race.

    A refresh token issued under another password is refused, as its access tokens are
    (CHECK_REVOKE_TOKEN). A password change blacklists the refresh tokens it sees, but one a
    rotation committed just after that read was missed, and its own rotation then issued a chain
    under the new password's hash that outlived the change (a race audit kept one alive in 4 of
    10 rounds). The user's row is locked, so a rotation and a password change take turns.
    """
    token = _refresh_token_load(refresh)
    user = (
        User.objects.select_for_update(no_key=True)
        .filter(pk=token.get("user_id"), is_active=True)
        .first()
    )
    if user is None or token.get(jwt_settings.REVOKE_TOKEN_CLAIM) != get_md5_hash_password(
        user.password
    ):
        raise Unauthenticated()
    _blacklist_once(token)
    return agent_tokens_issue(user=user)


@transaction.atomic
def agent_tokens_revoke(*, refresh: str) -> None:
    """Log out: blacklist the refresh token so it can never be used again."""
    _blacklist_once(_refresh_token_load(refresh))


def _blacklist_once(token: RefreshToken) -> None:
    outstanding = OutstandingToken.objects.filter(jti=token["jti"]).order_by().first()
    if outstanding is None:
        raise Unauthenticated()
    # The one-to-one row is the lock: of two racing rotations only one creates it.
    _, created = BlacklistedToken.objects.get_or_create(token=outstanding)
    if not created:
        raise Unauthenticated()


@transaction.atomic
def organization_create(*, name: str, slug: str) -> Organization:
    return Organization.objects.create(name=name, slug=slug)


class LastOwner(Conflict):
    """An org keeps at least one owner: only an owner makes someone owner, so an org without
    one would need a superuser to get one again (docs/agent-ui.md)."""

    default_code = "last_owner"
    default_detail = "This is the organization's last owner."


def _org_row_lock(*, org_id) -> None:
    """Lock the org's row for this transaction: the writes that must take turns in one org
    (memberships, signing secrets) take it first. FOR NO KEY UPDATE, because plain FOR UPDATE
    would also block every insert of a row referencing the org (contacts, messages)."""
    Organization.objects.select_for_update(no_key=True).filter(pk=org_id).values_list(
        "pk", flat=True
    ).first()


def org_owner_ids(*, org_id, lock: bool = False) -> set:
    """The user ids of the org's owners in force (active staff, as every membership needs to
    give access); with `lock`, read under the org row's lock.

    A deactivated owner can manage nothing, so does not count: the one active owner beside them
    is the last owner (docs/decisions.md).

    Every membership write reads them locked, so writes in one org take turns and each reads the
    owners the one before it left. Read without the lock (as the admin's form does, for its
    message), two owners demoting or removing each other at once both saw another owner and left
    none (race audit: 16 of 20 rounds).
    """
    if lock:
        _org_row_lock(org_id=org_id)
    return set(
        Membership.objects.in_force()
        .filter(org_id=org_id, role=Membership.Role.OWNER)
        .values_list("user_id", flat=True)
    )


def account_cut_off(user: User) -> bool:
    """Whether a superuser cut `user` off: a member of some organization who is not staff, which
    ends every membership's force at once. Only a superuser turns them back on."""
    return not user.is_staff and Membership.objects.filter(user=user).exists()


@transaction.atomic
def membership_set(
    *, user: User, org: Organization, role: str, actor_user: User | None = None, ip: str = ""
) -> Membership:
    """Give `user` `role` in `org`. Members are staff (SPEC §6): a new account the admin created
    without "staff", in no organization yet, becomes staff here, or its membership would give it
    nothing. A member of any organization who is not staff was cut off by a superuser (unticking
    "staff" ends every membership's force at once): that stands, whatever is saved here, since
    `is_staff` is the account's, not this org's.

    Raises LastOwner, and writes nothing, when this would demote the org's last owner. A new
    member or a changed role is audited (the user's id, the role before and after); setting
    the role a member already has changes and records nothing.
    """
    owners = org_owner_ids(org_id=org.pk, lock=True)
    if role != Membership.Role.OWNER and owners == {user.pk}:
        raise LastOwner()
    if not user.is_staff and not account_cut_off(user):
        user.is_staff = True
        user.save(update_fields=["is_staff"])
    # Read once: the org row's lock (above) makes membership writes in this org take turns.
    membership = Membership.objects.filter(user=user, org=org).first()
    before = membership.role if membership else None
    if membership is None:
        membership = Membership.objects.create(user=user, org=org, role=role)
    elif before != role:
        membership.role = role
        membership.save(update_fields=["role"])
    if before != role:
        audit_record(
            org=org,
            action=AuditEvent.Action.MEMBERSHIP_SET,
            actor_user=actor_user,
            target=str(user.pk),
            ip=ip,
            details={"role": role, "previous_role": before},
        )
    return membership


@transaction.atomic
def membership_remove(
    *, membership: Membership, actor_user: User | None = None, ip: str = ""
) -> None:
    """Take a member out of their org; one already gone is done.

    Raises LastOwner, and removes nothing, when `membership` is the org's last owner. Sends
    `membership_removed` inside the transaction, after the delete: the conversations app
    unassigns the member's open conversations there, and a receiver's failure removes nothing.
    The removal is audited (the user's id and the role they had).
    """
    if org_owner_ids(org_id=membership.org_id, lock=True) == {membership.user_id}:
        raise LastOwner()
    deleted, _ = Membership.objects.filter(pk=membership.pk).delete()
    if deleted:
        audit_record(
            org=membership.org,
            action=AuditEvent.Action.MEMBERSHIP_REMOVED,
            actor_user=actor_user,
            target=str(membership.user_id),
            ip=ip,
            details={"previous_role": membership.role},
        )
    membership_removed.send(sender=Membership, org_id=membership.org_id, user_id=membership.user_id)


@transaction.atomic
def organization_delete(*, org: Organization) -> None:
    """Delete an org and everything in it (superusers, from the admin).

    The org's row is locked first (FOR UPDATE), so the writes that take turns on it (memberships,
    signing secrets, widget changes) finish, or wait, before any of the org's rows go. Deleting
    straight away took the memberships' rows first and the org's last, the opposite order of a
    membership write, and the two could deadlock. The widget token is retired in the shared
    cache too, as a rotation retires it, so no server keeps admitting widget requests for an org
    that is gone.
    """
    locked = Organization.objects.select_for_update().filter(pk=org.pk).first()
    if locked is None:
        return  # deleted by another request meanwhile
    token = locked.widget_token
    locked.delete()
    widget_cache.shared_retire(token)
    transaction.on_commit(lambda: widget_cache.memo_forget(token), robust=True)


@transaction.atomic
def organization_widget_token_rotate(
    *, org: Organization, actor_user: User | None = None, ip: str = ""
) -> Organization:
    """Issue a new widget token. Audited.

    The old token stops identifying the org at once in this process and in the shared cache, and
    in other processes once their memo expires (identity.widget_cache).
    """
    # The token being replaced is the one stored now, read under the row's lock: `org` was loaded
    # before, and a rotation that committed since issued a token this one must retire.
    old = (
        Organization.objects.select_for_update(no_key=True)
        .values_list("widget_token", flat=True)
        .get(pk=org.pk)
    )
    org.widget_token = widget_token_new()
    org.save(update_fields=["widget_token"])
    audit_record(
        org=org, action=AuditEvent.Action.WIDGET_TOKEN_ROTATED, actor_user=actor_user, ip=ip
    )
    widget_cache.shared_retire(old)
    org_id = org.pk
    transaction.on_commit(lambda: widget_cache.widget_token_retired(org_id, old), robust=True)
    return org


def organization_cache_invalidate(*, org: Organization) -> None:
    """Drop the org's shared cache entry now, and re-cache the org once its settings change
    commits; call inside the write's transaction, which must lock or update the org's row
    (identity.widget_cache)."""
    widget_cache.shared_forget(org.widget_token)
    org_id = org.pk
    transaction.on_commit(lambda: widget_cache.widget_org_changed(org_id), robust=True)


WIDGET_SETTING_FIELDS = (
    "collect_user_data",
    "extra_data_collection_fields",
    "require_verified_identity",
    "theme",
    "allowed_origins",
    "merge_device_history_on_verify",
    "anonymous_token_lifetime",
    "non_verified_token_lifetime",
    "verified_token_lifetime",
)


@transaction.atomic
def organization_widget_settings_update(
    *, org: Organization, changes: dict, actor_user: User | None = None, ip: str = ""
) -> Organization:
    """Apply validated widget-setting changes; the cached widget org is replaced on commit.

    Audited, when anything changed, with the names of the changed settings (not their values).
    """
    unknown = set(changes) - set(WIDGET_SETTING_FIELDS)
    if unknown:
        raise ValueError(f"not widget settings: {sorted(unknown)}")
    # Changes are applied to the row as it is under the lock, so a concurrent change of other
    # settings is kept.
    org = Organization.objects.select_for_update(no_key=True).get(pk=org.pk)
    for field, value in changes.items():
        setattr(org, field, value)
    org.save(update_fields=list(changes) or None)
    organization_cache_invalidate(org=org)
    if changes:
        audit_record(
            org=org,
            action=AuditEvent.Action.WIDGET_SETTINGS_CHANGED,
            actor_user=actor_user,
            ip=ip,
            details={"fields": sorted(changes)},
        )
    return org


# --- API keys ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class IssuedApiKey:
    """A new API key row and its full key. The key exists only here: show it once, then drop it."""

    api_key: ApiKey
    key: str


def _api_key_scopes_clean(scopes: list[str]) -> list[str]:
    """Known scopes only, at least one, deduplicated, in the order ApiKey.Scope declares them."""
    unknown = [s for s in scopes if s not in ApiKey.Scope.values]
    if unknown:
        raise ValidationError(
            {
                "scopes": [
                    f"Unknown scope {unknown[0]!r}. Valid scopes: {', '.join(ApiKey.Scope.values)}."
                ]
            }
        )
    if not scopes:
        raise ValidationError({"scopes": ["Give the key at least one scope."]})
    return [s for s in ApiKey.Scope.values if s in scopes]


@transaction.atomic
def api_key_create(
    *,
    org: Organization,
    created_by: User | None,
    name: str,
    scopes: list[str],
    expires_at: datetime | None,
    ip: str = "",
) -> IssuedApiKey:
    """Issue an API key for `org` with `scopes`, valid until `expires_at` (None: until revoked).

    Stores only the public id and the SHA-256 of the full key; the full key is returned once, in
    the IssuedApiKey. Raises ValidationError (400) for a blank or long name, unknown or no scopes,
    or an expiry that is not in the future; nothing is written then. Audited (prefix, never key).
    """
    name = (name or "").strip()
    if not name or len(name) > API_KEY_NAME_MAX_CHARS:
        raise ValidationError(
            {"name": [f"Give a name of 1 to {API_KEY_NAME_MAX_CHARS} characters."]}
        )
    clean_scopes = _api_key_scopes_clean(scopes)
    if expires_at is not None and expires_at <= timezone.now():
        raise ValidationError({"expires_at": ["Must be in the future."]})
    new = api_key_new()
    api_key = ApiKey.objects.create(
        org=org,
        name=name,
        public_id=new.public_id,
        digest=new.digest,
        scopes=clean_scopes,
        created_by=created_by,
        expires_at=expires_at,
    )
    logger.info(
        "API key %s created in org %s by user %s",
        api_key.prefix,
        org.pk,
        getattr(created_by, "pk", None),
    )
    audit_record(
        org=org,
        action=AuditEvent.Action.API_KEY_CREATED,
        actor_user=created_by,
        target=api_key.prefix,
        ip=ip,
        details={"name": name, "scopes": clean_scopes},
    )
    return IssuedApiKey(api_key=api_key, key=new.key)


@transaction.atomic
def api_key_revoke(
    *, org: Organization, api_key_id: int, revoked_by: User | None, ip: str = ""
) -> ApiKey:
    """Revoke one of `org`'s API keys: the row stays, with `revoked_at` set.

    The key is refused from the next request on (authentication reads the row every time).
    Idempotent: revoking a revoked key changes nothing and keeps the first `revoked_at` (and is
    audited once). Another org's key, or an unknown id, raises NotFound.
    """
    api_key = ApiKey.objects.select_for_update().filter(org=org, pk=api_key_id).first()
    if api_key is None:
        raise NotFound()
    if api_key.revoked_at is None:
        api_key.revoked_at = timezone.now()
        api_key.save(update_fields=["revoked_at"])
        logger.info(
            "API key %s revoked in org %s by user %s",
            api_key.prefix,
            org.pk,
            getattr(revoked_by, "pk", None),
        )
        audit_record(
            org=org,
            action=AuditEvent.Action.API_KEY_REVOKED,
            actor_user=revoked_by,
            target=api_key.prefix,
            ip=ip,
        )
    return api_key


# --- signing secrets for customer-signed tokens ----------------------------------------------


class TooManyActiveSecrets(Conflict):
    default_code = "too_many_active_secrets"
    default_detail = (
        f"An org has at most {SigningSecret.MAX_ACTIVE} active signing secrets. "
        "Retire one before adding another."
    )


@dataclass(frozen=True)
class IssuedSigningSecret:
    """A new HS256 signing secret row and its plaintext, which exists only here: show it once."""

    signing_secret: SigningSecret
    secret: str


def signing_secret_slot_claim(org: Organization) -> None:
    """Lock the org row, then check there is room for one more active secret.

    The lock serializes concurrent creations in one org, so two racing requests cannot both see
    one active secret and end with three.
    """
    _org_row_lock(org_id=org.pk)
    active = SigningSecret.objects.filter(org=org, retired_at__isnull=True).count()
    if active >= SigningSecret.MAX_ACTIVE:
        raise TooManyActiveSecrets()


@transaction.atomic
def signing_secret_create_shared(
    *, org: Organization, created_by: User | None, ip: str = ""
) -> IssuedSigningSecret:
    """Generate an HS256 signing secret for `org` with a fresh `kid`.

    The secret is stored only encrypted with SIGNING_SECRET_ENCRYPTION_KEY and returned in
    plaintext once. Raises TooManyActiveSecrets (409) when the org already has two active.
    """
    signing_secret_slot_claim(org)
    secret = signing_secret_new()
    signing_secret = SigningSecret.objects.create(
        org=org,
        kid=signing_kid_new(),
        algorithm=SigningSecret.Algorithm.HS256,
        encrypted_secret=secret_encrypt(
            secret, encryption_key=settings.SIGNING_SECRET_ENCRYPTION_KEY
        ),
        created_by=created_by,
    )
    logger.info(
        "signing secret %s (HS256) created in org %s by user %s",
        signing_secret.kid,
        org.pk,
        getattr(created_by, "pk", None),
    )
    _signing_secret_created_audit(signing_secret, created_by=created_by, ip=ip)
    return IssuedSigningSecret(signing_secret=signing_secret, secret=secret)


@transaction.atomic
def signing_secret_create_public_key(
    *,
    org: Organization,
    created_by: User | None,
    algorithm: str,
    public_key: str,
    ip: str = "",
) -> SigningSecret:
    """Register the customer's public key for RS256 (RSA ≥ 2048 bits) or ES256 (EC P-256).

    The key is stored in canonical PEM; private keys and keys of the wrong type or size raise
    ValidationError (400). Raises TooManyActiveSecrets (409) when the org already has two active.
    """
    if algorithm not in (SigningSecret.Algorithm.RS256, SigningSecret.Algorithm.ES256):
        raise ValidationError({"algorithm": ["Public keys are for RS256 or ES256."]})
    try:
        key = signing_public_key_load(public_key, algorithm=algorithm)
    except InvalidPublicKeyError as exc:
        raise ValidationError({"public_key": [str(exc)]}) from exc
    signing_secret_slot_claim(org)
    signing_secret = SigningSecret.objects.create(
        org=org,
        kid=signing_kid_new(),
        algorithm=algorithm,
        public_key=signing_public_key_pem(key),
        created_by=created_by,
    )
    logger.info(
        "signing secret %s (%s) created in org %s by user %s",
        signing_secret.kid,
        algorithm,
        org.pk,
        getattr(created_by, "pk", None),
    )
    _signing_secret_created_audit(signing_secret, created_by=created_by, ip=ip)
    return signing_secret


def _signing_secret_created_audit(
    signing_secret: SigningSecret, *, created_by: User | None, ip: str
) -> None:
    audit_record(
        org=signing_secret.org,
        action=AuditEvent.Action.SIGNING_SECRET_CREATED,
        actor_user=created_by,
        target=signing_secret.kid,
        ip=ip,
        details={"algorithm": signing_secret.algorithm},
    )


@transaction.atomic
def signing_secret_retire(
    *, org: Organization, kid: str, retired_by: User | None, ip: str = ""
) -> SigningSecret:
    """Retire one of `org`'s signing secrets: tokens under its `kid` are refused from now on.

    The row stays (with `retired_at`) for the record. Idempotent; another org's or an unknown
    `kid` raises NotFound.
    """
    signing_secret = SigningSecret.objects.select_for_update().filter(org=org, kid=kid).first()
    if signing_secret is None:
        raise NotFound()
    if signing_secret.retired_at is None:
        signing_secret.retired_at = timezone.now()
        signing_secret.save(update_fields=["retired_at"])
        logger.info(
            "signing secret %s retired in org %s by user %s",
            kid,
            org.pk,
            getattr(retired_by, "pk", None),
        )
        audit_record(
            org=org,
            action=AuditEvent.Action.SIGNING_SECRET_RETIRED,
            actor_user=retired_by,
            target=kid,
            ip=ip,
        )
    return signing_secret


def custom_token_jti_consume(
    *, org: Organization, jti: str | None, expires_at: datetime | int, token: str = ""
) -> bool:
    """Mark a customer-signed token as used; False when it was used before (a replay).

    By its `jti`; a token without one (the claim is optional) by a hash of its signed part (the
    header and the claims, `token` up to its last dot), so that those claims are single-use too.
    Not the whole token: an ES256 signature `(r, s)` is as valid as `(r, n - s)`, so anyone
    holding a used token could spell a second one with a new hash. `expires_at` is the token's
    `exp` (a datetime or epoch seconds). The mark lives in the shared cache until the token could
    no longer pass verification (exp + leeway); `cache.add` is atomic on Redis and LocMem, so of
    two racing requests with one jti exactly one gets True.
    """
    if isinstance(expires_at, datetime):
        expires_at = expires_at.timestamp()
    timeout = max(1, math.ceil(expires_at - time.time()) + CUSTOM_TOKEN_LEEWAY_SECONDS)
    return cache.add(_custom_token_mark(org=org, jti=jti, token=token), 1, timeout=timeout)


def custom_token_jti_release(*, org: Organization, jti: str | None, token: str = "") -> None:
    """Give back what `custom_token_jti_consume` marked, for a sign-in refused before it wrote
    anything (a failed request writes nothing, SPEC §5): the token may be exchanged again.

    Only the request that consumed the mark may call this, and only once it knows nothing of the
    sign-in was kept: a token whose sign-in committed must stay used.
    """
    cache.delete(_custom_token_mark(org=org, jti=jti, token=token))


def _custom_token_mark(*, org: Organization, jti: str | None, token: str) -> str:
    if jti is not None:
        mark = hashlib.sha256(jti.encode()).hexdigest()
    elif token:
        signed = token.rpartition(".")[0]
        mark = "token:" + hashlib.sha256(signed.encode()).hexdigest()
    else:
        raise ValueError("a token without a jti is marked by the token itself")
    return f"jti:{org.pk}:{mark}"


# --- audit trail ------------------------------------------------------------------------------

AUDIT_TARGET_MAX_CHARS = 128
AUDIT_IP_MAX_CHARS = 64


# Inside the change's transaction a savepoint would buy nothing: a failure undoes both anyway.
@transaction.atomic(savepoint=False)
def audit_record(
    *,
    org: Organization | None,
    action: str,
    actor_user: User | None = None,
    actor_api_key: ApiKey | None = None,
    target: str = "",
    ip: str = "",
    details: dict | None = None,
) -> AuditEvent:
    """Append one AuditEvent; called inside the change's own transaction, so both or neither land.

    `target` names the object (a key prefix, a kid, a contact id) and `details` adds plain facts;
    callers never pass a raw key, secret, token or password. `org` is None only for sign-in
    lockouts, which belong to no org.
    """
    return AuditEvent.objects.create(
        org=org,
        action=action,
        actor_user=actor_user if actor_user is not None and actor_user.pk else None,
        actor_api_key=actor_api_key,
        target=str(target)[:AUDIT_TARGET_MAX_CHARS],
        ip=(ip or "")[:AUDIT_IP_MAX_CHARS],
        details=details or {},
    )
