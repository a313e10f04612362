"""Rate limits kept in the shared cache, keyed by the client IP of config.http."""

from rest_framework.throttling import SimpleRateThrottle

from config.http import client_ip


class ClientIpRateThrottle(SimpleRateThrottle):
    """A per-client-IP rate; subclasses name the scope whose rate the settings give."""

    def get_cache_key(self, request, view):
        return self.cache_format % {"scope": self.scope, "ident": client_ip(request)}


class AgentSignInIpThrottle(ClientIpRateThrottle):
    scope = "agent_signin_ip"
