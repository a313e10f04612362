"""The migrations: in step with the models, and the index changes that must not lock big tables."""

from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

pytestmark = pytest.mark.django_db

BEFORE = [
    ("contacts", "0003_contact_search_indexes"),
    ("conversations", "0004_conversation_last_message"),
]
# (table, column) of each foreign key whose own index the migrations drop
DROPPED = [
    ("contacts_contact", "org_id"),
    ("contacts_device", "contact_id"),
    ("conversations_conversation", "org_id"),
    ("conversations_conversation", "device_id"),
    ("conversations_conversation", "assignee_id"),
    ("conversations_message", "conversation_id"),
    ("conversations_message", "sender_user_id"),
    ("conversations_message", "sender_contact_id"),
    ("conversations_message", "sender_api_key_id"),
]


def test_the_models_have_no_changes_without_a_migration():
    out = StringIO()
    call_command("makemigrations", "--check", "--dry-run", stdout=out, stderr=out)


def full_indexes_on(table: str, column: str) -> list[str]:
    """The plain (not partial, not unique) single-column indexes on `table.column`."""
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, table)
        partial = set()
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT indexrelid::regclass::text FROM pg_index"
                " WHERE indrelid = %s::regclass AND indpred IS NOT NULL",
                [table],
            )
            partial = {row[0] for row in cursor.fetchall()}
        elif connection.vendor == "sqlite":
            cursor.execute(
                "SELECT name FROM sqlite_master WHERE type = 'index' AND sql LIKE '%WHERE%'"
            )
            partial = {row[0] for row in cursor.fetchall()}
    return [
        name
        for name, info in constraints.items()
        if info["index"]
        and info["columns"] == [column]
        and not (info["unique"] or info["primary_key"] or info["foreign_key"])
        and name not in partial
    ]


def foreign_keys(table: str) -> dict:
    """Each foreign key of `table`: its columns, the target and, on PostgreSQL, the constraint's
    oid, which changes if the constraint is dropped and added again (and every row re-checked)."""
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, table)
        oids = {}
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT conname, oid FROM pg_constraint WHERE conrelid = %s::regclass", [table]
            )
            oids = dict(cursor.fetchall())
    return {
        tuple(info["columns"]): (info["foreign_key"], oids.get(name))
        for name, info in constraints.items()
        if info["foreign_key"]
    }


@pytest.mark.django_db(transaction=True)
def test_the_foreign_key_indexes_go_without_touching_the_constraints():
    executor = MigrationExecutor(connection)
    tables = sorted({table for table, _ in DROPPED})
    keys_after = {table: foreign_keys(table) for table in tables}
    try:
        # given: the schema before the change has an index of its own on each of these keys
        executor.migrate(BEFORE)
        assert all(full_indexes_on(table, column) for table, column in DROPPED)
        keys_before = {table: foreign_keys(table) for table in tables}

        # when
        executor.loader.build_graph()
        executor.migrate(executor.loader.graph.leaf_nodes())

        # then: those indexes are gone and every foreign key is as it was
        assert [(t, c) for t, c in DROPPED if full_indexes_on(t, c)] == []
        assert {table: foreign_keys(table) for table in tables} == keys_before == keys_after
    finally:
        executor.loader.build_graph()
        executor.migrate(executor.loader.graph.leaf_nodes())


@pytest.mark.django_db(transaction=True)
def test_emails_stored_in_an_older_spelling_are_normalized():
    executor = MigrationExecutor(connection)
    try:
        # given: rows written before emails were normalized beyond lower case
        executor.migrate([("identity", "0002_auditevent"), ("contacts", "0004_fk_indexes_covered")])
        apps = executor.loader.project_state(
            [("identity", "0002_auditevent"), ("contacts", "0004_fk_indexes_covered")]
        ).apps
        User = apps.get_model("identity", "User")
        Organization = apps.get_model("identity", "Organization")
        Contact = apps.get_model("contacts", "Contact")
        old = User.objects.create(email="ops@xn--bcher-kva.de", password="!")
        User.objects.create(email="ann@b\u00fccher.de", password="!")
        clash = User.objects.create(email="ann@xn--bcher-kva.de", password="!")
        org = Organization.objects.create(name="Shop", slug="shop-emails", widget_token="wgt_e")
        verified = Contact.objects.create(org=org, trust="verified", email="carol@bu\u0308cher.de")
        typed = Contact.objects.create(org=org, trust="non_verified", email="dee@xn--g6h.de")
        ascii_ = Contact.objects.create(org=org, trust="non_verified", email="eve@shop.test")

        # when
        executor.loader.build_graph()
        executor.migrate(executor.loader.graph.leaf_nodes())

        # then: one spelling, except where another account already holds it
        emails = dict(User.objects.values_list("pk", "email"))
        assert emails[old.pk] == "ops@b\u00fccher.de"
        assert emails[clash.pk] == "ann@xn--bcher-kva.de"
        contacts = dict(Contact.objects.values_list("pk", "email"))
        assert contacts[verified.pk] == "carol@b\u00fccher.de"
        assert contacts[typed.pk] == "dee@\u2665.de"
        assert contacts[ascii_.pk] == "eve@shop.test"
    finally:
        executor.loader.build_graph()
        executor.migrate(executor.loader.graph.leaf_nodes())


@pytest.mark.django_db(transaction=True)
def test_theme_colors_stored_upper_case_are_lower_cased():
    executor = MigrationExecutor(connection)
    before = [("identity", "0004_auditevent_membership_actions")]
    try:
        # given: orgs made with the old upper-case default, a custom colour and no colour
        executor.migrate(before)
        Organization = executor.loader.project_state(before).apps.get_model(
            "identity", "Organization"
        )
        themes = {
            "default": {"primaryColor": "#18BDF7", "title": "Chat with us"},
            "custom": {"primaryColor": "#AbCdEf", "title": "Hi"},
            "none": {},
        }
        for name, theme in themes.items():
            Organization.objects.create(
                name=name, slug=f"theme-{name}", widget_token=f"wgt_theme_{name}", theme=theme
            )

        # when
        executor.loader.build_graph()
        executor.migrate(executor.loader.graph.leaf_nodes())

        # then
        stored = dict(Organization.objects.values_list("slug", "theme"))
        assert stored["theme-default"] == {"primaryColor": "#18bdf7", "title": "Chat with us"}
        assert stored["theme-custom"] == {"primaryColor": "#abcdef", "title": "Hi"}
        assert stored["theme-none"] == {}
    finally:
        executor.loader.build_graph()
        executor.migrate(executor.loader.graph.leaf_nodes())
