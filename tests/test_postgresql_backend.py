"""The health check of persistent PostgreSQL connections (config/postgresql/base.py).

Django pings a persistent connection with `SELECT 1` before each request's first query; ours
asks the socket first and pings only when the server has written something since its last
reply, as it does when it closes a connection.
"""

import os
import resource
import select
import socket

import pytest
from django.core.signals import request_started
from django.db import close_old_connections, connection, connections
from django.db.backends.postgresql import base as django_postgresql

from config.postgresql.base import _readable
from contacts.models import Contact
from tests.factories import DeviceFactory


@pytest.fixture
def postgresql():
    if connection.vendor != "postgresql":
        pytest.skip("the health check of persistent PostgreSQL connections")
    assert connection.settings_dict["CONN_HEALTH_CHECKS"]
    yield
    connection.close()


@pytest.fixture
def pings(postgresql, monkeypatch) -> list[bool]:
    """Each `SELECT 1` the health check sends, with its answer."""
    sent: list[bool] = []
    ping = django_postgresql.DatabaseWrapper.is_usable

    def counted(wrapper):
        sent.append(ping(wrapper))
        return sent[-1]

    monkeypatch.setattr(django_postgresql.DatabaseWrapper, "is_usable", counted)
    return sent


def request_start() -> None:
    """What Django's handler does when a request comes in (the test client skips it)."""
    request_started.connect(close_old_connections)
    try:
        request_started.send(sender=None)
    finally:
        request_started.disconnect(close_old_connections)


def other_connection_run(sql: str, params: list) -> None:
    other = connections["default"].__class__(connection.settings_dict, alias="other")
    try:
        with other.cursor() as cursor:
            cursor.execute(sql, params)
    finally:
        other.close()


def backend_pid() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


@pytest.mark.django_db(transaction=True)
def test_a_healthy_idle_connection_serves_the_next_request_without_a_ping(pings):
    device = DeviceFactory()
    pid = backend_pid()

    # when: a request comes in on the persistent connection and queries
    request_start()
    assert Contact.objects.filter(pk=device.contact_id).exists()

    # then: it was checked (once) but nothing was sent to the server for it
    assert connection.health_check_done
    assert pings == []
    assert backend_pid() == pid


@pytest.mark.django_db(transaction=True)
def test_a_connection_the_server_closed_is_replaced_before_the_request_queries(pings):
    device = DeviceFactory()
    pid = backend_pid()

    # when: the server ends the connection between requests (a restart or an admin's kill)
    other_connection_run("SELECT pg_terminate_backend(%s, 5000)", [pid])
    request_start()

    # then: the request's first query runs on a new connection instead of failing
    assert Contact.objects.filter(pk=device.contact_id).exists()
    assert pings == [False]
    assert backend_pid() != pid


@pytest.mark.django_db(transaction=True)
def test_anything_else_the_server_sent_gets_the_ping(pings):
    # given: something unread on a live connection (a notification it listens to)
    with connection.cursor() as cursor:
        cursor.execute("LISTEN chatshield_test")
    pid = backend_pid()
    other_connection_run("NOTIFY chatshield_test", [])
    assert select.select([connection.connection.fileno()], [], [], 5)[0], "no notification came"

    # when
    request_start()
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")

    # then: Django's ping decided, and kept the connection
    assert pings == [True]
    assert backend_pid() == pid


@pytest.fixture
def high_descriptor_limit():
    """Allow descriptors past select()'s FD_SETSIZE (1024), as a busy server may have."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 2100:
        pytest.skip(f"the hard limit on open files is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 2100), hard))
    yield 2048
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_a_socket_past_selects_descriptor_limit_is_still_read(high_descriptor_limit):
    ours, server = socket.socketpair()
    fd = os.dup2(ours.fileno(), high_descriptor_limit)
    try:
        assert not _readable(fd)
        server.send(b"E")  # the server writes: an error message, a notification
        assert _readable(fd)
        ours.recv(1)
        server.close()  # the server hangs up
        assert _readable(fd)
    finally:
        os.close(fd)
        ours.close()
