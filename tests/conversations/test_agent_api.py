"""Agents' and integrations' routes: contacts, inbox, threads, replies, close and assign."""

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from contacts.models import Contact
from conversations.models import Conversation, Message
from identity.models import ApiKey
from tests.conversations.conftest import (
    FORBIDDEN,
    NOT_FOUND,
    api_key_client,
    contact_with_trust,
    visitor_for,
)
from tests.factories import (
    ContactFactory,
    ConversationFactory,
    MembershipFactory,
    MessageFactory,
    OrganizationFactory,
    UserFactory,
    VerifiedContactFactory,
)

pytestmark = pytest.mark.django_db

READ, WRITE = ApiKey.Scope.CONVERSATIONS_READ, ApiKey.Scope.CONVERSATIONS_WRITE


def iso(value) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def base(org) -> str:
    return f"/api/v1/orgs/{org.id}"


def contact_summary(contact) -> dict:
    return {
        "id": str(contact.id),
        "name": contact.name,
        "email": contact.email,
        "trust": contact.trust,
    }


def write_counts() -> tuple[int, list]:
    return Message.objects.count(), list(
        Conversation.objects.order_by("pk").values_list("status", "assignee_id", "last_message_at")
    )


# --- contacts ---------------------------------------------------------------------------------


def test_contact_detail_keeps_trusted_and_browser_data_apart(org, agent_client):
    # given
    contact = contact_with_trust(org, Contact.Trust.VERIFIED)
    contact.custom_data = {"plan": "gold"}
    contact.non_verified_custom_data = {"plan": "platinum, trust me"}
    contact.phone, contact.language, contact.chat_context = "+100", "fr", "VIP"
    contact.http_action_overrides = {"refund": {"url": "https://shop.test/refund"}}
    contact.save()

    # when
    response = agent_client.get(f"{base(org)}/contacts/{contact.id}")

    # then
    assert response.status_code == 200
    assert response.json() == {
        "id": str(contact.id),
        "trust": "verified",
        "name": contact.name,
        "email": contact.email,
        "user_id": contact.user_id,
        "verified_at": iso(contact.verified_at),
        "first_seen_at": iso(contact.first_seen_at),
        "last_seen_at": iso(contact.last_seen_at),
        "phone": "+100",
        "avatar_url": "",
        "language": "fr",
        "custom_data": {"plan": "gold"},
        "non_verified_custom_data": {"plan": "platinum, trust me"},
        "sender_auth_info": contact.sender_auth_info,
        "chat_context": "VIP",
        "http_action_overrides": {"refund": {"url": "https://shop.test/refund"}},
    }


def test_contact_list_filters_by_trust_and_searches_name_email_prefix_and_user_id(
    org, agent_client
):
    # given
    now = timezone.now()
    robin = ContactFactory(
        org=org, trust="non_verified", name="Robin Hood", email="robin@wood.test", last_seen_at=now
    )
    dana = VerifiedContactFactory(
        org=org, name="Dana", email="dana@shop.test", user_id="u-42", last_seen_at=now
    )
    ghost = ContactFactory(org=org, last_seen_at=now - timedelta(days=1))
    ContactFactory(org=OrganizationFactory(), name="Robin Elsewhere")

    # when
    def ids(query: str) -> list[str]:
        response = agent_client.get(f"{base(org)}/contacts{query}")
        assert response.status_code == 200, response.content
        return [row["id"] for row in response.json()["results"]]

    # then
    assert set(ids("")) == {str(robin.id), str(dana.id), str(ghost.id)}
    assert ids("")[-1] == str(ghost.id)
    assert ids("?trust=verified") == [str(dana.id)]
    assert ids("?search=hoo") == [str(robin.id)]
    assert ids("?search=ROBIN%40W") == [str(robin.id)]
    assert ids("?search=wood.test") == []
    assert ids("?search=u-42") == [str(dana.id)]
    assert ids("?search=U-42") == []
    assert ids("?trust=anonymous&search=Dana") == []


def test_the_name_search_ignores_case_beyond_ascii_on_every_database(org, agent_client):
    # given: names outside ASCII, whose case SQLite's own LIKE would not fold
    emile = ContactFactory(org=org, trust="non_verified", name="Émile Zoë")
    zhanna = ContactFactory(org=org, trust="non_verified", name="Жанна")
    ContactFactory(org=org, trust="non_verified", name="Emile Zoe")

    # when
    def ids(search: str) -> list[str]:
        response = agent_client.get(f"{base(org)}/contacts", {"search": search})
        assert response.status_code == 200, response.content
        return [row["id"] for row in response.json()["results"]]

    # then: as PostgreSQL's UPPER() LIKE UPPER() finds them, on SQLite too
    assert ids("émile zoë") == ids("ÉMILE ZOË") == [str(emile.id)]
    assert ids("жанна") == ids("ЖАННА") == [str(zhanna.id)]
    assert ids("_") == []  # LIKE's wildcards are still matched literally
    assert ids("%") == []


def test_a_whole_address_is_searched_in_the_spelling_it_is_stored_in(org, agent_client):
    carol = ContactFactory(org=org, trust="non_verified", email="carol@b\u00fccher.de")

    for search in ("carol@xn--bcher-kva.de", "CAROL@bu\u0308cher.de", "carol@b\u00fc"):
        response = agent_client.get(f"{base(org)}/contacts", {"search": search})
        assert [row["id"] for row in response.json()["results"]] == [str(carol.id)], search


def test_contact_list_row_shape(org, agent_client):
    contact = VerifiedContactFactory(org=org)

    response = agent_client.get(f"{base(org)}/contacts")

    assert response.json() == {
        "results": [
            {
                "id": str(contact.id),
                "trust": "verified",
                "name": contact.name,
                "email": contact.email,
                "user_id": contact.user_id,
                "verified_at": iso(contact.verified_at),
                "first_seen_at": iso(contact.first_seen_at),
                "last_seen_at": iso(contact.last_seen_at),
            }
        ],
        "next": None,
    }


@pytest.mark.parametrize(
    ("query", "field"), [("?trust=admin", "trust"), ("?search=" + "x" * 256, "search")]
)
def test_contact_list_refuses_bad_filters(org, agent_client, query, field):
    response = agent_client.get(f"{base(org)}/contacts{query}")

    assert response.status_code == 400
    assert list(response.json()["error"]["fields"]) == [field]


def test_contact_list_pages_by_cursor(org, agent_client):
    # given
    now = timezone.now()
    contacts = [ContactFactory(org=org, last_seen_at=now - timedelta(seconds=i)) for i in range(25)]

    # when
    first = agent_client.get(f"{base(org)}/contacts").json()
    second = agent_client.get(f"{base(org)}/contacts?cursor={first['next']}").json()

    # then
    assert [row["id"] for row in first["results"] + second["results"]] == [
        str(c.id) for c in contacts
    ]
    assert second["next"] is None


# --- inbox and detail -------------------------------------------------------------------------


def test_inbox_lists_newest_activity_first_with_contact_assignee_and_last_message(
    org, agent_client, agent_user
):
    # given
    now = timezone.now()
    quiet = ConversationFactory(
        contact=ContactFactory(org=org), last_message_at=now - timedelta(hours=3)
    )
    busy = ConversationFactory(
        contact=VerifiedContactFactory(org=org),
        created_verified=True,
        last_message_at=now,
        assignee=agent_user,
        external_id="ext",
    )
    MessageFactory(conversation=busy, body="old")
    last = MessageFactory(conversation=busy, body="new", created_at=now)

    # when
    response = agent_client.get(f"{base(org)}/conversations")

    # then
    assert response.status_code == 200
    assert response.json() == {
        "results": [
            {
                "id": str(busy.id),
                "status": "open",
                "created_at": iso(busy.created_at),
                "last_message_at": iso(busy.last_message_at),
                "external_id": "ext",
                "created_verified": True,
                "contact": contact_summary(busy.contact),
                "assignee": {
                    "id": agent_user.id,
                    "email": agent_user.email,
                    "name": agent_user.display_name,
                },
                "last_message": {
                    "text": "new",
                    "sender_kind": "contact",
                    "created_at": iso(last.created_at),
                },
            },
            {
                "id": str(quiet.id),
                "status": "open",
                "created_at": iso(quiet.created_at),
                "last_message_at": iso(quiet.last_message_at),
                "external_id": None,
                "created_verified": False,
                "contact": contact_summary(quiet.contact),
                "assignee": None,
                "last_message": None,
            },
        ],
        "next": None,
    }


def test_inbox_filters_by_status_trust_and_assignee(org, agent_client, agent_user):
    # given
    open_mine = ConversationFactory(contact=VerifiedContactFactory(org=org), assignee=agent_user)
    closed = ConversationFactory(contact=ContactFactory(org=org), status="closed")
    ConversationFactory(contact=ContactFactory(org=OrganizationFactory()))

    # when
    def ids(query: str) -> list[str]:
        response = agent_client.get(f"{base(org)}/conversations{query}")
        assert response.status_code == 200, response.content
        return [row["id"] for row in response.json()["results"]]

    # then
    assert set(ids("")) == {str(open_mine.id), str(closed.id)}
    assert ids("?status=closed") == [str(closed.id)]
    assert ids("?trust=verified") == [str(open_mine.id)]
    assert ids(f"?assignee={agent_user.id}") == [str(open_mine.id)]
    assert ids("?status=open&trust=anonymous") == []


@pytest.mark.parametrize(
    ("query", "field"),
    [("?status=pending", "status"), ("?trust=x", "trust"), ("?assignee=me", "assignee")],
)
def test_inbox_refuses_bad_filters(org, agent_client, query, field):
    response = agent_client.get(f"{base(org)}/conversations{query}")

    assert response.status_code == 400
    assert list(response.json()["error"]["fields"]) == [field]


def test_inbox_refuses_a_bad_cursor(org, agent_client):
    response = agent_client.get(f"{base(org)}/conversations?cursor=%%%")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_cursor"


def test_conversation_detail(org, agent_client):
    # given
    contact = contact_with_trust(org, Contact.Trust.NON_VERIFIED)
    conversation = ConversationFactory(
        contact=contact,
        fields={"order": "A-1"},
        sender_auth_info=contact.sender_auth_info,
        external_id="e",
    )

    # when
    response = agent_client.get(f"{base(org)}/conversations/{conversation.id}")

    # then
    assert response.status_code == 200
    assert response.json() == {
        "id": str(conversation.id),
        "status": "open",
        "created_at": iso(conversation.created_at),
        "last_message_at": iso(conversation.last_message_at),
        "closed_at": None,
        "external_id": "e",
        "created_verified": False,
        "fields": {"order": "A-1"},
        "sender_auth_info": contact.sender_auth_info,
        "contact": contact_summary(contact),
        "assignee": None,
    }


# --- threads and replies ----------------------------------------------------------------------


def test_thread_shows_each_messages_sender_auth_info(org, agent_client, agent_user):
    # given
    contact = contact_with_trust(org, Contact.Trust.VERIFIED)
    conversation = ConversationFactory(contact=contact)
    asked = MessageFactory(
        conversation=conversation,
        body="hi",
        sender_contact=contact,
        sender_auth_info=contact.sender_auth_info,
    )
    answered = MessageFactory(
        conversation=conversation, body="hello", sender_kind="agent", sender_user=agent_user
    )

    # when
    response = agent_client.get(f"{base(org)}/conversations/{conversation.id}/messages")

    # then
    assert response.status_code == 200
    assert response.json() == {
        "results": [
            {
                "id": asked.id,
                "text": "hi",
                "sender_kind": "contact",
                "sender_name": contact.name,
                "sender_user_id": None,
                "sender_contact_id": str(contact.id),
                "sender_auth_info": contact.sender_auth_info,
                "created_at": iso(asked.created_at),
            },
            {
                "id": answered.id,
                "text": "hello",
                "sender_kind": "agent",
                "sender_name": agent_user.display_name,
                "sender_user_id": agent_user.id,
                "sender_contact_id": None,
                "sender_auth_info": {},
                "created_at": iso(answered.created_at),
            },
        ]
    }


def test_agent_reply_is_stored_and_shown_to_the_visitor_by_first_name(
    org, agent_client, agent_user
):
    # given
    visitor = visitor_for(contact_with_trust(org, Contact.Trust.ANONYMOUS))
    conversation = ConversationFactory(contact=visitor.contact, device=visitor.device)

    # when
    response = agent_client.post(
        f"{base(org)}/conversations/{conversation.id}/messages", {"text": "On it!"}, format="json"
    )

    # then
    message = Message.objects.get()
    conversation.refresh_from_db()
    assert response.status_code == 201
    assert response.json() == {
        "id": message.id,
        "text": "On it!",
        "sender_kind": "agent",
        "sender_name": agent_user.display_name,
        "sender_user_id": agent_user.id,
        "sender_contact_id": None,
        "sender_auth_info": {},
        "created_at": iso(message.created_at),
    }
    assert conversation.last_message_at == message.created_at
    widget = visitor.client.get(f"/widget/sessions/{conversation.id}/messages").json()
    assert widget["results"][0]["sender_name"] == agent_user.first_name


def test_integration_reply_is_an_agent_message_named_after_the_key(org):
    # given
    client = api_key_client(org, READ, WRITE, name="Order bot")
    visitor = visitor_for(contact_with_trust(org, Contact.Trust.ANONYMOUS))
    conversation = ConversationFactory(contact=visitor.contact, device=visitor.device)

    # when
    response = client.post(
        f"{base(org)}/conversations/{conversation.id}/messages", {"text": "Shipped."}, format="json"
    )

    # then
    message = Message.objects.get()
    assert response.status_code == 201
    assert response.json()["sender_kind"] == "agent"
    assert response.json()["sender_name"] == "Order bot"
    assert response.json()["sender_user_id"] is None
    assert message.sender_api_key.name == "Order bot"
    widget = visitor.client.get(f"/widget/sessions/{conversation.id}/messages").json()
    assert widget["results"][0]["sender_name"] == "Order bot"


@pytest.mark.parametrize("body", [{}, {"text": ""}, {"text": "x" * 10_001}, {"text": 1}], ids=str)
def test_agent_reply_refuses_bad_text_and_writes_nothing(org, agent_client, body):
    conversation = ConversationFactory(contact=ContactFactory(org=org))
    before = write_counts()

    response = agent_client.post(
        f"{base(org)}/conversations/{conversation.id}/messages", body, format="json"
    )

    assert response.status_code == 400
    assert list(response.json()["error"]["fields"]) == ["text"]
    assert write_counts() == before


# --- close and assign -------------------------------------------------------------------------


def test_close_is_idempotent_and_then_nobody_can_post(org, agent_client, agent_user):
    # given
    visitor = visitor_for(contact_with_trust(org, Contact.Trust.ANONYMOUS))
    conversation = ConversationFactory(contact=visitor.contact, device=visitor.device)
    url = f"{base(org)}/conversations/{conversation.id}"

    # when
    first = agent_client.post(f"{url}/close")
    second = agent_client.post(f"{url}/close")

    # then
    conversation.refresh_from_db()
    assert first.status_code == second.status_code == 200
    assert first.json() == second.json()
    assert first.json()["status"] == "closed"
    assert first.json()["closed_at"] == iso(conversation.closed_at)
    notice = Message.objects.get()
    assert (notice.sender_kind, notice.body, notice.sender_user) == (
        "system",
        "Conversation closed.",
        agent_user,
    )
    before = write_counts()
    by_agent = agent_client.post(f"{url}/messages", {"text": "one more"}, format="json")
    by_visitor = visitor.client.post(
        f"/widget/sessions/{conversation.id}/messages", {"text": "wait"}, format="json"
    )
    closed = {"error": {"code": "conversation_closed", "message": "This conversation is closed."}}
    assert (by_agent.status_code, by_agent.json()) == (409, closed)
    assert (by_visitor.status_code, by_visitor.json()) == (409, closed)
    assert write_counts() == before


def test_assign_to_a_member_and_unassign(org, agent_client):
    # given
    colleague = UserFactory()
    MembershipFactory(user=colleague, org=org)
    conversation = ConversationFactory(contact=ContactFactory(org=org))
    url = f"{base(org)}/conversations/{conversation.id}/assign"

    # when
    assigned = agent_client.post(url, {"assignee": colleague.id}, format="json")
    assignee_after_assign = Conversation.objects.get().assignee
    unassigned = agent_client.post(url, {"assignee": None}, format="json")

    # then
    assert assigned.status_code == 200
    assert assigned.json()["assignee"] == {
        "id": colleague.id,
        "email": colleague.email,
        "name": colleague.display_name,
    }
    assert assignee_after_assign == colleague
    assert unassigned.status_code == 200
    assert unassigned.json()["assignee"] is None
    assert Conversation.objects.get().assignee is None


@pytest.mark.parametrize("who", ["stranger", "other-org member", "inactive member", "unknown"])
def test_assign_refuses_anyone_but_an_active_member(org, other_org, agent_client, who):
    # given
    conversation = ConversationFactory(contact=ContactFactory(org=org))
    user = UserFactory()
    if who == "other-org member":
        MembershipFactory(user=user, org=other_org)
    elif who == "inactive member":
        MembershipFactory(user=user, org=org)
        user.is_active = False
        user.save()
    assignee = 10**12 if who == "unknown" else user.id
    before = write_counts()

    # when
    response = agent_client.post(
        f"{base(org)}/conversations/{conversation.id}/assign", {"assignee": assignee}, format="json"
    )

    # then
    assert response.status_code == 400
    assert response.json() == {
        "error": {
            "code": "invalid",
            "message": "The request is invalid.",
            "fields": {"assignee": ["Must be an active member of this organization."]},
        }
    }
    assert write_counts() == before


@pytest.mark.parametrize("body", [{}, {"assignee": "1"}, {"assignee": True}, {"assignee": 2**63}])
def test_assign_refuses_malformed_bodies(org, agent_client, body):
    conversation = ConversationFactory(contact=ContactFactory(org=org))
    before = write_counts()

    response = agent_client.post(
        f"{base(org)}/conversations/{conversation.id}/assign", body, format="json"
    )

    assert response.status_code == 400
    assert list(response.json()["error"]["fields"]) == ["assignee"]
    assert write_counts() == before


# --- tenant isolation and scopes --------------------------------------------------------------


def foreign_rows(other_org):
    contact = ContactFactory(org=other_org)
    return contact, ConversationFactory(contact=contact)


def org_routes(org, contact, conversation) -> list[tuple[str, str, dict | None]]:
    conv = f"{base(org)}/conversations/{conversation.id}"
    return [
        ("get", f"{base(org)}/contacts", None),
        ("get", f"{base(org)}/contacts/{contact.id}", None),
        ("get", f"{base(org)}/conversations", None),
        ("get", conv, None),
        ("get", f"{conv}/messages", None),
        ("post", f"{conv}/messages", {"text": "hi"}),
        ("post", f"{conv}/close", None),
        ("post", f"{conv}/assign", {"assignee": None}),
    ]


def call(client, method: str, url: str, body: dict | None):
    return getattr(client, method)(url, body, format="json")


def test_agent_of_one_org_gets_404_on_every_route_of_another(org, other_org, agent_client):
    # given
    contact, conversation = foreign_rows(other_org)
    before = write_counts()

    # when
    responses = [
        call(agent_client, *route) for route in org_routes(other_org, contact, conversation)
    ]

    # then
    assert [(r.status_code, r.json()) for r in responses] == [(404, NOT_FOUND)] * 8
    assert write_counts() == before


def test_another_orgs_ids_under_ones_own_org_are_404(org, other_org, agent_client):
    # given
    contact, conversation = foreign_rows(other_org)
    before = write_counts()

    # when: the agent's own org in the path, another org's ids after it
    routes = org_routes(org, contact, conversation)
    responses = [call(agent_client, *route) for route in [routes[1], *routes[3:]]]

    # then
    assert [(r.status_code, r.json()) for r in responses] == [(404, NOT_FOUND)] * 6
    assert write_counts() == before


@pytest.mark.parametrize(
    "path", ["contacts/not-a-uuid", "conversations/not-a-uuid", "conversations/123/messages"]
)
def test_malformed_ids_are_404(org, agent_client, path):
    response = agent_client.get(f"{base(org)}/{path}")

    assert (response.status_code, response.json()) == (404, NOT_FOUND)


def test_api_key_of_one_org_gets_404_on_another(org, other_org):
    # given
    client = api_key_client(org, READ, WRITE, ApiKey.Scope.CONTACTS_READ, name="Everything bot")
    contact, conversation = foreign_rows(other_org)
    before = write_counts()

    # when
    foreign = [call(client, *route) for route in org_routes(other_org, contact, conversation)]
    own_path = [call(client, *route) for route in org_routes(org, contact, conversation)[3:]]

    # then
    assert [(r.status_code, r.json()) for r in foreign + own_path] == [(404, NOT_FOUND)] * 13
    assert write_counts() == before


@pytest.mark.parametrize(
    ("scopes", "allowed"),
    [
        ([ApiKey.Scope.WIDGET_AUTHENTICATE], set()),
        ([ApiKey.Scope.CONTACTS_READ], {0, 1}),
        ([READ], {2, 3, 4}),
        ([WRITE], {5, 6, 7}),
    ],
    ids=["widget-only", "contacts-read", "conversations-read", "conversations-write"],
)
def test_api_key_without_the_scope_gets_403_and_writes_nothing(org, scopes, allowed):
    # given
    client = api_key_client(org, *scopes)
    contact = ContactFactory(org=org)
    conversation = ConversationFactory(contact=contact)
    before = write_counts()

    # when
    responses = [call(client, *route) for route in org_routes(org, contact, conversation)]

    # then
    for index, response in enumerate(responses):
        if index in allowed:
            assert response.status_code in (200, 201), (index, response.content)
        else:
            assert (response.status_code, response.json()) == (403, FORBIDDEN), index
    if not allowed & {5, 6, 7}:
        assert write_counts() == before


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("put", "contacts"),
        ("patch", "contacts"),
        ("post", "contacts"),
        ("options", "contacts"),
        ("delete", "conversations/{conversation}"),
        ("put", "conversations/{conversation}/messages"),
    ],
)
def test_a_method_a_route_lacks_is_405_for_keys_as_for_agents(
    org, other_org, agent_client, method, path
):
    # given a key holding every scope, and another org's key
    scopes = [scope.value for scope in ApiKey.Scope]
    key, foreign_key = api_key_client(org, *scopes), api_key_client(other_org, *scopes)
    conversation = ConversationFactory(contact=ContactFactory(org=org))
    url = f"{base(org)}/{path.format(conversation=conversation.pk)}"
    before = write_counts()

    # when
    responses = [getattr(client, method)(url) for client in (key, agent_client, foreign_key)]

    # then: the route's answer, not a missing scope; another org's key still learns nothing
    assert [r.status_code for r in responses] == [405, 405, 404]
    assert responses[0].json() == responses[1].json()
    assert responses[0].json()["error"]["code"] == "method_not_allowed"
    assert write_counts() == before


def test_org_routes_need_credentials(org):
    response = APIClient().get(f"{base(org)}/conversations")

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"
