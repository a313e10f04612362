"""Org-scoped access for /api/v1/orgs/{org}/…: agents by membership, integrations by API key."""

from dataclasses import dataclass

from rest_framework.permissions import BasePermission

from config.api import GenericViewSet
from config.exceptions import Forbidden, NotFound, Unauthenticated
from identity.api.authentication import AgentJWTAuthentication, ApiKeyAuthentication
from identity.models import Membership, Organization, User
from identity.selectors import ApiKeyPrincipal, membership_for


@dataclass(frozen=True)
class OrgAccess:
    """Who is acting on which org: an agent (with a membership) or an API key."""

    org: Organization
    user: User | None = None
    membership: Membership | None = None
    api_key_principal: ApiKeyPrincipal | None = None

    @property
    def is_operator(self) -> bool:
        return self.membership is not None and self.membership.is_operator


def org_access_resolve(
    *, principal, org_id, scope: str | None, operator_only: bool, method_allowed: bool = True
) -> OrgAccess:
    """Check the caller may act on `org_id`. Another org is a 404; a missing scope or role a 403.

    API keys never reach operator routes: keys cannot mint keys or secrets. A method the route
    does not have (`method_allowed` false) needs no scope: the answer is the 405 agents get too,
    not a 403 that would send the integrator looking for a scope no key can hold.
    """
    if isinstance(principal, ApiKeyPrincipal):
        if str(principal.org.pk) != str(org_id):
            raise NotFound()
        scope_missing = scope is None or not principal.has_scope(scope)
        if operator_only or (method_allowed and scope_missing):
            raise Forbidden()
        return OrgAccess(org=principal.org, api_key_principal=principal)
    if isinstance(principal, User) and principal.is_authenticated:
        membership = membership_for(user=principal, org_id=org_id)
        if operator_only and not membership.is_operator:
            raise Forbidden()
        return OrgAccess(org=membership.org, user=principal, membership=membership)
    raise Unauthenticated()


class OrgScopedViewSet(GenericViewSet):
    """Base for every /api/v1/orgs/{org}/… viewset; `self.access` is set before the action runs.

    `required_scopes` maps an action to the API-key scope it needs (actions absent from it are not
    open to API keys); `operator_only` restricts the whole viewset to owners and admins.
    """

    authentication_classes = [ApiKeyAuthentication, AgentJWTAuthentication]
    permission_classes: list = []
    required_scopes: dict[str, str] = {}
    operator_only = False
    access: OrgAccess

    def check_permissions(self, request):
        # DRF's permission step: after authentication, before the body is read
        # (config.api.StrictViewMixin), so another org's object is a 404 whatever the body.
        super().check_permissions(request)
        self.access = org_access_resolve(
            principal=request.user,
            org_id=self.kwargs["org_id"],
            scope=self.required_scopes.get(self.action),
            operator_only=self.operator_only,
            # DRF leaves `action` unset for a method the viewset has no handler for, and names
            # OPTIONS "metadata", which we do not serve (DEFAULT_METADATA_CLASS is None).
            method_allowed=self.action not in (None, "metadata"),
        )
        # For the access log (config.request_id): the org this request was let act on, even
        # when the action then answers 4xx (an unknown contact, a bad filter).
        request._request.org_access_granted = str(self.access.org.pk)


def api_key_scope_require(principal, scope: str) -> ApiKeyPrincipal:
    """For routes outside /orgs/{org}: the caller must be an API key holding `scope`."""
    if not isinstance(principal, ApiKeyPrincipal):
        raise Unauthenticated()
    if not principal.has_scope(scope):
        raise Forbidden()
    return principal


class ApiKeyScopePermission(BasePermission):
    """api_key_scope_require as the view's permission step, for `view.required_scope`: so a
    caller who may not use the route is answered 401 or 403 before its body is read
    (config.api parses the body after permissions and throttles)."""

    def has_permission(self, request, view) -> bool:
        api_key_scope_require(request.user, view.required_scope)
        return True
