"""Helpers for tests that race PostgreSQL connections and transactions against each other."""

import threading
import time

from django.db import connection, connections, transaction


def lock_waiters() -> int:
    """How many lock requests of this test's database are waiting right now.

    Only this database's: each pytest-xdist worker has its own, and the other worker's waits
    on the same server were counted too (a CI run saw 2 where this test made 1).
    """
    with connection.cursor() as cursor:
        # A transaction reads pg_stat_activity as of its first look unless told to look again;
        # pg_locks itself is read afresh every time.
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute(
            "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
            " WHERE NOT l.granted AND a.datname = current_database()"
        )
        return cursor.fetchone()[0]


def wait_for_lock_waiters(count: int, timeout: float = 10) -> int:
    """Poll until `count` lock requests wait (or `timeout` passes); the last count seen."""
    deadline = time.monotonic() + timeout
    while (waiting := lock_waiters()) < count and time.monotonic() < deadline:
        time.sleep(0.01)
    return waiting


def committed_elsewhere(sql: str, params: list) -> None:
    """Run `sql` on a connection of its own, committed at once: another app server's write."""

    def write() -> None:
        try:
            with connections["default"].cursor() as cursor:
                cursor.execute(sql, params)
        finally:
            connections["default"].close()

    thread = threading.Thread(target=write)
    thread.start()
    thread.join()


def in_parallel(target, count: int) -> None:
    """Call `target(n)` for n in range(count), each in its own thread with its own connection,
    all released at once by a barrier; return when all are done."""
    barrier = threading.Barrier(count)

    def run(n: int) -> None:
        try:
            barrier.wait()
            target(n)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def in_thread(target) -> tuple[threading.Thread, list]:
    """Start `target()` on a thread and a connection of its own (closed when it ends); its
    outcome, the value it returned or the exception it raised, lands in the returned list."""
    outcome: list = []

    def run() -> None:
        try:
            outcome.append(target())
        except Exception as exc:  # the test asserts on it
            outcome.append(exc)
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


def held_uncommitted(write):
    """Run `write()` in a transaction on its own connection and keep it open, uncommitted, until
    the returned `commit()` is called; `commit()` returns the write's outcome."""
    written, release = threading.Event(), threading.Event()

    def run():
        with transaction.atomic():
            write()
            written.set()
            release.wait(10)

    thread, outcome = in_thread(run)
    assert written.wait(10)

    def commit() -> list:
        release.set()
        thread.join(10)
        return outcome

    return commit
