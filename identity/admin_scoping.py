"""Org scoping for the Django admin: every member sees only their orgs, operators manage them.

Members are staff without Django model permissions; what they may do comes from their
memberships alone, read once per request. A superuser acts as an owner of every org. Every
changelist reads only the filters it offers (`OfferedLookupsOnlyMixin`).
"""

import uuid
from datetime import MAXYEAR, date

from django.contrib import admin
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.utils import get_fields_from_path
from django.contrib.admin.views.main import SEARCH_VAR

from identity.models import Membership, Organization

ALL_ROLES = tuple(Membership.Role.values)
OPERATOR_ROLES = tuple(str(role) for role in Membership.OPERATOR_ROLES)


def member_roles(request) -> dict:
    """{org id: role} for the signed-in user, memoized on the request (one query per request)."""
    roles = getattr(request, "_chatshield_member_roles", None)
    if roles is None:
        user = request.user
        roles = {}
        if user.is_authenticated and user.is_active and user.is_staff:
            roles = dict(Membership.objects.filter(user=user).values_list("org_id", "role"))
        request._chatshield_member_roles = roles
    return roles


def org_ids_with_role(request, roles) -> set | None:
    """The org ids where the user holds one of `roles`; None means every org (a superuser)."""
    if request.user.is_active and request.user.is_superuser:
        return None
    return {org_id for org_id, role in member_roles(request).items() if role in roles}


def is_operator_of(request, org_id) -> bool:
    ids = org_ids_with_role(request, OPERATOR_ROLES)
    return ids is None or org_id in ids


class OrgListFilter(admin.SimpleListFilter):
    """Filter by org, offering only the orgs the user belongs to (never every org's name)."""

    title = "organization"
    parameter_name = "org"

    def lookups(self, request, model_admin):
        ids = org_ids_with_role(request, model_admin.view_roles)
        orgs = Organization.objects.order_by("name")
        if ids is not None:
            orgs = orgs.filter(id__in=ids)
        return [(str(org.pk), org.name) for org in orgs]

    def has_output(self):
        # One org needs no filter; listing it would only take room.
        return len(self.lookup_choices) > 1

    def queryset(self, request, queryset):
        if not self.value():
            return queryset
        try:
            org_id = uuid.UUID(self.value())
        except ValueError as exc:
            raise IncorrectLookupParameters(exc) from exc
        return queryset.filter(**{self.model_admin_lookup: org_id})

    def __init__(self, request, params, model, model_admin):
        self.model_admin_lookup = model_admin.org_lookup
        super().__init__(request, params, model, model_admin)


DATE_PARTS = ("year", "month", "day")


def offered_lookups(model_admin, request) -> frozenset[str]:
    """The query-string parameters `model_admin`'s filters and date drill-down read.

    A SimpleListFilter reads its `parameter_name` (its `lookups()` may query, so it is not built);
    a field's filter is built without values and says which parameters it reads, and the field's
    path itself is an equality. Memoized on the request: Django asks once per parameter.
    """
    memo = request.__dict__.setdefault("_chatshield_offered_lookups", {})
    if model_admin in memo:
        return memo[model_admin]
    names = set()
    model = model_admin.model
    for item in model_admin.get_list_filter(request):
        if isinstance(item, type) and issubclass(item, admin.SimpleListFilter):
            names.add(item.parameter_name)
            continue
        if callable(item):
            spec = item(request, {}, model, model_admin)
        else:
            field_path, filter_class = (
                item if isinstance(item, list | tuple) else (item, admin.FieldListFilter.create)
            )
            field = get_fields_from_path(model, field_path)[-1]
            spec = filter_class(field, request, {}, model, model_admin, field_path=field_path)
            names.add(field_path)
        names.update(spec.expected_parameters())
    if model_admin.date_hierarchy:
        names.update(f"{model_admin.date_hierarchy}__{part}" for part in DATE_PARTS)
    memo[model_admin] = frozenset(names)
    return memo[model_admin]


def has_nul(*texts: str) -> bool:
    return any("\x00" in text for text in texts)


def date_drill_down_fits(query, date_field: str) -> bool:
    """Whether `?<field>__year/month/day=` name a day the changelist can turn into a range.

    ASCII digits only (`int` also reads other scripts' digits), a month or day only under a
    year, and a year below 9999: ChangeList adds up to a year to find the end of the range, and a
    date past 9999 does not exist (a ValueError in the middle of the query, a 500).
    """
    year, month, day = (query.get(f"{date_field}__{part}") for part in DATE_PARTS)
    if year is None:
        return month is None and day is None
    given = [value for value in (year, month, day) if value is not None]
    if not all(value.isascii() and value.isdigit() and len(value) <= 4 for value in given):
        return False
    try:
        date(int(year), int(month or 1), int(day or 1))
    except ValueError:
        return False
    return int(year) < MAXYEAR


class OfferedLookupsOnlyMixin:
    """A changelist filters by what it offers, with values the database can take, or not at all.

    Django lets the query string filter on any of the model's own columns with any lookup
    (`?digest__startswith=0`, `?name__regex=[`), and some values fail only once the query runs:
    a NUL on PostgreSQL, an invalid regular expression, a year past 9999. Here the query string
    may name only the parameters of `list_filter` (and a filtered field's own name, an equality:
    `?trust=verified`) and `date_hierarchy`, plus the admin's own `q`, `o`, `p`, `all`, `e`,
    `_popup`, `_to_field` and `_facets`, which Django reads itself; anything else is Django's
    400 (DisallowedModelAdminLookup, rendered as the project's JSON error). A value no
    query can take (a NUL, a date drill-down that is no date, an org id that is no UUID) goes
    back to the list with `?e=1`, as Django does with the values it refuses itself
    (IncorrectLookupParameters), before any query runs. `q` keeps Django's own check, which
    refuses a NUL with a message; the autocomplete's `term` gets no results for one.
    """

    def lookup_allowed(self, lookup, value, request):
        return lookup in offered_lookups(self, request) and super().lookup_allowed(
            lookup, value, request
        )

    def get_changelist_instance(self, request):
        query = request.GET
        if any(has_nul(key, *values) for key, values in query.lists() if key != SEARCH_VAR):
            raise IncorrectLookupParameters("NUL characters are not allowed.")
        if self.date_hierarchy and not date_drill_down_fits(query, self.date_hierarchy):
            raise IncorrectLookupParameters("The date drill-down names no date.")
        return super().get_changelist_instance(request)

    def get_search_results(self, request, queryset, search_term):
        if has_nul(search_term):
            return queryset.none(), False
        return super().get_search_results(request, queryset, search_term)


class OrgScopedAdminMixin(OfferedLookupsOnlyMixin):
    """Scope a ModelAdmin to the signed-in user's orgs and decide its permissions by role.

    `org_lookup` names the field holding the row's org id. Each `*_roles` tuple lists the
    membership roles allowed that action; an empty tuple allows it to nobody, superusers included
    (so contacts stay read-only everywhere: the API alone writes them).
    """

    org_lookup = "org_id"
    view_roles: tuple = ALL_ROLES
    add_roles: tuple = ()
    change_roles: tuple = ()
    delete_roles: tuple = ()

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        ids = org_ids_with_role(request, self.view_roles)
        if ids is None:
            return queryset
        # `org_id IN (…)` rather than a join through memberships: no duplicate rows, one index.
        return queryset.filter(**{f"{self.org_lookup}__in": ids})

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "org":
            ids = org_ids_with_role(request, self.add_roles or self.change_roles)
            orgs = Organization.objects.order_by("name")
            kwargs["queryset"] = orgs if ids is None else orgs.filter(id__in=ids)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def row_org_id(self, obj):
        return getattr(obj, self.org_lookup)

    def _allowed(self, request, roles, obj=None) -> bool:
        if not roles or not (request.user.is_active and request.user.is_staff):
            return False
        ids = org_ids_with_role(request, roles)
        if ids is None:
            return True
        if obj is None:
            return bool(ids)
        return self.row_org_id(obj) in ids

    def has_module_permission(self, request):
        return self._allowed(request, self.view_roles)

    def has_view_permission(self, request, obj=None):
        return self._allowed(request, self.view_roles, obj)

    def has_add_permission(self, request, *args):
        return self._allowed(request, self.add_roles)

    def has_change_permission(self, request, obj=None):
        return self._allowed(request, self.change_roles, obj)

    def has_delete_permission(self, request, obj=None):
        return self._allowed(request, self.delete_roles, obj)
