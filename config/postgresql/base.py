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
"""

import select

from django.db.backends.postgresql import base


class DatabaseWrapper(base.DatabaseWrapper):
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
