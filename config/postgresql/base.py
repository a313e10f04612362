"""Django's PostgreSQL backend, with a health check that costs no round trip when it can.

With `CONN_HEALTH_CHECKS`, Django checks a persistent connection before each request's first
query by sending `SELECT 1` (`is_usable`): one round trip on every request, the biggest share of
a cheap route's database time (docs/PERFORMANCE.md). A PostgreSQL server that closes a
connection (restart, shutdown, `pg_terminate_backend`, `idle_session_timeout`) first writes an
error message to it, or the kernel marks it closed, and either makes its socket readable. Between
requests nothing else is pending on our connections: every reply has been read in full, and the
app never LISTENs. So a socket with nothing to read belongs to a connection the server has not
closed, and is usable without asking; a readable one gets Django's `SELECT 1`, which tells a
closed connection from anything else. What neither check can see (a peer that vanished without
a word) fails the request's first query as it would have failed the `SELECT 1`.

Timestamps are read by `UtcTimestamptzLoader` (below) when the connection's time zone is UTC.
"""

import select
from datetime import UTC, datetime

from django.db.backends.postgresql import base
from django.db.backends.postgresql.psycopg_any import BaseTzLoader


class UtcTimestamptzLoader(BaseTzLoader):
    """Django's timestamptz loader for a UTC connection, parsing in C.

    Django reads every timestamptz through a subclass of psycopg's pure-Python loader (to attach
    its own tzinfo), which costs about 5 us a value here: a history page holds dozens. A UTC
    session sends `2026-11-30 01:02:03.123456+00`, which `datetime.fromisoformat` parses in
    about 0.5 us into a datetime whose tzinfo is `UTC`, the value Django's loader returns. Anything
    else (another offset, a year past 9999, BC, infinity, a non-ISO DateStyle) goes to Django's
    loader, so every value comes out as it did before, or fails as it did before.
    """

    timezone = UTC

    def load(self, data):
        try:
            value = datetime.fromisoformat(bytes(data).decode())
        except ValueError:
            return super().load(data)
        if value.tzinfo is not UTC:
            return super().load(data)
        return value


class DatabaseWrapper(base.DatabaseWrapper):
    def get_connection_params(self):
        params = super().get_connection_params()
        if self.timezone is UTC:
            params["context"].register_loader("timestamptz", UtcTimestamptzLoader)
        return params

    def is_usable(self) -> bool:
        raw = self.connection
        if raw is None or raw.closed:
            return False
        try:
            readable = _readable(raw.fileno())
        except (OSError, ValueError):
            readable = True
        return not readable or super().is_usable()


def _readable(fd: int) -> bool:
    """Whether `fd` has something to read (or is closed), without waiting."""
    if hasattr(select, "poll"):  # no FD_SETSIZE limit, unlike select()
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        return bool(poller.poll(0))
    return bool(select.select([fd], [], [], 0)[0])
