"""Rate limits kept in the shared cache: one atomic counter per client and window."""

from rest_framework.throttling import SimpleRateThrottle

from config.counters import counter_hit
from config.http import client_ip


class WindowRateThrottle(SimpleRateThrottle):
    """A fixed-window request counter, atomic across app servers.

    DRF's SimpleRateThrottle reads a list of timestamps, appends and writes it back: two round
    trips per request, a list as long as the rate, and concurrent servers overwrite each other's
    hits. Here each request is one increment of the window's counter (see config.counters), so
    every hit counts on every server. A fixed window lets a client spend its allowance at the end of
    one window and again at the start of the next: at most twice the rate over any one window.
    """

    cache_format = "throttle:%(scope)s:%(ident)s"

    def allow_request(self, request, view):
        if self.rate is None:
            return True
        self.key = self.get_cache_key(request, view)
        if self.key is None:
            return True
        self.now = self.timer()
        window_start = int(self.now // self.duration) * self.duration
        self.window_end = window_start + self.duration
        hits = counter_hit(f"{self.key}:{window_start}", ttl=self.duration + 1)
        return hits <= self.num_requests

    def wait(self):
        return max(self.window_end - self.now, 1)


class ClientIpRateThrottle(WindowRateThrottle):
    """A per-client-IP rate; subclasses name the scope whose rate the settings give."""

    def get_cache_key(self, request, view):
        return self.cache_format % {"scope": self.scope, "ident": client_ip(request)}


class AgentSignInIpThrottle(ClientIpRateThrottle):
    scope = "agent_signin_ip"
