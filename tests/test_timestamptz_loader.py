"""Timestamps read from PostgreSQL come out exactly as Django's own loader gives them.

`config.postgresql.base.UtcTimestamptzLoader` parses a UTC session's timestamps in C and hands
everything else to Django's loader; these tests hold it to Django's results, value and tzinfo.
"""

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.db.backends.postgresql.psycopg_any import BaseTzLoader
from psycopg.postgres import types
from psycopg.pq import Format

from config.postgresql.base import UtcTimestamptzLoader
from contacts.models import Contact
from tests.factories import DeviceFactory

TIMESTAMPTZ_OID = types["timestamptz"].oid


class DjangoUtcLoader(BaseTzLoader):
    """What Django registers for a UTC connection (`psycopg_any.register_tzloader`)."""

    timezone = UTC


def outcome(loader_class, text: bytes):
    try:
        value = loader_class(TIMESTAMPTZ_OID, None).load(text)
    except Exception as exc:  # the same failure, not merely a failure
        return type(exc), str(exc)
    return value, value.tzinfo


@pytest.mark.parametrize(
    "text",
    [
        b"2026-11-30 01:02:03.123456+00",
        b"2026-11-30 01:02:03.12+00",
        b"2026-11-30 01:02:03+00",
        b"2026-11-30 00:00:00+00",
        b"0001-01-01 00:00:00+00",
        b"9999-12-31 23:59:59.999999+00",
        # another session time zone: Django's loader decides what comes out
        b"2026-11-30 01:02:03.5+05:30",
        b"2026-11-30 01:02:03-08",
        b"1895-01-01 00:00:00+00:19:32",
        # what fromisoformat refuses
        b"10000-01-01 00:00:00+00",
        b"0044-03-15 12:00:00+00 BC",
        b"infinity",
        b"-infinity",
        b"garbage",
    ],
)
def test_every_value_comes_out_as_djangos_loader_gives_it(text):
    assert outcome(UtcTimestamptzLoader, text) == outcome(DjangoUtcLoader, text)


def test_a_memoryview_is_read_like_bytes():
    text = b"2026-11-30 01:02:03.123456+00"

    assert outcome(UtcTimestamptzLoader, memoryview(text)) == outcome(DjangoUtcLoader, text)


LOADER_ONLY = pytest.mark.postgres_only(reason="PostgreSQL's timestamptz loader")


@LOADER_ONLY
@pytest.mark.django_db
def test_postgresql_connections_read_timestamps_with_it():
    connection.ensure_connection()
    loaders = connection.connection.adapters

    assert loaders.get_loader(TIMESTAMPTZ_OID, Format.TEXT) is UtcTimestamptzLoader


@LOADER_ONLY
@pytest.mark.django_db
def test_model_timestamps_round_trip():
    # given
    moments = [
        datetime(2026, 11, 30, 1, 2, 3, 123456, tzinfo=UTC),
        datetime(2026, 11, 30, 1, 2, 3, tzinfo=UTC),
        datetime(1, 1, 1, tzinfo=UTC),
        datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        datetime(2026, 6, 1, 12, tzinfo=UTC) + timedelta(microseconds=1),
    ]
    contacts = []
    for moment in moments:
        contact = DeviceFactory().contact
        Contact.objects.filter(pk=contact.pk).update(last_seen_at=moment)
        contacts.append(contact.pk)

    # when
    read = [Contact.objects.get(pk=pk).last_seen_at for pk in contacts]

    # then
    assert read == moments
    assert all(value.tzinfo is UTC for value in read)
