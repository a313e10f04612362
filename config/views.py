"""Liveness and readiness probes."""

from django.core.cache import cache
from django.db import DatabaseError, connection
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response

from config.api import APIView
from config.exceptions import CACHE_ERRORS

READYZ_CACHE_KEY = "readyz:probe"

_STATUS = inline_serializer("HealthStatus", {"status": serializers.CharField()})


class HealthzView(APIView):
    """The process is up; touches nothing else."""

    authentication_classes: list = []
    permission_classes: list = []

    @extend_schema(responses={200: _STATUS}, tags=["health"])
    def get(self, request):
        return Response({"status": "ok"})


class ReadyzView(APIView):
    """Ready to serve: the database and the shared cache answer.

    Throttles, lockouts and token replay checks need the cache (Redis in production), and without
    it those routes answer 503; a load balancer should stop sending traffic here either way.
    """

    authentication_classes: list = []
    permission_classes: list = []

    @extend_schema(responses={200: _STATUS, 503: _STATUS}, tags=["health"])
    def get(self, request):
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")
        except DatabaseError:
            return Response({"status": "database unavailable"}, status=503)
        try:
            # A write: a full (noeviction) or read-only Redis still answers reads, and would keep
            # this server in rotation while every sign-in fails.
            cache.set(READYZ_CACHE_KEY, 1, timeout=5)
        except CACHE_ERRORS:
            return Response({"status": "cache unavailable"}, status=503)
        return Response({"status": "ok"})
