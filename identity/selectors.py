"""Reads for the identity app, always scoped to what the caller may see."""

from dataclasses import dataclass

from django.core.cache import cache
from django.utils import timezone

from config.exceptions import NotFound, Unauthenticated
from identity.models import ApiKey, Membership, Organization, User
from identity.services import widget_config_cache_key
from identity.tokens import api_key_matches, api_key_public_id

WIDGET_ORG_CACHE_SECONDS = 300


def organization_for_widget_token(*, widget_token: str) -> Organization | None:
    """The org a widget token identifies, cached so a warm /widget/config makes no query."""
    if not widget_token.startswith("wgt_") or len(widget_token) > 64:
        return None
    key = widget_config_cache_key(widget_token)
    org = cache.get(key)
    if org is None:
        org = Organization.objects.filter(widget_token=widget_token).first()
        if org is None:
            return None
        cache.set(key, org, timeout=WIDGET_ORG_CACHE_SECONDS)
    return org


def membership_for(*, user: User, org_id) -> Membership:
    """The caller's membership in an org; an org they do not belong to is a 404, not a 403."""
    membership = Membership.objects.select_related("org").filter(user=user, org_id=org_id).first()
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


def api_key_principal(*, raw: str) -> ApiKeyPrincipal:
    """Authenticate a raw API key (one query); raise the uniform 401 for any unusable key."""
    public_id = api_key_public_id(raw)
    api_key = (
        ApiKey.objects.select_related("org").filter(public_id=public_id).first()
        if public_id
        else None
    )
    if api_key is None or not api_key_matches(raw, api_key.digest) or not api_key.is_usable():
        raise Unauthenticated()
    # last_used_at is informative; writing it at most once a minute keeps the hot path read-only.
    if cache.add(f"api-key-used:{api_key.pk}", 1, timeout=API_KEY_LAST_USED_EVERY_SECONDS):
        ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=timezone.now())
    return ApiKeyPrincipal(api_key=api_key)
