"""Who sees which conversation (SPEC §2): one matrix over trust, device, externalId and origin."""

import pytest
from rest_framework.test import APIClient

from contacts.models import Contact
from conversations.models import Conversation, Message
from tests.conversations.conftest import NOT_FOUND, visitor_for, visitor_with_trust
from tests.factories import (
    ContactFactory,
    ConversationFactory,
    DeviceFactory,
    MessageFactory,
    OrganizationFactory,
    VerifiedContactFactory,
)

pytestmark = pytest.mark.django_db

TRUSTS = [Contact.Trust.ANONYMOUS, Contact.Trust.NON_VERIFIED, Contact.Trust.VERIFIED]


def expected_visible(*, trust, same_device, same_external_id, created_verified) -> bool:
    if not same_external_id:
        return False
    if trust == Contact.Trust.VERIFIED:
        return created_verified
    return same_device


@pytest.mark.parametrize("operation", ["list", "read", "post"])
@pytest.mark.parametrize("created_verified", [True, False], ids=["created-verified", "created-un"])
@pytest.mark.parametrize("same_external_id", [True, False], ids=["same-ext", "other-ext"])
@pytest.mark.parametrize("same_device", [True, False], ids=["same-device", "other-device"])
@pytest.mark.parametrize("trust", TRUSTS)
def test_visibility_matrix(org, trust, same_device, same_external_id, created_verified, operation):
    # given: a conversation of the token's own contact, on this or another of its devices
    visitor = visitor_with_trust(org, trust)
    other_device = DeviceFactory(contact=visitor.contact)
    conversation = ConversationFactory(
        contact=visitor.contact,
        device=visitor.device if same_device else other_device,
        created_verified=created_verified,
        external_id="ext-a",
    )
    message = MessageFactory(conversation=conversation, body="hello")
    external_id = "ext-a" if same_external_id else "ext-b"
    visible = expected_visible(
        trust=trust,
        same_device=same_device,
        same_external_id=same_external_id,
        created_verified=created_verified,
    )
    url = f"/widget/sessions/{conversation.id}/messages?externalId={external_id}"

    # when
    if operation == "list":
        response = visitor.client.get(f"/widget/sessions?externalId={external_id}")
    elif operation == "read":
        response = visitor.client.get(url)
    else:
        response = visitor.client.post(url, {"text": "hi"}, format="json")

    # then
    if operation == "list":
        assert response.status_code == 200
        ids = [row["id"] for row in response.json()["results"]]
        assert ids == ([str(conversation.id)] if visible else [])
    elif not visible:
        assert response.status_code == 404
        assert response.json() == NOT_FOUND
    elif operation == "read":
        assert response.status_code == 200
        assert [row["id"] for row in response.json()["results"]] == [message.id]
    else:
        assert response.status_code == 201
    expected_messages = 2 if operation == "post" and visible else 1
    assert Message.objects.count() == expected_messages


@pytest.mark.parametrize("trust", [Contact.Trust.ANONYMOUS, Contact.Trust.VERIFIED])
def test_anonymous_and_verified_tokens_may_omit_the_external_id(org, trust):
    # given
    visitor = visitor_with_trust(org, trust)
    first = ConversationFactory(
        contact=visitor.contact,
        device=visitor.device,
        created_verified=trust == Contact.Trust.VERIFIED,
        external_id="ext-a",
    )
    second = ConversationFactory(
        contact=visitor.contact,
        device=visitor.device,
        created_verified=trust == Contact.Trust.VERIFIED,
        external_id="",
    )

    # when
    response = visitor.client.get("/widget/sessions")

    # then: without an externalId nothing is narrowed
    assert response.status_code == 200
    assert {row["id"] for row in response.json()["results"]} == {str(first.id), str(second.id)}


def test_non_verified_token_must_send_an_external_id_to_list(non_verified):
    # given
    ConversationFactory(contact=non_verified.contact, device=non_verified.device)

    # when
    response = non_verified.client.get("/widget/sessions")

    # then
    assert response.status_code == 400
    assert response.json() == {
        "error": {
            "code": "external_id_required",
            "message": "A non-verified contact must send an externalId.",
        }
    }


@pytest.mark.parametrize("body", [{}, {"externalId": ""}])
def test_non_verified_token_must_send_an_external_id_to_open(non_verified, body):
    # when
    response = non_verified.client.post("/widget/sessions", body, format="json")

    # then
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "external_id_required"
    assert Conversation.objects.count() == 0


def test_non_verified_visitor_typing_a_verified_email_sees_none_of_that_history(org):
    # given: a verified customer with history, and a browser claiming the same email (rule 1)
    customer = VerifiedContactFactory(org=org, email="vip@shop.test")
    history = ConversationFactory(contact=customer, created_verified=True, external_id="e")
    impostor = visitor_for(
        ContactFactory(org=org, trust=Contact.Trust.NON_VERIFIED, email="vip@shop.test")
    )

    # when
    listed = impostor.client.get("/widget/sessions?externalId=e")
    read = impostor.client.get(f"/widget/sessions/{history.id}/messages?externalId=e")

    # then
    assert listed.status_code == 200
    assert listed.json() == {"results": [], "next": None}
    assert read.status_code == 404
    assert read.json() == NOT_FOUND


@pytest.mark.parametrize("trust", TRUSTS)
def test_another_contacts_conversations_are_never_visible(org, trust):
    # given: conversations of another contact of each kind, one even created verified
    visitor = visitor_with_trust(org, trust)
    others = [
        ConversationFactory(contact=ContactFactory(org=org), external_id="x"),
        ConversationFactory(
            contact=VerifiedContactFactory(org=org), created_verified=True, external_id="x"
        ),
    ]

    # when
    listed = visitor.client.get("/widget/sessions?externalId=x")
    reads = [visitor.client.get(f"/widget/sessions/{c.id}/messages") for c in others]
    posts = [
        visitor.client.post(f"/widget/sessions/{c.id}/messages", {"text": "hi"}, format="json")
        for c in others
    ]

    # then
    assert listed.status_code == 200
    assert listed.json() == {"results": [], "next": None}
    assert [(r.status_code, r.json()) for r in reads + posts] == [(404, NOT_FOUND)] * 4
    assert Message.objects.count() == 0


def test_another_orgs_conversation_is_a_404_even_for_the_same_device(org):
    # given: a conversation in another org, pointed at this visitor's very device
    visitor = visitor_with_trust(org, Contact.Trust.ANONYMOUS)
    foreign_org = OrganizationFactory()
    foreign = ConversationFactory(contact=ContactFactory(org=foreign_org), device=visitor.device)

    # when
    read = visitor.client.get(f"/widget/sessions/{foreign.id}/messages")
    post = visitor.client.post(
        f"/widget/sessions/{foreign.id}/messages", {"text": "hi"}, format="json"
    )

    # then
    assert (read.status_code, read.json()) == (404, NOT_FOUND)
    assert (post.status_code, post.json()) == (404, NOT_FOUND)
    assert Message.objects.count() == 0


@pytest.mark.parametrize("conversation_id", ["not-a-uuid", "00000000-0000-0000-0000-000000000000"])
def test_unknown_and_malformed_conversation_ids_are_404(anonymous, conversation_id):
    read = anonymous.client.get(f"/widget/sessions/{conversation_id}/messages")
    post = anonymous.client.post(
        f"/widget/sessions/{conversation_id}/messages", {"text": "hi"}, format="json"
    )

    assert (read.status_code, read.json()) == (404, NOT_FOUND)
    assert (post.status_code, post.json()) == (404, NOT_FOUND)
    assert Message.objects.count() == 0


def test_sessions_routes_need_a_contact_token(org, anonymous):
    # given: a conversation and a client with the widget token only
    conversation = ConversationFactory(contact=anonymous.contact, device=anonymous.device)
    client = APIClient(HTTP_X_WIDGET_TOKEN=org.widget_token)

    # when
    responses = [
        client.get("/widget/sessions"),
        client.post("/widget/sessions", {}, format="json"),
        client.get(f"/widget/sessions/{conversation.id}/messages"),
        client.post(f"/widget/sessions/{conversation.id}/messages", {"text": "x"}, format="json"),
    ]

    # then
    assert [r.status_code for r in responses] == [401, 401, 401, 401]
    assert responses[0].json() == {
        "error": {
            "code": "not_authenticated",
            "message": "Authentication credentials were not provided or are not valid.",
        }
    }
    assert Conversation.objects.count() == 1
    assert Message.objects.count() == 0
