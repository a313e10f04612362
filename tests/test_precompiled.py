"""config.precompiled: the same instances the ORM would load and write, on SQLite and PostgreSQL."""

import uuid
from datetime import timedelta

import pytest
from django.db import (
    DataError,
    IntegrityError,
    NotSupportedError,
    OperationalError,
    close_old_connections,
    connection,
    connections,
    transaction,
)
from django.db.backends.utils import CursorDebugWrapper
from django.db.models import Model
from django.db.transaction import TransactionManagementError
from django.test.utils import CaptureQueriesContext, isolate_apps

from config import precompiled
from config.precompiled import InsertAndUpdate, RowsInsert, RowVersion, statement_cursor
from contacts.models import Contact, Device
from contacts.selectors import _PRINCIPAL_ROW
from conversations.models import Conversation, Message
from tests.concurrency import committed_elsewhere, in_thread, wait_for_lock_waiters
from tests.contacts.conftest import mint, widget_client
from tests.factories import (
    ConversationFactory,
    DeviceFactory,
    MessageFactory,
    VerifiedContactFactory,
)

pytestmark = pytest.mark.django_db


def field_values(instance: Model) -> dict:
    return {f.attname: getattr(instance, f.attname) for f in instance._meta.concrete_fields}


def test_the_row_loads_what_the_orm_loads_with_every_type_converted():
    # given: a contact with JSON, datetimes, UUIDs and text
    contact = VerifiedContactFactory(
        custom_data={"plan": "gold", "nested": {"n": [1, 2.5, None, True]}},
        non_verified_custom_data={"é": "ü"},
        name="Zoë",
    )
    device = DeviceFactory(contact=contact, org=contact.org, user_agent="UA/1")

    # when
    loaded_device, loaded_contact = _PRINCIPAL_ROW.fetch(device.pk, contact.org_id, contact.pk)

    # then
    assert field_values(loaded_device) == field_values(Device.objects.get(pk=device.pk))
    assert field_values(loaded_contact) == field_values(Contact.objects.get(pk=contact.pk))
    assert isinstance(loaded_contact.pk, uuid.UUID)
    assert loaded_contact.custom_data["nested"] == {"n": [1, 2.5, None, True]}
    assert loaded_contact.verified_at.tzinfo is not None
    assert not loaded_contact._state.adding
    assert loaded_contact._state.db == "default"


def test_no_row_is_none(org):
    assert _PRINCIPAL_ROW.fetch(uuid.uuid4(), org.pk, uuid.uuid4()) is None


def test_a_loaded_instance_saves_like_an_orm_one():
    device = DeviceFactory()
    _loaded_device, loaded_contact = _PRINCIPAL_ROW.fetch(
        device.pk, device.org_id, device.contact_id
    )

    loaded_contact.name = "Renamed"
    loaded_contact.save(update_fields=["name"])

    assert Contact.objects.get(pk=device.contact_id).name == "Renamed"
    assert Contact.objects.count() == 1


def test_a_loaded_instance_is_what_from_db_makes(org):
    # given: the row's values, as from_db (Model.__init__) would receive them
    device = DeviceFactory(org=org, contact__org=org, user_agent="UA/1")
    loaded_device, loaded_contact = _PRINCIPAL_ROW.fetch(device.pk, org.pk, device.contact_id)

    for loaded in (loaded_device, loaded_contact):
        # when: the ORM's own way builds an instance from the same values
        names = [field.attname for field in type(loaded)._meta.concrete_fields]
        made = type(loaded).from_db("default", names, [getattr(loaded, n) for n in names])

        # then: the same attributes, the same state, nothing cached
        assert {k: v for k, v in vars(loaded).items() if k != "_state"} == {
            k: v for k, v in vars(made).items() if k != "_state"
        }
        assert (loaded._state.adding, loaded._state.db) == (made._state.adding, made._state.db)
        assert loaded._state.fields_cache == {}
    assert loaded_device.contact_id == loaded_contact.pk
    assert loaded_contact.org == org  # a foreign key still loads


def test_a_receiver_of_the_init_signals_still_hears_each_loaded_instance(org):
    from django.db.models.signals import post_init, pre_init

    device = DeviceFactory(org=org)
    heard = []

    def listen(sender, **kwargs):
        heard.append(sender)

    pre_init.connect(listen, sender=Contact)
    post_init.connect(listen, sender=Device)
    try:
        _PRINCIPAL_ROW.fetch(device.pk, org.pk, device.contact_id)
    finally:
        pre_init.disconnect(listen, sender=Contact)
        post_init.disconnect(listen, sender=Device)

    assert sorted(model.__name__ for model in heard) == ["Contact", "Device"]


@isolate_apps("contacts")
def test_a_model_that_does_more_when_built_or_set_is_built_by_from_db():
    class Defaults(Contact):
        class Meta:
            proxy = True
            app_label = "contacts"

    class OwnInit(Contact):
        class Meta:
            proxy = True
            app_label = "contacts"

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)

    class InitMixin:
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)

    class MixinAfterTheModel(Contact, InitMixin):  # Model.__init__'s super() runs the mixin's
        class Meta:
            proxy = True
            app_label = "contacts"

    class SetterOnAField(Contact):
        class Meta:
            proxy = True
            app_label = "contacts"

        @property
        def email(self):
            return self.__dict__["email"]

        @email.setter
        def email(self, value):
            self.__dict__["email"] = value.lower()

    assert precompiled._values_set_directly(Contact)
    assert precompiled._values_set_directly(Defaults)
    assert not precompiled._values_set_directly(OwnInit)
    assert not precompiled._values_set_directly(MixinAfterTheModel)
    assert not precompiled._values_set_directly(SetterOnAField)


# --- RowsInsert -------------------------------------------------------------------------------

NEW_IDENTITY = RowsInsert(Contact, Device)


def new_identity(org, **contact_fields) -> tuple[Contact, Device]:
    contact = Contact(org=org, **contact_fields)
    return contact, Device(org=org, contact=contact, user_agent="UA/2")


def test_inserted_rows_read_back_as_the_orm_would_have_written_them(org):
    # given: JSON, datetimes, UUIDs, text and defaults
    contact, device = new_identity(
        org, name="Zoë", non_verified_custom_data={"nested": {"n": [1, 2.5, None, True]}}
    )

    # when
    NEW_IDENTITY.insert(contact, device)

    # then
    assert field_values(Contact.objects.get(pk=contact.pk)) == field_values(contact)
    assert field_values(Device.objects.get(pk=device.pk)) == field_values(device)
    assert not contact._state.adding and contact._state.db == "default"
    assert not device._state.adding


def test_both_rows_are_one_statement_on_postgresql(org, django_assert_num_queries):
    contact, device = new_identity(org)
    # SQLite has no INSERT in a CTE: one INSERT per row inside a savepoint here.
    expected = 1 if connection.vendor == "postgresql" else 4

    with django_assert_num_queries(expected):
        NEW_IDENTITY.insert(contact, device)

    assert Device.objects.get(pk=device.pk).contact_id == contact.pk


@pytest.mark.django_db(transaction=True)
def test_a_failing_row_writes_neither(org):
    # given: a device whose primary key is taken, so its INSERT fails after the contact's
    taken = DeviceFactory(org=org)
    contact, device = new_identity(org)
    device.pk = taken.pk

    # when
    with pytest.raises(IntegrityError):
        NEW_IDENTITY.insert(contact, device)

    # then: outside any transaction, the contact did not land either
    assert not Contact.objects.filter(pk=contact.pk).exists()
    assert Device.objects.count() == 1


def test_an_instance_of_the_wrong_model_or_without_a_key_is_refused(org):
    contact, device = new_identity(org)
    with pytest.raises(ValueError):
        NEW_IDENTITY.insert(device, contact)
    contact.pk = None
    with pytest.raises(ValueError):
        NEW_IDENTITY.insert(contact, device)
    assert not Contact.objects.exists()


# --- InsertAndUpdate -------------------------------------------------------------------------

APPEND = InsertAndUpdate(
    Message, update=Conversation, fields=["last_message_at"], link="last_message"
)
SIGN_IN = InsertAndUpdate(Device, update=Contact, fields=["name", "custom_data", "last_seen_at"])


def new_message(conversation: Conversation, **fields) -> Message:
    return Message(
        org=conversation.org,
        conversation=conversation,
        sender_kind=Message.SenderKind.CONTACT,
        sender_contact=conversation.contact,
        **fields,
    )


@pytest.fixture
def conversation() -> Conversation:
    conversation = ConversationFactory()
    MessageFactory(conversation=conversation)
    return conversation


def test_a_row_with_the_databases_key_and_its_link_read_back_as_the_orm_wrote_them(conversation):
    # given: a message with JSON, text and a datetime, and a later time for the conversation
    message = new_message(
        conversation, body="Zoë ✓", sender_auth_info={"nested": {"n": [1, 2.5, None, True]}}
    )
    conversation.last_message_at = message.created_at + timedelta(seconds=5)

    # when
    with transaction.atomic():
        APPEND.run(message, conversation)

    # then: the message got the database's key, reads back as built, and is linked
    assert isinstance(message.pk, int)
    assert not message._state.adding and message._state.db == "default"
    assert field_values(Message.objects.get(pk=message.pk)) == field_values(message)
    assert conversation.last_message == message
    assert field_values(Conversation.objects.get(pk=conversation.pk)) == field_values(conversation)
    assert Message.objects.filter(conversation=conversation).count() == 2


def test_a_row_with_its_own_key_and_the_updated_fields_read_back_as_the_orm_wrote_them():
    # given: a known contact with new details, and a device of its own (a UUID key)
    contact = DeviceFactory().contact
    contact.name = "Zoë"
    contact.custom_data = {"plan": "gold", "nested": {"n": [1, 2.5, None, True]}}
    contact.last_seen_at = contact.last_seen_at + timedelta(minutes=1)
    contact.email = "not-written@shop.test"  # not one of SIGN_IN's fields
    device = Device(org=contact.org, contact=contact, user_agent="UA/3")
    device_pk = device.pk

    # when
    with transaction.atomic():
        SIGN_IN.run(device, contact)

    # then: only the named fields changed, and the device is as built
    assert device.pk == device_pk
    assert field_values(Device.objects.get(pk=device.pk)) == field_values(device)
    stored = Contact.objects.get(pk=contact.pk)
    assert (stored.name, stored.custom_data) == ("Zoë", contact.custom_data)
    assert stored.last_seen_at == contact.last_seen_at
    assert stored.email != "not-written@shop.test"


def test_the_insert_and_the_update_are_one_statement_on_postgresql(
    conversation, django_assert_num_queries
):
    message = new_message(conversation, body="hi")
    conversation.last_message_at = message.created_at
    # Inside the test's transaction: the INSERT and the UPDATE, or the one statement doing both.
    with django_assert_num_queries(1 if connection.vendor == "postgresql" else 2) as captured:
        APPEND.run(message, conversation)

    assert Conversation.objects.get(pk=conversation.pk).last_message_id == message.pk
    if connection.vendor == "postgresql":
        assert captured.captured_queries[0]["sql"].startswith('WITH "new" AS (INSERT INTO')


def test_a_missing_row_to_update_raises_and_the_rollback_takes_the_insert_with_it(conversation):
    message = new_message(conversation, body="nowhere")
    before = Message.objects.count()
    gone = Conversation.objects.get(pk=conversation.pk)
    gone.pk = uuid.uuid4()

    with pytest.raises(Conversation.DoesNotExist), transaction.atomic():
        APPEND.run(message, gone)

    assert Message.objects.count() == before


@pytest.mark.django_db(transaction=True)
def test_outside_a_transaction_it_refuses_and_writes_nothing(conversation):
    message = new_message(conversation, body="unguarded")

    with pytest.raises(TransactionManagementError):
        APPEND.run(message, conversation)

    assert not Message.objects.filter(body="unguarded").exists()


def test_saved_rows_wrong_models_or_a_wrong_link_are_refused(conversation):
    saved = Message.objects.filter(conversation=conversation).first()
    message = new_message(conversation, body="x")
    with pytest.raises(ValueError), transaction.atomic():
        APPEND.run(saved, conversation)
    with pytest.raises(ValueError), transaction.atomic():
        APPEND.run(message, conversation.contact)
    with pytest.raises(ValueError), transaction.atomic():
        APPEND.run(message, Conversation(org=conversation.org, contact=conversation.contact))
    with pytest.raises(ValueError):
        InsertAndUpdate(Device, update=Conversation, fields=[], link="last_message")
    assert not Message.objects.filter(body="x").exists()


# --- InsertAndUpdate.run_if_unchanged: an optimistic write (PostgreSQL) -----------------------


def read_with_version(contact: Contact) -> Contact:
    return Contact.objects.annotate(row_version=RowVersion()).get(pk=contact.pk)


XMIN_ONLY = pytest.mark.postgres_only(reason="row versions are PostgreSQL's xmin")


@XMIN_ONLY
@pytest.mark.django_db(transaction=True)
def test_an_unchanged_row_is_updated_and_the_new_row_inserted_in_one_autocommit_statement(
    django_assert_num_queries,
):
    # given: a contact read with its version, then new details
    contact = read_with_version(DeviceFactory().contact)
    contact.name = "Zoë"
    contact.custom_data = {"nested": {"n": [1, 2.5, None, True]}}
    device = Device(org=contact.org, contact=contact, user_agent="UA/4")

    # when: in autocommit, one statement
    with django_assert_num_queries(1) as captured:
        written = SIGN_IN.run_if_unchanged(device, contact, version=contact.row_version)

    # then
    assert written
    assert captured.captured_queries[0]["sql"].startswith('WITH "existing" AS (UPDATE')
    assert not device._state.adding
    assert field_values(Device.objects.get(pk=device.pk)) == field_values(device)
    stored = Contact.objects.get(pk=contact.pk)
    assert (stored.name, stored.custom_data) == ("Zoë", contact.custom_data)


@XMIN_ONLY
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("change", ["updated", "deleted"])
def test_a_row_changed_since_it_was_read_writes_neither(change):
    # given: a contact read with its version, then changed by another connection
    contact = read_with_version(DeviceFactory().contact)
    if change == "updated":
        committed_elsewhere(
            'UPDATE "contacts_contact" SET "phone" = %s WHERE "id" = %s', ["+1 555", contact.pk]
        )
    else:
        committed_elsewhere('DELETE FROM "contacts_device" WHERE "contact_id" = %s', [contact.pk])
        committed_elsewhere('DELETE FROM "contacts_contact" WHERE "id" = %s', [contact.pk])
    contact.name = "stale write"
    device = Device(org=contact.org, contact=contact, user_agent="UA/5")

    # when
    written = SIGN_IN.run_if_unchanged(device, contact, version=contact.row_version)

    # then: nothing written, the other connection's change stands
    assert not written
    assert device._state.adding
    assert not Device.objects.filter(pk=device.pk).exists()
    assert not Contact.objects.filter(name="stale write").exists()
    if change == "updated":
        assert Contact.objects.get(pk=contact.pk).phone == "+1 555"


@XMIN_ONLY
@pytest.mark.django_db(transaction=True)
def test_a_row_changed_by_an_open_transaction_is_waited_for_then_refused():
    # given: a contact read with its version, and a new device for it
    contact = read_with_version(DeviceFactory().contact)
    contact.name = "stale write"
    device = Device(org=contact.org, contact=contact, user_agent="UA/6")
    # when: another transaction is changing the row; the write waits on it; it commits
    with transaction.atomic():
        Contact.objects.filter(pk=contact.pk).update(phone="+1 555")
        writer, written = in_thread(
            lambda: SIGN_IN.run_if_unchanged(device, contact, version=contact.row_version)
        )
        assert wait_for_lock_waiters(1) == 1
    writer.join(10)

    # then: the write saw the new version once the lock was free, and wrote nothing
    assert written == [False]
    assert not Device.objects.filter(pk=device.pk).exists()
    assert Contact.objects.get(pk=contact.pk).phone == "+1 555"


def test_run_if_unchanged_refuses_a_link_a_database_key_and_other_databases(conversation):
    message = new_message(conversation, body="x")
    unlinked = InsertAndUpdate(Message, update=Conversation, fields=["last_message_at"])
    for statement in (APPEND, unlinked):  # a link; a key the database assigns
        with pytest.raises(ValueError):
            statement.run_if_unchanged(message, conversation, version="1")
    contact = DeviceFactory().contact
    device = Device(org=contact.org, contact=contact)
    if connection.vendor != "postgresql":
        with pytest.raises(NotSupportedError):
            SIGN_IN.run_if_unchanged(device, contact, version="1")
    assert not Message.objects.filter(body="x").exists()


# --- prepared statements across a migration (PostgreSQL) ------------------------------------


def device_user_agent_type(sql_type: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(f'ALTER TABLE "contacts_device" ALTER COLUMN "user_agent" TYPE {sql_type}')


@pytest.fixture
def widened_user_agent():
    """Change the type of a column the principal lookup returns, as a migration would."""
    yield lambda: device_user_agent_type("varchar(600)")
    device_user_agent_type("varchar(512)")
    connection.close()


@pytest.mark.prepared_statements
@pytest.mark.django_db(transaction=True)
def test_a_prepared_lookup_survives_a_column_type_change(widened_user_agent):
    # given: the principal lookup prepared on this connection
    device = DeviceFactory()
    assert _PRINCIPAL_ROW.fetch(device.pk, device.org_id, device.contact_id) is not None

    # when: a migration changes the type of a column it returns
    widened_user_agent()

    # then: the next lookup still answers (on a new connection), and so does the one after
    for _ in range(2):
        loaded_device, _contact = _PRINCIPAL_ROW.fetch(device.pk, device.org_id, device.contact_id)
        assert loaded_device.pk == device.pk


@pytest.mark.prepared_statements
@pytest.mark.django_db(transaction=True)
def test_inside_a_transaction_nothing_is_prepared_so_nothing_goes_stale(widened_user_agent, key):
    # given: the lookup prepared on the session (outside a transaction), then a migration
    _PRINCIPAL_ROW.fetch(*key)
    widened_user_agent()

    # when: the lookup runs inside a transaction, where a failed statement could not be retried
    with transaction.atomic():
        inside = _PRINCIPAL_ROW.fetch(*key)

    # then: it answered, unprepared; outside, the stale statement is replaced as before
    assert inside[0].pk == key[0]
    assert _PRINCIPAL_ROW.fetch(*key)[0].pk == key[0]
    assert all(name.startswith("chatshield_") for name in session_statements())


# --- one cursor per connection ----------------------------------------------------------------


@pytest.fixture
def cursors_made(monkeypatch) -> list:
    """Each cursor Django makes on the default connection from here on."""
    made = []
    wrapper_class = type(connections["default"])
    make = wrapper_class.cursor

    def counted(wrapper):
        made.append(make(wrapper))
        return made[-1]

    monkeypatch.setattr(wrapper_class, "cursor", counted)
    return made


@pytest.fixture
def key() -> tuple:
    """The principal lookup's values for a device of a new contact."""
    device = DeviceFactory()
    return device.pk, device.org_id, device.contact_id


def test_the_statements_share_one_cursor_while_the_connection_lives(cursors_made, key):
    _PRINCIPAL_ROW.fetch(*key)
    made = len(cursors_made)

    for _ in range(3):
        assert _PRINCIPAL_ROW.fetch(*key)[0].pk == key[0]

    assert len(cursors_made) == made
    assert statement_cursor(connection) is statement_cursor(connection)


@pytest.mark.django_db(transaction=True)
def test_a_closed_connection_gets_a_new_cursor_on_its_new_connection(key):
    if connection.vendor == "sqlite" and connection.is_in_memory_db():
        pytest.skip("Django keeps an in-memory SQLite database's one connection open")
    _PRINCIPAL_ROW.fetch(*key)
    before = statement_cursor(connection)

    connection.close()

    assert _PRINCIPAL_ROW.fetch(*key)[0].pk == key[0]
    after = statement_cursor(connection)
    assert after is not before
    assert after.cursor.connection is connection.connection


def test_switching_query_logging_on_and_off_switches_the_cursor(key):
    _PRINCIPAL_ROW.fetch(*key)
    plain = statement_cursor(connection)
    assert not isinstance(plain, CursorDebugWrapper)

    # when: queries are captured, the statements are logged
    with CaptureQueriesContext(connection) as captured:
        _PRINCIPAL_ROW.fetch(*key)
        _PRINCIPAL_ROW.fetch(*key)
    assert len(captured) == 2
    assert all('"contacts_device" d JOIN' in query["sql"] for query in captured)

    # then: and once the capture is over, they are not
    logged = len(connection.queries_log)
    _PRINCIPAL_ROW.fetch(*key)
    assert not isinstance(statement_cursor(connection), CursorDebugWrapper)
    assert len(connection.queries_log) == logged


def test_execute_wrappers_see_the_statements_on_the_shared_cursor(key):
    _PRINCIPAL_ROW.fetch(*key)
    seen = []

    def refuse(execute, sql, params, many, context):
        seen.append(sql)
        raise OperationalError("the database went away")

    with connection.execute_wrapper(refuse), pytest.raises(OperationalError):
        _PRINCIPAL_ROW.fetch(*key)

    assert len(seen) == 1 and '"contacts_device" d JOIN' in seen[0]
    assert _PRINCIPAL_ROW.fetch(*key)[0].pk == key[0]


def test_a_database_error_on_the_shared_cursor_is_djangos_and_the_cursor_serves_on(org):
    contact, device = new_identity(org)
    NEW_IDENTITY.insert(contact, device)
    shared = statement_cursor(connection)

    # when: the same primary keys again, inside a transaction that survives the error
    with pytest.raises(IntegrityError), transaction.atomic():
        NEW_IDENTITY.insert(*new_identity(org, id=contact.pk))

    # then: the next statement runs on the same cursor
    assert _PRINCIPAL_ROW.fetch(device.pk, org.pk, contact.pk)[0].pk == device.pk
    assert statement_cursor(connection) is shared


def test_a_connection_shared_by_threads_gets_a_cursor_per_statement(cursors_made, key):
    # Django's live test server shares an in-memory SQLite connection with the test's thread;
    # two threads may not use one cursor at once.
    connection.inc_thread_sharing()
    try:
        assert statement_cursor(connection) is None
        made = len(cursors_made)

        for _ in range(2):
            assert _PRINCIPAL_ROW.fetch(*key)[0].pk == key[0]
    finally:
        connection.dec_thread_sharing()

    assert len(cursors_made) == made + 2


# --- outside transactions, at libpq's level (PostgreSQL) ----------------------------------------


@pytest.fixture
def through_libpq(monkeypatch) -> list:
    """The statements run at libpq's level from here on (their SQL), the rest as before."""
    ran = []
    run = precompiled._libpq_run

    def recorded(connection, cursor, sql, params, *, fetch):
        ran.append(sql)
        return run(connection, cursor, sql, params, fetch=fetch)

    monkeypatch.setattr(precompiled, "_libpq_run", recorded)
    return ran


def libpq_state():
    """What `_libpq_run` keeps for the default connection's session."""
    return precompiled._libpq_statements(connection, connection.connection)


def libpq_statements() -> dict:
    """The statements prepared at libpq's level on the default connection's session."""
    return libpq_state().names


def session_statements() -> set[str]:
    """The names of the prepared statements the database session holds."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT name FROM pg_prepared_statements")
        return {name for (name,) in cursor.fetchall()}


@pytest.mark.prepared_statements
@pytest.mark.django_db(transaction=True)
def test_outside_a_transaction_a_lookup_runs_at_libpqs_level_and_loads_what_the_cursor_loads(
    through_libpq,
):
    device = DeviceFactory(contact=VerifiedContactFactory(custom_data={"plan": "gold"}))
    key = (device.pk, device.org_id, device.contact_id)

    # when: the same lookup inside a transaction (psycopg's cursor) and outside one
    with transaction.atomic():
        on_the_cursor = _PRINCIPAL_ROW.fetch(*key)
    assert through_libpq == []
    at_libpq = _PRINCIPAL_ROW.fetch(*key)

    # then: outside, libpq ran it, as a statement prepared on the session, with the same result
    assert len(through_libpq) == 1
    assert [field_values(i) for i in at_libpq] == [field_values(i) for i in on_the_cursor]
    assert at_libpq[1].custom_data == {"plan": "gold"}
    assert set(libpq_statements().values()) <= {name.encode() for name in session_statements()}
    assert _PRINCIPAL_ROW.fetch(uuid.uuid4(), device.org_id, device.contact_id) is None


@pytest.mark.prepared_statements
@pytest.mark.django_db(transaction=True)
def test_at_libpqs_level_writes_and_reads_many_rows_as_the_cursor_does(org, through_libpq):
    # when: both rows inserted in one statement outside a transaction
    contact, device = new_identity(org, name="Jo", custom_data={"a": [1, 2]})
    NEW_IDENTITY.insert(contact, device)

    # then: written as the ORM writes them, by libpq
    assert len(through_libpq) == 1
    assert field_values(Contact.objects.get()) == field_values(contact)
    assert field_values(Device.objects.get()) == field_values(device)


@pytest.mark.prepared_statements
@pytest.mark.django_db(transaction=True)
def test_a_rollback_leaves_the_sessions_statements_alone(through_libpq, key):
    # given: the lookup prepared on the session
    _PRINCIPAL_ROW.fetch(*key)
    (name,) = libpq_statements().values()

    # when: a transaction that ran the same lookup (and an ORM query) is rolled back
    with pytest.raises(IntegrityError), transaction.atomic():
        _PRINCIPAL_ROW.fetch(*key)
        DeviceFactory(pk=key[0])

    # then: psycopg prepared nothing, so it deallocated nothing (a DEALLOCATE ALL would make
    # pgbouncer in transaction mode drop the client that next used one of ours)
    assert session_statements() == {name.decode()}
    assert _PRINCIPAL_ROW.fetch(*key)[0].pk == key[0]
    assert list(libpq_statements().values()) == [name]


@pytest.mark.prepared_statements
@pytest.mark.django_db(transaction=True)
def test_statements_someone_dropped_are_prepared_again(org, through_libpq, key):
    _PRINCIPAL_ROW.fetch(*key)
    contact, new_device = new_identity(org)
    NEW_IDENTITY.insert(contact, new_device)
    before = set(libpq_statements().values())
    assert len(before) == 2

    # when: the session's prepared statements are dropped behind our back
    with connection.cursor() as cursor:
        cursor.execute("DEALLOCATE ALL")
    assert session_statements() == set()

    # then: the next lookup prepares it again and answers, and the other is forgotten too
    assert _PRINCIPAL_ROW.fetch(*key)[0].pk == key[0]
    (again,) = libpq_statements().values()
    assert again not in before and session_statements() == {again.decode()}


@pytest.mark.prepared_statements
@pytest.mark.django_db(transaction=True)
def test_a_database_error_at_libpqs_level_is_djangos(org, through_libpq):
    contact, device = new_identity(org)
    NEW_IDENTITY.insert(contact, device)

    # when: the same primary keys again
    with pytest.raises(IntegrityError) as raised:
        NEW_IDENTITY.insert(*new_identity(org, id=contact.pk))

    # then: Django's IntegrityError from psycopg's, nothing more written, and the session serves on
    assert len(through_libpq) == 2
    assert raised.value.__cause__.sqlstate == "23505"
    assert Contact.objects.count() == 1
    assert _PRINCIPAL_ROW.fetch(device.pk, org.pk, contact.pk)[0].pk == device.pk


@pytest.mark.prepared_statements
@pytest.mark.django_db(transaction=True)
def test_a_lost_connection_at_libpqs_level_is_an_operational_error_and_a_503(org, through_libpq):
    widget = widget_client(org)
    token = mint(widget).json()["token"]
    me = widget_client(org, token)
    assert me.get("/widget/me").status_code == 200
    pid = connection.connection.info.backend_pid
    before = len(through_libpq)

    # when: the server ends the session between two requests
    committed_elsewhere("SELECT pg_terminate_backend(%s)", [pid])
    with pytest.raises(OperationalError):
        _PRINCIPAL_ROW.fetch(uuid.uuid4(), org.pk, uuid.uuid4())
    response = me.get("/widget/me")
    # What Django's WSGI handler does after every response (its test client leaves it out).
    close_old_connections()

    # then: the request is the 503 (no stack trace), and the next one is served on a new session
    assert len(through_libpq) == before + 2  # the lookup above, and the request's
    assert all('"contacts_device" d JOIN' in sql for sql in through_libpq[before:])
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "service_unavailable"
    assert me.get("/widget/me").status_code == 200
    assert connection.connection.info.backend_pid != pid


@pytest.mark.prepared_statements
@pytest.mark.django_db(transaction=True)
def test_logged_or_wrapped_statements_stay_on_djangos_cursor_outside_a_transaction(
    through_libpq, key
):
    seen = []

    def record(execute, sql, params, many, context):
        seen.append(sql)
        return execute(sql, params, many, context)

    with CaptureQueriesContext(connection) as captured:
        assert _PRINCIPAL_ROW.fetch(*key)[0].pk == key[0]
    with connection.execute_wrapper(record):
        assert _PRINCIPAL_ROW.fetch(*key)[0].pk == key[0]

    assert len(captured) == 1 and '"contacts_device" d JOIN' in captured[0]["sql"]
    assert len(seen) == 1 and '"contacts_device" d JOIN' in seen[0]
    assert through_libpq == []


@pytest.mark.prepared_statements
@pytest.mark.django_db(transaction=True)
def test_one_transformer_serves_every_statement_of_a_session(org, through_libpq):
    # given: a write and two different reads on one session, at libpq's level
    contact, device = new_identity(org, custom_data={"plan": "gold"})
    NEW_IDENTITY.insert(contact, device)
    state = libpq_state()
    made = state.transformer

    loaded_device, loaded_contact = _PRINCIPAL_ROW.fetch(device.pk, org.pk, contact.pk)
    assert _PRINCIPAL_ROW.fetch(uuid.uuid4(), org.pk, contact.pk) is None

    # then: each read as the ORM loads it, through the transformer the write made
    assert len(through_libpq) == 3
    assert field_values(loaded_contact) == field_values(Contact.objects.get())
    assert field_values(loaded_device) == field_values(Device.objects.get())
    assert state.transformer is made

    # when: the session ends, the next one makes its own
    connection.close()
    assert _PRINCIPAL_ROW.fetch(device.pk, org.pk, contact.pk)[0].pk == device.pk
    assert libpq_state().transformer is not made


@pytest.mark.prepared_statements
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("sql", "params"),
    [("SELECT %s::text", ["a\x00b"]), ("SELECT 'infinity'::date", [])],
    ids=["a value psycopg cannot send", "a column psycopg cannot load"],
)
def test_an_adaptation_error_at_libpqs_level_is_djangos_data_error(through_libpq, sql, params):
    with pytest.raises(DataError):
        precompiled.execute_prepared(connection, sql, params, fetch=True)

    assert through_libpq == [sql]
