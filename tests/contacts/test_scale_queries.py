"""The contact reads that must stay fast on 1M contacts (bench/scale.py): same answers, indexed."""

from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from contacts.models import Contact
from contacts.selectors import CONTACT_LIST_FIELDS, contacts_for_org, contacts_page
from tests.factories import ContactFactory, OrganizationFactory, VerifiedContactFactory

pytestmark = pytest.mark.django_db

CONTACTS = "/admin/contacts/contact/"


def names(contacts) -> list[str]:
    return [contact.name for contact in contacts]


@pytest.fixture
def people(org) -> dict[str, Contact]:
    now = timezone.now()
    return {
        "maria": VerifiedContactFactory(
            org=org,
            name="Maria Garcia",
            email="maria.garcia@shop.test",
            user_id="usr_42",
            last_seen_at=now - timedelta(minutes=1),
        ),
        "mario": ContactFactory(
            org=org,
            trust=Contact.Trust.NON_VERIFIED,
            name="Mario Rossi",
            email="mario_rossi@typed.test",
            last_seen_at=now - timedelta(minutes=2),
        ),
        "guest": ContactFactory(org=org, name="guest#1a2b", last_seen_at=now),
    }


@pytest.mark.parametrize(
    ("search", "expected"),
    [
        ("garc", ["Maria Garcia"]),  # name contains
        ("MARI", ["Maria Garcia", "Mario Rossi"]),  # name contains, any case, newest first
        ("maria.g", ["Maria Garcia"]),  # email prefix
        ("Maria.Garcia@", ["Maria Garcia"]),  # email prefix, typed in capitals
        ("garcia@shop", []),  # inside the email, not in the name: no match
        ("usr_42", ["Maria Garcia"]),  # user_id, exactly
        ("usr_4", []),
        ("USR_42", []),
        ("mario_", ["Mario Rossi"]),  # `_` is a character, not a LIKE wildcard
        ("mari_", []),
        ("%", []),
        ("guest#", ["guest#1a2b"]),
    ],
)
def test_search_matches_name_contains_email_prefix_and_user_id_exactly(
    org, people, search, expected
):
    # given: the same names in another org
    other = OrganizationFactory()
    ContactFactory(org=other, name="Maria Garcia", email="maria.garcia@shop.test")

    # when
    found = contacts_for_org(org=org, search=search)

    # then
    assert names(found) == expected


@pytest.mark.parametrize(
    ("trust", "search", "expected"),
    [
        (None, None, ["guest#1a2b", "Maria Garcia", "Mario Rossi"]),  # compiled once
        ("verified", None, ["Maria Garcia"]),  # compiled, one shape per trust
        (None, "mari", ["Maria Garcia", "Mario Rossi"]),  # through the ORM
    ],
)
def test_a_contacts_page_loads_the_list_columns_only(org, people, trust, search, expected):
    # given
    ContactFactory(org=OrganizationFactory(), name="Maria Elsewhere")

    # when
    page = contacts_page(org=org, trust=trust, search=search, position=None, limit=20)

    # then: the JSON columns (custom data, senderAuthInfo) are neither read nor parsed
    assert names(page) == expected
    loaded = {f.attname for f in Contact._meta.concrete_fields} - page[0].get_deferred_fields()
    assert loaded == {Contact._meta.get_field(name).attname for name in CONTACT_LIST_FIELDS}


def test_a_contacts_page_continues_after_its_position(org, people):
    maria = people["maria"]

    page = contacts_page(org=org, position=(maria.last_seen_at, maria.pk), limit=20)

    assert names(page) == ["Mario Rossi"]


def test_search_combines_with_the_trust_filter(org, people):
    assert names(contacts_for_org(org=org, trust="verified", search="mari")) == ["Maria Garcia"]
    assert names(contacts_for_org(org=org, trust="non_verified", search="usr_42")) == []
    assert names(contacts_for_org(org=org, trust="anonymous", search="guest")) == ["guest#1a2b"]


def test_search_through_the_agents_route_pages_newest_first(org, agent_client, people):
    response = agent_client.get(f"/api/v1/orgs/{org.id}/contacts?search=Mari")

    assert response.status_code == 200
    assert [row["name"] for row in response.json()["results"]] == ["Maria Garcia", "Mario Rossi"]
    assert response.json()["next"] is None


@pytest.mark.postgres_only(reason="PostgreSQL indexes and plans")
def test_each_search_branch_has_an_index_on_postgresql(org):
    # given: enough contacts that a selective search costs less through the indexes, with the
    # trigram index's pending list merged (as autovacuum would) so its cost is not overstated
    now = timezone.now()
    Contact.objects.bulk_create(
        [
            Contact(
                org=org,
                trust=Contact.Trust.NON_VERIFIED,
                name=f"Visitor {n}",
                email=f"visitor{n}@typed.test",
                last_seen_at=now - timedelta(seconds=n),
            )
            for n in range(3_000)
        ],
        batch_size=1_000,
    )
    sql, params = contacts_for_org(org=org, search="visitor1234")[:21].query.sql_with_params()

    # when: the planner may not walk the table, nor the org's contacts newest first
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT gin_clean_pending_list('contact_name_trgm')")
        cursor.execute("ANALYZE contacts_contact")
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("SET LOCAL enable_indexscan = off")
        cursor.execute(f"EXPLAIN {sql}", params)
        plan = "\n".join(row[0] for row in cursor.fetchall())

    # then: one BitmapOr over the three indexes
    assert "BitmapOr" in plan
    assert "Bitmap Index Scan on contact_name_trgm" in plan
    assert "Bitmap Index Scan on contact_org_email_prefix" in plan
    assert "Bitmap Index Scan on contact_unique_verified_user_id" in plan


@pytest.mark.postgres_only(reason="PostgreSQL statistics targets")
def test_search_columns_keep_fine_statistics_on_postgresql():
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT attrelid::regclass::text, attstattarget FROM pg_attribute "
            "WHERE (attrelid = 'contacts_contact'::regclass AND attname = 'email') "
            "OR attrelid = 'contact_name_trgm'::regclass ORDER BY 1"
        )
        targets = cursor.fetchall()

    assert targets == [("contact_name_trgm", 1000), ("contacts_contact", 10000)]


def test_admin_changelist_by_trust_is_newest_first_and_counts_once(operator_user, org, people):
    # given: another org's verified contact, which the owner must not see
    VerifiedContactFactory(org=OrganizationFactory(), name="Elsewhere")
    older = VerifiedContactFactory(
        org=org, name="Older Customer", last_seen_at=timezone.now() - timedelta(days=3)
    )
    client = Client()
    client.force_login(operator_user)

    # when
    with CaptureQueriesContext(connection) as queries:
        response = client.get(f"{CONTACTS}?trust__exact=verified")

    # then
    assert response.status_code == 200
    cl = response.context["cl"]
    assert [contact.pk for contact in cl.result_list] == [people["maria"].pk, older.pk]
    assert cl.result_count == 2
    assert cl.full_result_count is None
    counts = [q["sql"] for q in queries.captured_queries if "COUNT(" in q["sql"].upper()]
    assert len(counts) == 1
    assert "trust" in counts[0]
