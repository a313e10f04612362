"""Every list answers in a fixed number of queries, whether it holds 1 row or 10."""

import pytest
from django.db import connection

from identity.models import ApiKey
from tests.conversations.conftest import api_key_client, thread_add
from tests.factories import (
    ContactFactory,
    ConversationFactory,
    MessageFactory,
    UserFactory,
    VerifiedContactFactory,
)

pytestmark = pytest.mark.django_db


def assert_constant_queries(django_assert_num_queries, *, queries, get, add_rows, key="results"):
    """Measure `get` with 1 row, then with 10: both must take exactly `queries` queries."""
    add_rows(1)
    get()  # warm the per-process caches (widget org, API key last-used stamp)
    for total, added in ((1, 0), (10, 9)):
        add_rows(added)
        with django_assert_num_queries(queries):
            response = get()
        assert response.status_code == 200, response.content
        assert len(response.json()[key]) == total


def test_widget_history_queries_are_constant(anonymous, django_assert_num_queries):
    def add_rows(count):
        for _ in range(count):
            conversation = ConversationFactory(contact=anonymous.contact, device=anonymous.device)
            MessageFactory(conversation=conversation)

    # device + contact, then the page joined to each last message
    assert_constant_queries(
        django_assert_num_queries,
        queries=2,
        get=lambda: anonymous.client.get("/widget/sessions"),
        add_rows=add_rows,
    )


def test_widget_thread_queries_are_constant(org, anonymous, django_assert_num_queries):
    conversation = ConversationFactory(contact=anonymous.contact, device=anonymous.device)
    agent = UserFactory()

    def add_rows(count):
        for index in range(count):
            kind = "agent" if index % 2 else "contact"
            MessageFactory(
                conversation=conversation,
                sender_kind=kind,
                sender_user=agent if kind == "agent" else None,
                sender_contact=None if kind == "agent" else anonymous.contact,
            )

    # device + contact, the visible conversation, the messages with their senders
    assert_constant_queries(
        django_assert_num_queries,
        queries=3,
        get=lambda: anonymous.client.get(f"/widget/sessions/{conversation.id}/messages"),
        add_rows=add_rows,
    )


def test_agent_inbox_queries_are_constant(org, agent_client, agent_user, django_assert_num_queries):
    def add_rows(count):
        for _ in range(count):
            conversation = ConversationFactory(
                contact=VerifiedContactFactory(org=org), assignee=agent_user
            )
            MessageFactory(conversation=conversation)

    # the agent, the membership, the page with contacts, assignees and last messages
    assert_constant_queries(
        django_assert_num_queries,
        queries=3,
        get=lambda: agent_client.get(f"/api/v1/orgs/{org.id}/conversations"),
        add_rows=add_rows,
    )


def test_integration_inbox_queries_are_constant(org, django_assert_num_queries):
    client = api_key_client(org, ApiKey.Scope.CONVERSATIONS_READ)

    def add_rows(count):
        for _ in range(count):
            MessageFactory(conversation=ConversationFactory(contact=ContactFactory(org=org)))

    # the API key with its org, the page
    assert_constant_queries(
        django_assert_num_queries,
        queries=2,
        get=lambda: client.get(f"/api/v1/orgs/{org.id}/conversations"),
        add_rows=add_rows,
    )


@pytest.mark.parametrize(
    "query", ["status=open", "trust=verified", "assignee={agent}", "status=open&trust=verified"]
)
def test_filtered_agent_inbox_queries_are_constant(
    org, agent_client, agent_user, query, django_assert_num_queries
):
    def add_rows(count):
        for _ in range(count):
            wanted = ConversationFactory(
                contact=VerifiedContactFactory(org=org), assignee=agent_user
            )
            MessageFactory(conversation=wanted)
            MessageFactory(
                conversation=ConversationFactory(
                    contact=ContactFactory(org=org, trust="non_verified", name="Nina"),
                    status="closed",
                )
            )

    # the agent, the membership, the filtered page
    assert_constant_queries(
        django_assert_num_queries,
        queries=3,
        get=lambda: agent_client.get(
            f"/api/v1/orgs/{org.id}/conversations?{query.format(agent=agent_user.pk)}"
        ),
        add_rows=add_rows,
    )


def test_agent_contacts_queries_are_constant(org, agent_client, django_assert_num_queries):
    def add_rows(count):
        ContactFactory.create_batch(count, org=org)

    assert_constant_queries(
        django_assert_num_queries,
        queries=3,
        get=lambda: agent_client.get(f"/api/v1/orgs/{org.id}/contacts"),
        add_rows=add_rows,
    )


@pytest.mark.parametrize(
    "query", ["trust=verified", "search=customer", "trust=verified&search=cust"]
)
def test_filtered_agent_contacts_queries_are_constant(
    org, agent_client, query, django_assert_num_queries
):
    def add_rows(count):
        for _ in range(count):
            VerifiedContactFactory(org=org)  # "Customer n", customer{n}@shop.test, user-n
            ContactFactory(org=org, trust="non_verified", name="Nina", email="nina@visitor.test")

    # the agent, the membership, the page (a search is not a compiled query: its own shape)
    assert_constant_queries(
        django_assert_num_queries,
        queries=3,
        get=lambda: agent_client.get(f"/api/v1/orgs/{org.id}/contacts?{query}"),
        add_rows=add_rows,
    )


def test_agent_thread_queries_are_constant(org, agent_client, django_assert_num_queries):
    conversation = ConversationFactory(contact=ContactFactory(org=org))
    api_key_client(org, ApiKey.Scope.CONVERSATIONS_WRITE)
    key = ApiKey.objects.get()

    # the agent, the membership, the conversation, the messages with every kind of sender
    assert_constant_queries(
        django_assert_num_queries,
        queries=4,
        get=lambda: agent_client.get(
            f"/api/v1/orgs/{org.id}/conversations/{conversation.id}/messages"
        ),
        add_rows=lambda count: thread_add(conversation, count, api_key=key),
    )


def test_posting_a_message_is_a_fixed_number_of_queries(anonymous, django_assert_num_queries):
    conversation = ConversationFactory(contact=anonymous.contact, device=anonymous.device)
    path = f"/widget/sessions/{conversation.id}/messages"
    anonymous.client.post(path, {"text": "warm"}, format="json")
    MessageFactory.create_batch(10, conversation=conversation)

    # device + contact, then on PostgreSQL one statement: the device locked again while unrevoked,
    # the visible conversation locked, the message's INSERT and its conversation's UPDATE. On
    # SQLite the device's and the conversation's lookups, INSERT and UPDATE, plus the
    # transaction's savepoint and its release.
    postgresql = connection.vendor == "postgresql"
    with django_assert_num_queries(2 if postgresql else 7) as captured:
        response = anonymous.client.post(path, {"text": "hello"}, format="json")

    assert response.status_code == 201, response.content
    statements = [q["sql"].split()[0].upper() for q in captured.captured_queries]
    if postgresql:
        assert statements == ["SELECT", "WITH"]
        (post,) = [q["sql"] for q in captured.captured_queries if "FOR UPDATE" in q["sql"]]
        assert '"conversations_conversation"."contact_id"' in post
        assert "INSERT INTO" in post and "UPDATE" in post
        assert '"revoked_at" IS NULL FOR SHARE' in post
    else:
        assert statements.count("SELECT") == 3
        assert statements.count("INSERT") == 1
        assert statements.count("UPDATE") == 1
