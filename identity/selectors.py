"""Reads for the identity app, always scoped to what the caller may see."""

import logging
import uuid
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache
from django.db.models import QuerySet
from django.utils import timezone

from config.exceptions import NotFound, Unauthenticated
from config.precompiled import ModelRow
from identity import widget_cache
from identity.models import ApiKey, Membership, Organization, SigningSecret, User
from identity.tokens import (
    InvalidTokenError,
    UndecryptableSecretError,
    api_key_matches,
    api_key_public_id,
    custom_token_audiences,
    custom_token_decode,
    custom_token_header,
    signing_verification_key,
)

logger = logging.getLogger(__name__)


def organization_for_widget_token(*, widget_token: str) -> Organization | None:
    """The org a widget token identifies: no query on a warm cache, usually no round trip either.

    See identity.widget_cache for the two cache layers. The returned org is shared between threads
    of this process: callers must treat it as read-only.
    """
    if not widget_token.startswith("wgt_") or len(widget_token) > 64:
        return None
    org = widget_cache.memo_get(widget_token)
    if org is not None:
        return org
    org = widget_cache.shared_get(widget_token)
    if org == widget_cache.RETIRED:
        return None
    if org is None:
        org = Organization.objects.filter(widget_token=widget_token).first()
        if org is None:
            return None
        widget_cache.shared_add(widget_token, org)
    widget_cache.memo_put(widget_token, org)
    return org


def membership_for(*, user: User, org_id) -> Membership:
    """The caller's membership in an org; an org they do not belong to is a 404, not a 403."""
    membership = (
        Membership.objects.in_force().select_related("org").filter(user=user, org_id=org_id).first()
    )
    if membership is None:
        raise NotFound()
    return membership


@dataclass(frozen=True)
class ApiKeyPrincipal:
    """The caller of a server-to-server route: one org's API key and its scopes."""

    api_key: ApiKey
    is_authenticated: bool = True

    @property
    def org(self) -> Organization:
        return self.api_key.org

    def has_scope(self, scope: str) -> bool:
        return scope in self.api_key.scopes


API_KEY_LAST_USED_EVERY_SECONDS = 60


# Every server-to-server request makes this lookup, so it is compiled once (config.precompiled).
_API_KEY_ROW = ModelRow(
    'SELECT {columns} FROM "identity_apikey" k'
    ' JOIN "identity_organization" o ON o."id" = k."org_id"'
    ' WHERE k."public_id" = %s',
    models=[(ApiKey, "k"), (Organization, "o")],
    params=[ApiKey._meta.get_field("public_id")],
)


def api_key_principal(*, raw: str) -> ApiKeyPrincipal:
    """Authenticate a raw API key (one query); raise the uniform 401 for any unusable key."""
    public_id = api_key_public_id(raw)
    row = _API_KEY_ROW.fetch(public_id) if public_id else None
    if row is None:
        raise Unauthenticated()
    api_key, org = row
    api_key.org = org
    if not api_key_matches(raw, api_key.digest) or not api_key.is_usable():
        raise Unauthenticated()
    # last_used_at is informative: written at most once a minute, so the hot path stays read-only.
    # The row says when it was last written; only then does the shared cache pick one writer.
    now = timezone.now()
    stale = (
        api_key.last_used_at is None
        or (now - api_key.last_used_at).total_seconds() >= API_KEY_LAST_USED_EVERY_SECONDS
    )
    if stale and cache.add(
        f"api-key-used:{api_key.pk}", 1, timeout=API_KEY_LAST_USED_EVERY_SECONDS
    ):
        ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
    return ApiKeyPrincipal(api_key=api_key)


def organization_by_public_id(*, org_id: str) -> Organization:
    """An org by its public id (Tiledesk's `id_project`); malformed or unknown is a 404."""
    try:
        parsed = uuid.UUID(str(org_id))
    except ValueError as exc:
        raise NotFound() from exc
    org = Organization.objects.filter(pk=parsed).first()
    if org is None:
        raise NotFound()
    return org


def api_keys_for_org(*, org: Organization) -> QuerySet[ApiKey]:
    """Every API key of `org`, revoked ones included, newest first, with their creator (1 query)."""
    return (
        ApiKey.objects.filter(org=org).select_related("created_by").order_by("-created_at", "-pk")
    )


def signing_secrets_for_org(*, org: Organization) -> QuerySet[SigningSecret]:
    """Every signing secret of `org`, retired ones included, newest first."""
    return SigningSecret.objects.filter(org=org).order_by("-created_at", "-pk")


def signing_secrets_active(*, org: Organization) -> QuerySet[SigningSecret]:
    """The signing secrets that may verify `org`'s custom tokens right now, newest first."""
    return signing_secrets_for_org(org=org).filter(retired_at__isnull=True)


def signing_key_for_token(*, org: Organization, kid: str | None) -> SigningSecret:
    """The active secret a custom token's `kid` names; without a kid, the org's only active one.

    One query, no cache, so a retired secret is refused at once. Raises InvalidTokenError when the
    kid is unknown, retired or another org's, or when there is no kid and not exactly one secret.
    """
    active = signing_secrets_active(org=org)
    if kid is not None:
        signing_secret = active.filter(kid=kid).first()
        if signing_secret is None:
            raise InvalidTokenError("unknown kid")
        return signing_secret
    candidates = list(active[:2])
    if len(candidates) != 1:
        raise InvalidTokenError("kid required")
    return candidates[0]


def custom_token_verify(*, token: str, org: Organization) -> dict:
    """Verify a customer-signed token for `org` (SPEC §3.3) and return its verified claims.

    The result has `_id, email, firstname, lastname, attributes, iss, sub, aud, iat, exp, jti`
    (None for absent optional claims; `role` and other claims are dropped) plus `kid`, the signing
    secret that verified it, for senderAuthInfo. Replay is NOT checked here: call
    `identity.services.custom_token_jti_consume` with `jti` and `exp` before acting on the claims.
    Raises InvalidTokenError for any problem.
    """
    header = custom_token_header(token)
    signing_secret = signing_key_for_token(org=org, kid=header.get("kid"))
    try:
        key = signing_verification_key(
            algorithm=signing_secret.algorithm,
            encrypted_secret=signing_secret.encrypted_secret,
            public_key=signing_secret.public_key,
            encryption_key=settings.SIGNING_SECRET_ENCRYPTION_KEY,
        )
    except UndecryptableSecretError:
        # The client gets the uniform 401; the operator must hear that every token signed with
        # this secret now fails, and why. The kid only, never the secret.
        logger.error(
            "signing secret %s of org %s cannot be decrypted: SIGNING_SECRET_ENCRYPTION_KEY (or "
            "DJANGO_SECRET_KEY, which it is derived from when unset) changed since it was stored; "
            "every token it signs is refused. Restore the key, or create a new secret and retire "
            "this one.",
            signing_secret.kid,
            org.pk,
        )
        raise
    claims = custom_token_decode(
        token,
        key=key,
        algorithm=signing_secret.algorithm,
        audiences=custom_token_audiences(org_id=str(org.pk), public_url=settings.PUBLIC_URL),
    )
    return {**claims, "kid": signing_secret.kid}
