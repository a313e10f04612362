"""Rate limits kept in the shared cache: one atomic counter per client and window."""

from rest_framework.throttling import SimpleRateThrottle

from config.counters import counter_hit, counters_hit
from config.http import client_ip, client_network


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
        counter = self.counter(request, view)
        if counter is None:
            return True
        key, ttl = counter
        return self.allow(counter_hit(key, ttl=ttl))

    def counter(self, request, view) -> tuple[str, int] | None:
        """This request's window counter as `(key, ttl)`; None when the request is not limited."""
        if self.rate is None:
            return None
        self.key = self.get_cache_key(request, view)
        if self.key is None:
            return None
        self.now = self.timer()
        window_start = int(self.now // self.duration) * self.duration
        self.window_end = window_start + self.duration
        return f"{self.key}:{window_start}", self.duration + 1

    def allow(self, hits: int) -> bool:
        return hits <= self.num_requests

    def wait(self):
        return max(self.window_end - self.now, 1)


class ClientIpRateThrottle(WindowRateThrottle):
    """A per-client-IP rate (an IPv6 client's /64); subclasses name the scope whose rate the
    settings give."""

    def get_cache_key(self, request, view):
        ident = client_network(client_ip(request))
        return self.cache_format % {"scope": self.scope, "ident": ident}


class AgentSignInIpThrottle(ClientIpRateThrottle):
    scope = "agent_signin_ip"


class OneRoundTripThrottlesMixin:
    """For a view with several window throttles: count them all in one round trip to the cache.

    Same outcome as DRF's `check_throttles`, which also asks every throttle (a refused request
    still counts against the others) and waits for the longest.
    """

    def check_throttles(self, request):
        counted, durations = [], []
        for throttle in self.get_throttles():
            if not isinstance(throttle, WindowRateThrottle):
                if not throttle.allow_request(request, self):
                    durations.append(throttle.wait())
            elif (counter := throttle.counter(request, self)) is not None:
                counted.append((throttle, counter))
        hits = counters_hit([counter for _, counter in counted])
        for (throttle, _), count in zip(counted, hits, strict=True):
            if not throttle.allow(count):
                durations.append(throttle.wait())
        if durations:
            self.throttled(request, max((d for d in durations if d is not None), default=None))
