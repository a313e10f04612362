"""A sign-in's own write commits without waiting for the WAL flush; nothing else does.

PostgreSQL's `synchronous_commit = off`, set by the statement itself for its own transaction
(config.precompiled). Losing such a commit in a database crash leaves a token whose device does
not exist, which is refused: it signs a visitor out, never in (docs/decisions.md).
"""

from contextlib import contextmanager

import pytest
from django.db import connection, transaction
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from config.precompiled import InsertAndUpdate, RowsInsert, RowVersion
from contacts import services
from contacts.models import Contact, Device
from tests.factories import VerifiedContactFactory

ASYNCHRONOUS = "set_config('synchronous_commit', 'off', true)"

NEW_IDENTITY = RowsInsert(Contact, Device, asynchronous_commit=True)
SIGN_IN = InsertAndUpdate(Device, update=Contact, fields=["name"], asynchronous_commit=True)


@contextmanager
def statements_run():
    """The SQL of every statement run inside, in order."""
    with CaptureQueriesContext(connection) as captured:
        seen: list[str] = []
        yield seen
    seen.extend(query["sql"] for query in captured.captured_queries)


def synchronous_commit() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SHOW synchronous_commit")
        return cursor.fetchone()[0]


def new_identity(org) -> tuple[Contact, Device]:
    contact = Contact(org=org, trust=Contact.Trust.VERIFIED, email="a@example.com")
    return contact, Device(org=org, contact=contact, user_agent="UA/1")


def verified_sign_in(org, *, email="ann@example.com", user_id="u-1") -> services.IssuedToken:
    return services.contact_verified_sign_in(
        org=org,
        profile=services.VerifiedProfile(email=email, user_id=user_id, name="Ann"),
        proof=services.VerifiedProof(method=services.AuthMethod.API_KEY, key_id="csk_test"),
        user_agent="UA/1",
    )


# --- what PostgreSQL does with the statement ---------------------------------------------------


@pytest.fixture
def as_own_transaction(monkeypatch):
    """Run the statements as they run outside any transaction, inside the test's: so that the
    setting they leave can be read before that transaction ends."""
    for statement in (NEW_IDENTITY, SIGN_IN):
        monkeypatch.setattr(statement, "_commits_asynchronously", lambda connection: True)


@pytest.mark.postgres_only(reason="asynchronous commit is PostgreSQL's")
@pytest.mark.django_db
def test_the_asynchronous_insert_turns_the_flush_off_for_the_transaction_it_runs_in(
    org, as_own_transaction
):
    contact, device = new_identity(org)
    assert synchronous_commit() == "on"

    # when
    NEW_IDENTITY.insert(contact, device)

    # then: PostgreSQL evaluated the setting, and the rows are there
    assert synchronous_commit() == "off"
    assert Device.objects.get(pk=device.pk).contact_id == contact.pk


@pytest.mark.postgres_only(reason="asynchronous commit is PostgreSQL's")
@pytest.mark.django_db
def test_the_asynchronous_guarded_write_turns_the_flush_off_only_when_it_writes(
    org, as_own_transaction
):
    contact = VerifiedContactFactory(org=org)
    contact.name = "New"

    def run(version: str) -> bool:
        device = Device(org=org, contact=contact, user_agent="UA/2")
        return SIGN_IN.run_if_unchanged(device, contact, version=version)

    # when: the row changed since it was read: nothing written, nothing set
    assert run("1") is False
    assert synchronous_commit() == "on"

    # when: unchanged
    assert run(Contact.objects.annotate(v=RowVersion()).get(pk=contact.pk).v) is True

    # then
    assert synchronous_commit() == "off"
    assert Contact.objects.get(pk=contact.pk).name == "New"


@pytest.mark.postgres_only(reason="asynchronous commit is PostgreSQL's")
@pytest.mark.django_db(transaction=True)
def test_the_connection_commits_synchronously_again_after_an_asynchronous_statement(org):
    contact, device = new_identity(org)

    with statements_run() as seen:
        NEW_IDENTITY.insert(contact, device)

    assert ASYNCHRONOUS in seen[-1]
    assert synchronous_commit() == "on"
    assert Device.objects.filter(pk=device.pk, contact=contact).exists()


# --- which writes use it -----------------------------------------------------------------------


@pytest.mark.postgres_only(reason="asynchronous commit is PostgreSQL's")
@pytest.mark.django_db(transaction=True)
def test_each_sign_in_write_commits_asynchronously_as_its_own_transaction(org):
    # when: a first visit, a first verified sign-in, and the same customer again
    with statements_run() as first_visit:
        services.contact_unverified_sign_in(
            org=org, current_device=None, name=None, email=None, custom_data=None,
            method=services.AuthMethod.ANONYMOUS,
        )  # fmt: skip
    with statements_run() as first_sign_in:
        verified_sign_in(org)
    with statements_run() as known_sign_in:
        issued = verified_sign_in(org)

    # then: each one's write is asynchronous, and everything was written
    for seen in (first_visit, first_sign_in, known_sign_in):
        assert [ASYNCHRONOUS in sql for sql in seen].count(True) == 1, seen
        assert ASYNCHRONOUS in seen[-1]
    assert Device.objects.filter(contact=issued.contact).count() == 2
    assert synchronous_commit() == "on"


@pytest.mark.postgres_only(reason="asynchronous commit is PostgreSQL's")
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "around",
    [
        pytest.param(
            lambda: override_settings(DATABASE_ASYNCHRONOUS_COMMIT=False), id="setting off"
        ),
        # The caller's other writes share its commit: they keep the flush.
        pytest.param(transaction.atomic, id="inside a transaction"),
    ],
)
def test_sign_ins_commit_synchronously(org, around):
    with around(), statements_run() as seen:
        verified_sign_in(org)
        verified_sign_in(org)

    assert not any(ASYNCHRONOUS in sql for sql in seen)
    assert Contact.objects.get(user_id="u-1").devices.count() == 2


@pytest.mark.django_db(transaction=True)
def test_messages_and_logouts_always_wait_for_the_flush(org):
    # given: a signed-in customer's browser
    issued = verified_sign_in(org)
    browser = APIClient(
        HTTP_X_WIDGET_TOKEN=org.widget_token, HTTP_AUTHORIZATION=f"Bearer {issued.token}"
    )

    # when: what they said, and their logout
    with statements_run() as seen:
        opened = browser.post("/widget/sessions", {}, format="json")
        url = f"/widget/sessions/{opened.json()['id']}/messages"
        posted = browser.post(url, {"text": "Where is my order?"}, format="json")
        logged_out = browser.post("/widget/logout")

    # then
    assert (opened.status_code, posted.status_code, logged_out.status_code) == (201, 201, 204)
    assert len(seen) >= 3
    assert not any(ASYNCHRONOUS in sql for sql in seen)
    assert Device.objects.get(pk=issued.device.pk).revoked_at is not None
