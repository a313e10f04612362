"""Reads for the playground: the org a page shows and the API key its demo backend acts with."""

from django.core.validators import slug_re

from config.exceptions import NotFound
from identity.demo import demo_api_key
from identity.models import ApiKey, Organization

SLUG_MAX_LENGTH = Organization._meta.get_field("slug").max_length


def organization_for_playground(*, slug: str) -> Organization:
    """The org named by `?org=<slug>`; unknown is a 404.

    A value that cannot be a slug is unknown without a query: a NUL is not even a value
    PostgreSQL can compare (a DataError, a 500 on a public page).
    """
    if len(slug) > SLUG_MAX_LENGTH or not slug_re.match(slug):
        raise NotFound()
    org = Organization.objects.filter(slug=slug).first()
    if org is None:
        raise NotFound()
    return org


def demo_api_key_for_org(*, org: Organization) -> ApiKey | None:
    """The demo API key `seed_demo` made for `org`, while it can authenticate; else None.

    Only that key: it is derived from the secret key and the org's slug (identity.demo), so an
    org that was never seeded, or whose demo key was revoked or has expired, has none, whatever
    other `widget:authenticate` keys its operators made for their own backends.
    """
    api_key = demo_api_key(org)
    usable = api_key is not None and api_key.is_usable()
    return api_key if usable and ApiKey.Scope.WIDGET_AUTHENTICATE in api_key.scopes else None
