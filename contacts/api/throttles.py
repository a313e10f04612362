"""Rate limits on minting browser identities, per client IP and per widget token."""

from config.exceptions import NotFound
from identity.api.throttles import ClientIpRateThrottle, WindowRateThrottle
from identity.selectors import organization_by_public_id


class AnonymousMintIpThrottle(ClientIpRateThrottle):
    scope = "anonymous_mint_ip"


class AnonymousMintWidgetThrottle(WindowRateThrottle):
    scope = "anonymous_mint_widget"

    def get_cache_key(self, request, view):
        token = request.META.get("HTTP_X_WIDGET_TOKEN", "")[:64]
        return self.cache_format % {"scope": self.scope, "ident": token}


class AnonymousMintProjectThrottle(AnonymousMintWidgetThrottle):
    """Tiledesk's signinAnonymously names its org by `id_project`, not by widget token: the same
    per-widget budget, counted on the org's widget token, so the two routes share it."""

    def get_cache_key(self, request, view):
        data = request.data
        project = data.get("id_project") if isinstance(data, dict) else None
        if not isinstance(project, str):
            return None  # the view answers it (400 or 404); nothing is minted
        try:
            org = organization_by_public_id(org_id=project)
        except NotFound:
            return None
        return self.cache_format % {"scope": self.scope, "ident": org.widget_token}


class AuthenticateUserKeyThrottle(WindowRateThrottle):
    """Per API key: one runaway backend cannot starve the org's other integrations."""

    scope = "authenticate_user_key"

    def get_cache_key(self, request, view):
        principal = request.user
        ident = getattr(getattr(principal, "api_key", None), "public_id", None)
        return self.cache_format % {"scope": self.scope, "ident": ident} if ident else None


class CustomTokenIpThrottle(ClientIpRateThrottle):
    scope = "custom_token"
