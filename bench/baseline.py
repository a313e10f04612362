"""The bare DRF route bench/run.py measures every hot route against (CHATSHIELD_BENCH_BASELINE=1).

It runs through the same middleware and DRF dispatch as the real routes but does no
authentication, throttling, parsing or database work, so `route req/s / baseline req/s` is the
share of the framework's throughput a route keeps.
"""

from django.urls import path
from rest_framework.response import Response
from rest_framework.views import APIView


class BaselineView(APIView):
    authentication_classes: list = []
    permission_classes: list = []
    throttle_classes: list = []
    parser_classes: list = []

    def get(self, request):
        return Response({"ok": True})


urlpatterns = [path("bench/baseline", BaselineView.as_view(), name="bench-baseline")]
