"""Reads for the contacts app: the widget principals and agents' contact lists, scoped to an org."""

from dataclasses import dataclass

from django.conf import settings
from django.db.models import Q, QuerySet

from config.emails import email_normalize
from config.exceptions import NotFound, Unauthenticated
from config.ids import uuid_or_none
from config.pagination import keyset_page
from config.precompiled import CompiledQuery, ModelRow
from contacts.models import Contact, Device
from identity.models import Organization
from identity.selectors import organization_by_public_id, organization_for_widget_token
from identity.tokens import (
    ContactClaims,
    InvalidTokenError,
    contact_token_decode,
    contact_token_org_id_unverified,
)


@dataclass(frozen=True)
class WidgetPrincipal:
    """A browser that presented a valid widget token: it identifies the org, never a person."""

    org: Organization
    is_authenticated: bool = True


@dataclass(frozen=True)
class ContactPrincipal:
    """A visitor holding a valid contact token: one contact on one device of one org."""

    org: Organization
    contact: Contact
    device: Device
    claims: ContactClaims
    is_authenticated: bool = True

    @property
    def trust(self) -> str:
        return self.contact.trust

    @property
    def is_verified(self) -> bool:
        return self.contact.trust == Contact.Trust.VERIFIED


def widget_principal(*, widget_token: str) -> WidgetPrincipal:
    org = organization_for_widget_token(widget_token=widget_token)
    if org is None:
        raise Unauthenticated()
    return WidgetPrincipal(org=org)


def contact_token_keys() -> list[str]:
    return [settings.CONTACT_TOKEN_KEY, settings.CONTACT_TOKEN_PREVIOUS_KEY]


# Every contact-token request makes this lookup, so it is compiled once (see config.precompiled).
_PRINCIPAL_ROW = ModelRow(
    'SELECT {columns} FROM "contacts_device" d JOIN "contacts_contact" c ON c."id" = d."contact_id"'
    ' WHERE d."id" = %s AND d."org_id" = %s AND d."contact_id" = %s'
    ' AND d."revoked_at" IS NULL AND c."erased_at" IS NULL',
    models=[(Device, "d"), (Contact, "c")],
    params=[Device._meta.pk, Device._meta.get_field("org"), Device._meta.get_field("contact")],
)

_DEVICE_CONTACT = Device._meta.get_field("contact")


def contact_principal(*, org: Organization, token: str) -> ContactPrincipal:
    """Verify a contact token for `org` and load its device and contact in one query.

    Forged, expired, other-org, wrong-kind tokens and revoked devices all raise the uniform 401.
    """
    try:
        claims = contact_token_decode(
            token, keys=contact_token_keys(), issuer=settings.PUBLIC_URL, org_id=str(org.pk)
        )
    except InvalidTokenError as exc:
        raise Unauthenticated() from exc
    device = None
    if ids := claims.row_ids:
        row = _PRINCIPAL_ROW.fetch(ids[0], org.pk, ids[1])
        if row is not None:
            device, contact = row
            # The join matched the device's contact_id: cached as select_related caches it.
            _DEVICE_CONTACT.set_cached_value(device, contact)
    # A token's trust must match the contact's: a verified contact never rides on a browser token.
    if device is None or (claims.trust == Contact.Trust.VERIFIED) != device.contact.is_verified:
        raise Unauthenticated()
    return ContactPrincipal(org=org, contact=device.contact, device=device, claims=claims)


def contact_principal_of_own_token(*, token: str) -> ContactPrincipal | None:
    """The principal of one of our own contact tokens, of whichever org it names; None when the
    token does not claim to be one of ours. A token that claims to be ours and fails any check
    (`contact_principal`'s) is the uniform 401.
    """
    org_id = contact_token_org_id_unverified(token)
    if org_id is None:
        return None
    try:
        org = organization_by_public_id(org_id=org_id)
    except NotFound as exc:  # malformed or unknown: the token's own problem, the uniform 401
        raise Unauthenticated() from exc
    return contact_principal(org=org, token=token)


def device_for_reuse(*, org: Organization, token: str | None) -> Device | None:
    """The device of a still-valid contact token of `org`, for same-browser reuse.

    An absent, expired, revoked or foreign token is not an error here: the browser simply gets a
    fresh identity, as it would on its first visit.
    """
    if not token:
        return None
    try:
        return contact_principal(org=org, token=token).device
    except Unauthenticated:
        return None


def contacts_for_org(
    *, org: Organization, trust: str | None = None, search: str | None = None
) -> QuerySet[Contact]:
    """An org's contacts for agents, most recently seen first, optionally by trust and search.

    `search` matches the name (contains, any case), the email (prefix; emails are stored
    lower-cased) or the customer's `user_id` (exact). On PostgreSQL each branch has an index, so
    a selective search is a BitmapOr of three small scans rather than a walk through the org's
    contacts (a broad one still walks them newest first, and stops at once): the trigram index
    on UPPER(name), the email pattern index and, for `user_id`, the verified contacts' partial
    unique index. Only verified contacts ever hold a `user_id` (the
    `contact_unverified_has_no_trusted_fields` constraint), so naming the trust changes nothing.
    """
    contacts = Contact.objects.filter(org=org)
    if trust:
        contacts = contacts.filter(trust=trust)
    if search:
        contacts = contacts.filter(
            Q(name__icontains=search)
            # A whole address is compared as stored (`xn--` or full-width spellings included).
            | Q(email__startswith=email_normalize(search) if "@" in search else search.lower())
            | Q(user_id=search, trust=Contact.Trust.VERIFIED)
        )
    return contacts.order_by("-last_seen_at", "-pk")


CONTACT_LIST_ORDERING = "last_seen_at"

# What an item of the agents' contact list shows (contacts.api.agents'
# ContactListItemOutputSerializer, which a test holds to this list); the JSON columns stay in the
# database.
CONTACT_LIST_FIELDS = (
    "id",
    "trust",
    "name",
    "email",
    "user_id",
    "verified_at",
    "first_seen_at",
    "last_seen_at",
)


def _contacts_page_query(
    *, org, trust: str | None, search: str | None, position: tuple | None, limit: int
) -> QuerySet[Contact]:
    return keyset_page(
        contacts_for_org(org=org, trust=trust, search=search).only(*CONTACT_LIST_FIELDS),
        ordering_field=CONTACT_LIST_ORDERING,
        position=position,
        limit=limit,
    )


_CONTACTS_PAGE = CompiledQuery(
    lambda *, org, trust, after_at, after_pk, limit: _contacts_page_query(
        org=org,
        trust=trust,
        search=None,
        position=(after_at, after_pk) if after_at else None,
        limit=limit,
    ),
    params={
        "org": Contact._meta.get_field("org"),
        "after_at": Contact._meta.get_field(CONTACT_LIST_ORDERING),
        "after_pk": Contact._meta.pk,
    },
    # Not prepared: a plan made without the org's id would guess every org's size alike, and a
    # large org's first page must walk its index newest first and stop, never sort the org.
)


def contacts_page(
    *,
    org: Organization,
    trust: str | None = None,
    search: str | None = None,
    position: tuple | None,
    limit: int,
) -> list[Contact]:
    """A page of `contacts_for_org`, loading only the columns a list item shows.

    At most `limit` contacts after the keyset `position` (`last_seen_at`, pk) when one is given.
    Unsearched pages (each trust filter is its own shape) are built and compiled by the ORM once
    (config.precompiled.CompiledQuery); a search runs through the ORM each time, since
    CompiledQuery does not take its pattern lookups.
    """
    if search:
        return list(
            _contacts_page_query(
                org=org, trust=trust, search=search, position=position, limit=limit
            )
        )
    after_at, after_pk = position or (None, None)
    return _CONTACTS_PAGE.run(
        org=org, trust=trust or None, after_at=after_at, after_pk=after_pk, limit=limit
    )


def contact_for_org(*, org: Organization, contact_id) -> Contact:
    """One contact of `org`; unknown, malformed and other orgs' ids are all a 404."""
    pk = uuid_or_none(contact_id)
    contact = Contact.objects.filter(org=org, pk=pk).first() if pk else None
    if contact is None:
        raise NotFound()
    return contact
