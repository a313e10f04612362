"""config.precompiled.CompiledQuery: a query compiled once per shape loads what the ORM loads."""

import itertools
import re
import uuid
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.db.models import F, Model
from django.db.transaction import TransactionManagementError
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from config.pagination import keyset_page
from config.precompiled import CompiledQuery
from contacts import services as contact_services
from contacts.models import Contact
from contacts.selectors import ContactPrincipal
from conversations import selectors
from conversations.models import Conversation
from tests.factories import (
    ContactFactory,
    ConversationFactory,
    DeviceFactory,
    MessageFactory,
    OrganizationFactory,
    VerifiedContactFactory,
)

pytestmark = pytest.mark.django_db

CONTACT = Contact._meta


def field_values(instance: Model) -> dict:
    return {f.attname: getattr(instance, f.attname) for f in instance._meta.concrete_fields}


def counting(build):
    """`build`, counting its calls: a CompiledQuery calls its builder once per shape."""

    def counted(**arguments):
        counted.calls += 1
        return build(**arguments)

    counted.calls = 0
    return counted


# -- the general contract, on a small query of its own ------------------------------------------


def contacts_query(*, org, trust, email, newest_first):
    contacts = Contact.objects.filter(org=org, trust=trust)
    if email:
        contacts = contacts.filter(email=email)
    return contacts.order_by("-first_seen_at" if newest_first else "first_seen_at", "pk")


@pytest.fixture
def contacts_compiled():
    return CompiledQuery(
        counting(contacts_query),
        params={"org": CONTACT.get_field("org"), "email": CONTACT.get_field("email")},
    )


def test_every_shape_loads_what_the_orm_loads_with_every_type_converted(contacts_compiled):
    # given: contacts with JSON, datetimes, UUIDs and text, in two orgs
    org, other = OrganizationFactory(), OrganizationFactory()
    for n in range(3):
        VerifiedContactFactory(
            org=org, custom_data={"n": n, "nested": [1.5, None, {"é": True}]}, name=f"Zoë {n}"
        )
    VerifiedContactFactory(org=other, email="customer-other@shop.test")
    ContactFactory(org=org)
    target = Contact.objects.filter(org=org, trust="verified").first()

    for arguments in [
        {"org": org, "trust": "verified", "email": None, "newest_first": True},
        {"org": org, "trust": "verified", "email": None, "newest_first": False},
        {"org": org, "trust": "verified", "email": target.email, "newest_first": True},
        {"org": org.pk, "trust": "anonymous", "email": "", "newest_first": True},
        {"org": other, "trust": "verified", "email": target.email, "newest_first": True},
    ]:
        # when
        loaded = contacts_compiled.run(**arguments)

        # then: the same rows, in the same order, field for field
        expected = list(contacts_query(**arguments))
        assert [field_values(c) for c in loaded] == [field_values(c) for c in expected], arguments
        assert all(not c._state.adding and c._state.db == "default" for c in loaded)
    newest = contacts_compiled.run(org=org, trust="verified", email=None, newest_first=True)[0]
    assert isinstance(newest.pk, uuid.UUID)
    assert newest.verified_at.tzinfo is not None
    assert newest.custom_data["nested"] == [1.5, None, {"é": True}]


def narrowed_query(*, org):
    return Contact.objects.filter(org=org).only("email", "name", "custom_data")


def test_a_narrowed_query_loads_the_same_instances_with_the_same_fields_deferred():
    # given: a query that loads some of the contact's fields, as the history's does
    org = OrganizationFactory()
    VerifiedContactFactory(org=org, name="Zoë", custom_data={"plan": "gold"})
    compiled = CompiledQuery(narrowed_query, params={"org": CONTACT.get_field("org")})

    # when
    (loaded,) = compiled.run(org=org)

    # then: what the ORM loads, attribute for attribute; the rest deferred, loaded on access
    (expected,) = narrowed_query(org=org)
    assert {k: v for k, v in vars(loaded).items() if k != "_state"} == {
        k: v for k, v in vars(expected).items() if k != "_state"
    }
    assert loaded.get_deferred_fields() == expected.get_deferred_fields()
    assert "trust" in loaded.get_deferred_fields()
    assert loaded.trust == "verified"


def test_a_shape_is_built_once_and_new_values_only_rebind_it(contacts_compiled):
    org, other = OrganizationFactory(), OrganizationFactory()
    first, second = VerifiedContactFactory(org=org), VerifiedContactFactory(org=other)

    found = [
        contacts_compiled.run(org=o, trust="verified", email=c.email, newest_first=True)
        for o, c in [(org, first), (other, second), (org, second)]
    ]

    assert [[c.pk for c in rows] for rows in found] == [[first.pk], [second.pk], []]
    assert contacts_compiled.build.calls == 1
    contacts_compiled.run(org=org, trust="verified", email=None, newest_first=True)
    contacts_compiled.run(org=org, trust="anonymous", email=None, newest_first=True)
    assert contacts_compiled.build.calls == 3


def test_a_run_is_one_query(contacts_compiled, django_assert_num_queries):
    org = OrganizationFactory()
    VerifiedContactFactory(org=org)
    contacts_compiled.run(org=org, trust="verified", email=None, newest_first=True)

    with django_assert_num_queries(1):
        contacts_compiled.run(org=org, trust="verified", email=None, newest_first=True)


def names_query(*, org, name, since):
    return Contact.objects.filter(org=org, name=name, first_seen_at__gte=since).order_by("pk")


def test_a_prepared_shapes_constants_are_written_into_its_sql_and_only_values_bound():
    # given: constants that need quoting, and a % that must stay a %, not a placeholder
    org = OrganizationFactory()
    odd = "50% off, O'Brien's \\ %s"
    match = ContactFactory(org=org, name=odd)
    ContactFactory(org=org, name="50")
    since = match.first_seen_at - timedelta(days=1)
    compiled = CompiledQuery(names_query, params={"org": CONTACT.get_field("org")}, prepare=True)

    # when
    loaded = compiled.run(org=org, name=odd, since=since)
    sql, params, _ = compiled.statement(org=org, name=odd, since=since)

    # then
    assert [c.pk for c in loaded] == [c.pk for c in names_query(org=org, name=odd, since=since)]
    assert [c.pk for c in loaded] == [match.pk]
    if connection.vendor == "postgresql":
        assert params == [org.pk]
        assert "O''Brien''s" in sql
    else:
        assert len(params) == 3


def test_annotations_are_set_as_the_orm_sets_them():
    conversation = ConversationFactory()
    MessageFactory(conversation=conversation, body="hello")
    compiled = CompiledQuery(
        lambda *, pk: Conversation.objects.filter(pk=pk).annotate(
            text=F("last_message__body"), at=F("last_message__created_at")
        ),
        params={"pk": Conversation._meta.pk},
    )

    (loaded,) = compiled.run(pk=conversation.pk)

    assert loaded.text == "hello"
    assert loaded.at == conversation.messages.get().created_at
    assert loaded.at.tzinfo is not None


@pytest.mark.parametrize(
    "build",
    [
        lambda *, email: Contact.objects.filter(email__startswith=email),
        lambda *, email: Contact.objects.filter(email__icontains=email),
        lambda *, email: Contact.objects.filter(email__iexact=email),
        lambda *, email: Contact.objects.annotate(e=email).filter(email=F("e")),
        lambda *, email: Contact.objects.filter(email="x").select_related("org"),
    ],
    ids=["startswith", "icontains", "iexact", "outside-a-filter", "select_related"],
)
def test_what_a_compiled_query_cannot_bind_safely_is_refused_when_compiling(build):
    compiled = CompiledQuery(build, params={"email": CONTACT.get_field("email")})

    with pytest.raises(ValueError, match=r"CompiledQuery|Param"):
        compiled.run(email="a%")


@pytest.mark.django_db(transaction=True)
def test_a_locking_query_refuses_to_run_outside_a_transaction():
    conversation = ConversationFactory()
    compiled = CompiledQuery(
        lambda *, pk: Conversation.objects.filter(pk=pk).select_for_update(),
        params={"pk": Conversation._meta.pk},
    )
    with transaction.atomic():
        assert [c.pk for c in compiled.run(pk=conversation.pk)] == [conversation.pk]

    with pytest.raises(TransactionManagementError):
        compiled.run(pk=conversation.pk)


@pytest.mark.django_db(transaction=True)
def test_a_locking_shape_compiles_as_a_statement_outside_a_transaction():
    compiled = CompiledQuery(
        lambda *, pk: Conversation.objects.filter(pk=pk).select_for_update(),
        params={"pk": Conversation._meta.pk},
    )
    pk = uuid.uuid4()

    # when: compiled where Django refuses to compile a locking query, outside any transaction
    with CaptureQueriesContext(connection) as captured:
        sql, params, _load = compiled.statement(pk=pk)

    # then: nothing ran but an empty transaction (on PostgreSQL not even sent: psycopg begins
    # lazily and has nothing to commit), and the connection is back in autocommit
    assert {q["sql"] for q in captured.captured_queries} <= {"BEGIN", "COMMIT"}
    assert connection.get_autocommit()
    assert params == [Conversation._meta.pk.get_db_prep_value(pk, connection)]
    assert sql.endswith("FOR UPDATE") == connection.features.has_select_for_update


def test_the_visible_conversation_is_locked_in_the_same_query(django_assert_num_queries):
    device = DeviceFactory()
    conversation = ConversationFactory(org=device.org, contact=device.contact, device=device)

    with transaction.atomic(), django_assert_num_queries(1) as queries:
        found = selectors.conversation_visible_get(
            principal=principal_of(device),
            conversation_id=conversation.pk,
            external_id=None,
            for_update=True,
        )

    assert found == conversation
    if connection.features.has_select_for_update:
        assert queries.captured_queries[0]["sql"].endswith("FOR UPDATE")


# -- the widget's queries against the plain ORM, shape by shape -----------------------------------


def principal_of(device) -> ContactPrincipal:
    return ContactPrincipal(org=device.org, contact=device.contact, device=device, claims=None)


def orm_history(principal, external_id, position, limit) -> list[Conversation]:
    visible = selectors.conversations_visible(**selectors._visibility(principal, external_id))
    page = keyset_page(
        selectors._with_last_message(visible),
        ordering_field=selectors.HISTORY_ORDERING,
        position=position,
        limit=limit,
    )
    return list(page)


@pytest.fixture
def histories():
    """Conversations of three kinds of token on one org, some under externalIds, some tied."""
    org = OrganizationFactory()
    verified = VerifiedContactFactory(org=org)
    laptop, phone = DeviceFactory(contact=verified), DeviceFactory(contact=verified)
    browser = DeviceFactory(contact=ContactFactory(org=org, trust=Contact.Trust.NON_VERIFIED))
    stranger = DeviceFactory(contact=ContactFactory(org=org))
    tied = timezone.now() - timedelta(hours=1)
    for n in range(12):
        for device, created_verified in [(laptop, True), (phone, n % 3 != 0), (browser, False)]:
            conversation = ConversationFactory(
                org=org,
                contact=device.contact,
                device=device,
                created_verified=created_verified,
                external_id=["", "shop", "blog"][n % 3],
                created_at=tied if n % 4 == 0 else tied + timedelta(minutes=n),
            )
            if n % 2:
                MessageFactory(conversation=conversation, body=f"hi {n}")
    ConversationFactory(org=org, contact=stranger.contact, device=stranger)
    return [laptop, browser, stranger]


@pytest.mark.parametrize("external_id", [None, "", "shop", "blog", "nowhere"])
def test_the_history_pages_are_the_orms_for_every_token_and_cursor(histories, external_id):
    for device in histories:
        principal = principal_of(device)
        if not principal.is_verified and principal.trust != "anonymous" and not external_id:
            continue  # external_id_required, tested with the route
        position, pages = None, 0
        while True:
            # when
            page = selectors.conversation_history_page(
                principal=principal, external_id=external_id, position=position, limit=4
            )

            # then
            expected = orm_history(principal, external_id, position, 4)
            assert [
                (field_values(c), c.last_message_text, c.last_message_created_at) for c in page
            ] == [
                (field_values(c), c.last_message_text, c.last_message_created_at) for c in expected
            ]
            pages += 1
            if len(page) < 4:
                break
            position = (page[-1].created_at, page[-1].pk)
        if principal.is_verified and external_id is None:
            assert pages == 6  # 20 conversations, 12 from one device and 8 from the other


def test_one_visible_conversation_is_the_orms_for_every_token(histories):
    conversations = list(Conversation.objects.filter(org=histories[0].org))
    for device in histories:
        principal = principal_of(device)
        for external_id in [None, "shop"]:
            visible = set(
                selectors.conversations_visible(**selectors._visibility(principal, external_id))
            )
            for conversation in conversations:
                try:
                    found = selectors.conversation_visible_get(
                        principal=principal,
                        conversation_id=conversation.pk,
                        external_id=external_id,
                    )
                except selectors.NotFound:
                    found = None
                assert (found == conversation) == (conversation in visible)
                if found:
                    assert field_values(found) == field_values(conversation)


def test_the_verified_match_is_the_orms_for_every_combination_of_keys():
    org, other = OrganizationFactory(), OrganizationFactory()
    both = VerifiedContactFactory(org=org, email="both@shop.test", user_id="u-both")
    VerifiedContactFactory(org=org, email="mail-only@shop.test", user_id="")
    VerifiedContactFactory(org=org, email="", user_id="u-only")
    VerifiedContactFactory(org=other, email="both@shop.test", user_id="u-both")
    VerifiedContactFactory(
        org=org, email="gone@shop.test", user_id="u-gone", erased_at=both.verified_at
    )
    ContactFactory(org=org, trust=Contact.Trust.NON_VERIFIED, email="both@shop.test")
    emails = ["", "both@shop.test", "mail-only@shop.test", "gone@shop.test", "nobody@shop.test"]
    user_ids = ["", "u-both", "u-only", "u-gone", "u-nobody"]

    for email, user_id, lock in itertools.product(emails, user_ids, [True, False]):
        if not email and not user_id:
            continue
        keys = {"org": org, "email": email, "user_id": user_id, "lock": lock}
        with transaction.atomic():
            found = contact_services._VERIFIED_MATCH.run(**keys)
            expected = list(contact_services._verified_match_query(**keys))
        assert sorted(c.pk for c in found) == sorted(c.pk for c in expected), keys
        assert [field_values(c) for c in found] == [field_values(c) for c in expected]
        assert [c.row_version for c in found] == [c.row_version for c in expected]


def test_the_prepared_lookups_are_those_whose_plan_needs_no_values():
    assert selectors._VISIBLE_ONE.prepare
    assert selectors._HISTORY_PAGE.prepare
    # Its keys restate their partial indexes' predicates (see the plan test below).
    assert contact_services._VERIFIED_MATCH.prepare


def generic_plan(sql: str, params: list) -> str:
    """The plan PostgreSQL makes for `sql` without its values: what a prepared statement
    settles on after a few runs. Sequential scans are ruled out, as on a large table."""
    positional = iter(range(1, len(params) + 1))
    statement = re.sub(r"%s", lambda _: f"${next(positional)}", sql).replace("%%", "%")
    values = connection.ops.compose_sql("(" + ", ".join(["%s"] * len(params)) + ")", params)
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute(f"PREPARE history_page AS {statement}")
        cursor.execute(f"EXPLAIN EXECUTE history_page {values}")
        plan = "\n".join(row[0] for row in cursor.fetchall())
        cursor.execute("DEALLOCATE history_page")
    return plan


@pytest.mark.postgres_only(reason="prepared statements' generic plans are PostgreSQL's")
@pytest.mark.parametrize("cursor", [False, True])
def test_the_history_plan_made_without_values_reads_a_page_in_order(histories, cursor):
    # The prepared history soon runs PostgreSQL's generic plan. Unless an index holds the whole
    # ordering, that plan sorts: at `make bench-scale`, all 10,000 conversations of one customer.
    laptop, browser, _ = histories
    for device, index in [
        (laptop, "conv_contact_verified_newest"),
        (browser, "conv_device_newest"),
    ]:
        position = (timezone.now(), uuid.uuid4()) if cursor else None
        after_at, after_pk = position or (None, None)
        sql, params, _ = selectors._HISTORY_PAGE.statement(
            after_at=after_at,
            after_pk=after_pk,
            limit=21,
            **selectors._visibility(principal_of(device), "shop"),
        )

        with transaction.atomic():
            plan = generic_plan(sql, params)

        assert "Sort" not in plan, plan
        assert f"Index Scan using {index}" in plan, plan


# Indexes that find one contact by its key; anything else walks the org's verified contacts.
BY_EMAIL = {"contact_unique_verified_email", "contact_org_email_prefix"}
BY_USER_ID = {"contact_unique_verified_user_id"}


@pytest.mark.parametrize(
    ("email", "user_id", "keys"),
    [
        ("c7@shop.test", "", [BY_EMAIL]),
        ("", "u-7", [BY_USER_ID]),
        ("c7@shop.test", "u-7", [BY_EMAIL, BY_USER_ID]),
    ],
)
@pytest.mark.parametrize("lock", [False, True])
@pytest.mark.postgres_only(reason="prepared statements' generic plans are PostgreSQL's")
def test_the_verified_match_plan_made_without_values_uses_the_partial_unique_indexes(
    email, user_id, keys, lock
):
    # Prepared, the match soon runs PostgreSQL's generic plan, which cannot read `user_id <> ''`
    # off a value it does not know: unless the query says so, it walks the org's verified contacts.
    org = OrganizationFactory()
    Contact.objects.bulk_create(
        VerifiedContactFactory.build(org=org, email=f"c{n}@shop.test", user_id=f"u-{n}")
        for n in range(500)
    )
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {Contact._meta.db_table}")
    sql, params, _ = contact_services._VERIFIED_MATCH.statement(
        org=org, email=email, user_id=user_id, lock=lock
    )

    with transaction.atomic():
        plan = generic_plan(sql, params)

    scans = re.findall(r"Index Scan (?:on|using) (\w+)", plan)
    assert len(scans) == len(keys), plan
    assert all(any(scan in key for scan in scans) for key in keys), plan
    assert "Seq Scan" not in plan, plan


def test_the_history_loads_every_column_its_items_show_and_no_other():
    from conversations.api.serializers import SessionOutputSerializer

    shown = set(SessionOutputSerializer().fields) - {"last_message"}
    assert shown == set(selectors.HISTORY_FIELDS)
