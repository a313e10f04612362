"""Rate limits on minting browser identities, per client IP and per widget token."""

from identity.api.throttles import ClientIpRateThrottle, WindowRateThrottle


class AnonymousMintIpThrottle(ClientIpRateThrottle):
    scope = "anonymous_mint_ip"


class AnonymousMintWidgetThrottle(WindowRateThrottle):
    scope = "anonymous_mint_widget"

    def get_cache_key(self, request, view):
        token = request.META.get("HTTP_X_WIDGET_TOKEN", "")[:64]
        return self.cache_format % {"scope": self.scope, "ident": token}


class AuthenticateUserKeyThrottle(WindowRateThrottle):
    """Per API key: one runaway backend cannot starve the org's other integrations."""

    scope = "authenticate_user_key"

    def get_cache_key(self, request, view):
        principal = request.user
        ident = getattr(getattr(principal, "api_key", None), "public_id", None)
        return self.cache_format % {"scope": self.scope, "ident": ident} if ident else None


class CustomTokenIpThrottle(ClientIpRateThrottle):
    scope = "custom_token"
