"""Liveness and readiness probes."""

import logging

from django.core.cache import cache
from django.db import DatabaseError, connection
from django.db.migrations.executor import MigrationExecutor
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.response import Response

from config.api import APIView
from config.exceptions import CACHE_ERRORS

READYZ_CACHE_KEY = "readyz:probe"

logger = logging.getLogger(__name__)

_STATUS = inline_serializer("HealthStatus", {"status": serializers.CharField()})


class AnyAccept(BaseContentNegotiation):
    """JSON whatever the client's Accept says: a load balancer's probe that asks for text/plain
    (or anything else) must see the service's state, never a 406 it would read as down."""

    def select_parser(self, request, parsers):
        return parsers[0]

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


class ProbeHeadMixin:
    """HEAD, as load balancers probe, answers the GET's status and headers with no body: gunicorn
    logs a warning for every body sent to a HEAD, which a probe every few seconds makes noise."""

    def head(self, request, *args, **kwargs):
        response = self.get(request, *args, **kwargs)
        response.data = None
        return response


class HealthzView(ProbeHeadMixin, APIView):
    """The process is up; touches nothing else."""

    authentication_classes: list = []
    permission_classes: list = []
    content_negotiation_class = AnyAccept

    @extend_schema(responses={200: _STATUS}, tags=["health"])
    def get(self, request):
        return Response({"status": "ok"})


class ReadyzView(ProbeHeadMixin, APIView):
    """Ready to serve: the database answers and holds this code's schema, and the shared cache
    answers.

    Throttles, lockouts and token replay checks need the cache (Redis in production), and without
    it those routes answer 503; a load balancer should stop sending traffic here either way. An
    empty or behind database (a mistyped `DATABASE_URL`, a deploy whose `migrate` has not run)
    answers `SELECT 1` but cannot serve, so until a process has once found every migration
    applied it checks that too (one look at the migration table; after that only `SELECT 1`).
    Every 503 logs its cause.
    """

    authentication_classes: list = []
    permission_classes: list = []
    content_negotiation_class = AnyAccept
    schema_current = False  # per process: every migration found applied once

    @extend_schema(responses={200: _STATUS, 503: _STATUS}, tags=["health"])
    def get(self, request):
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")
            if not ReadyzView.schema_current:
                pending = migrations_unapplied()
                if pending:
                    logger.warning(
                        "not ready: %d migrations not applied (manage.py migrate)", pending
                    )
                    return Response({"status": "database not migrated"}, status=503)
                ReadyzView.schema_current = True
        except DatabaseError as exc:
            logger.warning("not ready: database unavailable: %s: %s", type(exc).__name__, exc)
            return Response({"status": "database unavailable"}, status=503)
        try:
            # A write: a full (noeviction) or read-only Redis still answers reads, and would keep
            # this server in rotation while every sign-in fails.
            cache.set(READYZ_CACHE_KEY, 1, timeout=5)
        except CACHE_ERRORS as exc:
            logger.warning("not ready: cache unavailable: %s: %s", type(exc).__name__, exc)
            return Response({"status": "cache unavailable"}, status=503)
        return Response({"status": "ok"})


def migrations_unapplied() -> int:
    """How many of this code's migrations the database has not applied."""
    executor = MigrationExecutor(connection)
    return len(executor.migration_plan(executor.loader.graph.leaf_nodes()))
