"""Reads for the playground: the org a page shows and the API key its demo backend acts with."""

from django.db.models import Q
from django.utils import timezone

from config.exceptions import NotFound
from identity.models import ApiKey, Organization


def organization_for_playground(*, slug: str) -> Organization:
    """The org named by `?org=<slug>`; unknown is a 404."""
    org = Organization.objects.filter(slug=slug).first()
    if org is None:
        raise NotFound()
    return org


def demo_api_key_for_org(*, org: Organization) -> ApiKey | None:
    """The newest usable key of `org` with `widget:authenticate`, or None.

    Scopes are filtered in Python: SQLite has no JSON `contains`, and an org has a handful of keys.
    """
    usable = ApiKey.objects.filter(org=org, revoked_at__isnull=True).filter(
        Q(expires_at__isnull=True) | Q(expires_at__gt=timezone.now())
    )
    for api_key in usable.order_by("-created_at", "-pk"):
        if ApiKey.Scope.WIDGET_AUTHENTICATE in api_key.scopes:
            return api_key
    return None
