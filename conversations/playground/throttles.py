"""The demo backend mints verified tokens for anyone who can reach it, so it is limited per IP."""

from rest_framework.settings import api_settings

from identity.api.throttles import ClientIpRateThrottle

DEFAULT_RATE = "30/min"


class DemoBackendIpThrottle(ClientIpRateThrottle):
    scope = "playground_demo_backend"

    def get_rate(self) -> str:
        # A rate in settings wins; the default keeps settings.py free of a demo-only knob.
        return api_settings.DEFAULT_THROTTLE_RATES.get(self.scope, DEFAULT_RATE)
