"""Org scoping for the Django admin: every member sees only their orgs, operators manage them.

Members are staff without Django model permissions; what they may do comes from their
memberships alone, read once per request. A superuser acts as an owner of every org.
"""

from django.contrib import admin

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
        if self.value():
            return queryset.filter(**{self.model_admin_lookup: self.value()})
        return queryset

    def __init__(self, request, params, model, model_admin):
        self.model_admin_lookup = model_admin.org_lookup
        super().__init__(request, params, model, model_admin)


class OrgScopedAdminMixin:
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
