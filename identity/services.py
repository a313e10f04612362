"""Writes for the identity app: agent sign-in and its tokens, organizations and memberships."""

from django.contrib.auth import authenticate
from django.core.cache import cache
from django.db import transaction
from rest_framework.exceptions import Throttled
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken
from rest_framework_simplejwt.tokens import RefreshToken

from config.exceptions import Unauthenticated
from identity import lockout
from identity.models import Membership, Organization, User
from identity.tokens import widget_token_new


def agent_sign_in(*, email: str, password: str, ip: str) -> User:
    """Check an agent's password, with lockout per account and per client IP.

    While a lock holds, every attempt is refused with 429, a correct password included. Unknown
    email, wrong password and inactive user are indistinguishable (the same 401).
    """
    subjects = lockout.subjects_for(email=email, ip=ip)
    wait = lockout.lockout_remaining(subjects)
    if wait:
        raise Throttled(wait=wait, detail="Too many failed sign-ins. Try again later.")
    user = authenticate(email=email, password=password)
    if user is None or not user.is_active:
        lockout.lockout_register_failure(subjects)
        raise Unauthenticated()
    lockout.lockout_clear(subjects[0])
    return user


@transaction.atomic
def agent_tokens_issue(*, user: User) -> dict[str, str]:
    """A fresh refresh token (recorded as outstanding) and its access token."""
    refresh = RefreshToken.for_user(user)
    return {"access": str(refresh.access_token), "refresh": str(refresh)}


def _refresh_token_load(raw: str) -> RefreshToken:
    try:
        return RefreshToken(raw)
    except TokenError as exc:
        raise Unauthenticated() from exc


@transaction.atomic
def agent_tokens_refresh(*, refresh: str) -> dict[str, str]:
    """Rotate a refresh token: the old one is blacklisted, exactly once, even under a race."""
    token = _refresh_token_load(refresh)
    user = User.objects.filter(pk=token.get("user_id"), is_active=True).first()
    if user is None:
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


@transaction.atomic
def membership_set(*, user: User, org: Organization, role: str) -> Membership:
    membership, _ = Membership.objects.update_or_create(user=user, org=org, defaults={"role": role})
    return membership


def widget_config_cache_key(widget_token: str) -> str:
    return f"widget-org:{widget_token}"


@transaction.atomic
def organization_widget_token_rotate(*, org: Organization) -> Organization:
    """Issue a new widget token; the old one stops identifying the org at once."""
    old = org.widget_token
    org.widget_token = widget_token_new()
    org.save(update_fields=["widget_token"])
    transaction.on_commit(lambda: cache.delete(widget_config_cache_key(old)))
    return org


def organization_cache_invalidate(*, org: Organization) -> None:
    """Drop the cached widget org after its settings change; call inside the write's transaction."""
    token = org.widget_token
    transaction.on_commit(lambda: cache.delete(widget_config_cache_key(token)))
