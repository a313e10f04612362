"""The widget's /widget/sessions routes: history, opening with fields, reading and sending."""

import base64
import json
from datetime import timedelta
from urllib.parse import quote

import pytest
from django.utils import timezone

from contacts.models import Contact
from conversations.models import Conversation, Message
from tests.conversations.conftest import visitor_for, visitor_with_trust
from tests.factories import ConversationFactory, DeviceFactory, MessageFactory, UserFactory

pytestmark = pytest.mark.django_db

EXTRA_FIELDS = [
    {"name": "order", "label": "Order number", "type": "text", "required": True},
    {"name": "contact_email", "label": "Email", "type": "email", "required": False},
    {"name": "items", "label": "Items", "type": "number", "required": False},
    {"name": "topic", "label": "Topic", "type": "select", "required": True, "options": ["a", "b"]},
    {"name": "consent", "label": "I agree", "type": "checkbox", "required": True},
]


def iso(value) -> str:
    return value.isoformat().replace("+00:00", "Z")


def invalid(fields: dict) -> dict:
    return {"error": {"code": "invalid", "message": "The request is invalid.", "fields": fields}}


# --- history -----------------------------------------------------------------------------------


def test_history_lists_newest_first_with_the_last_message(anonymous):
    # given
    now = timezone.now()
    older = ConversationFactory(
        contact=anonymous.contact,
        device=anonymous.device,
        created_at=now - timedelta(hours=2),
        last_message_at=now - timedelta(hours=1),
        external_id="ext-1",
    )
    MessageFactory(conversation=older, body="first", created_at=now - timedelta(hours=2))
    last = MessageFactory(
        conversation=older,
        body="reply",
        sender_kind=Message.SenderKind.AGENT,
        created_at=now - timedelta(hours=1),
    )
    newer = ConversationFactory(contact=anonymous.contact, device=anonymous.device, created_at=now)

    # when
    response = anonymous.client.get("/widget/sessions")

    # then
    assert response.status_code == 200
    assert response.json() == {
        "results": [
            {
                "id": str(newer.id),
                "status": "open",
                "created_at": iso(newer.created_at),
                "last_message_at": iso(newer.last_message_at),
                "external_id": None,
                "last_message": None,
            },
            {
                "id": str(older.id),
                "status": "open",
                "created_at": iso(older.created_at),
                "last_message_at": iso(older.last_message_at),
                "external_id": "ext-1",
                "last_message": {
                    "text": "reply",
                    "sender_kind": "agent",
                    "created_at": iso(last.created_at),
                },
            },
        ],
        "next": None,
    }


def test_history_timestamps_are_utc_whatever_time_zone_is_active(anonymous):
    # given
    conversation = ConversationFactory(contact=anonymous.contact, device=anonymous.device)
    message = MessageFactory(conversation=conversation, body="hi")

    # when
    with timezone.override("Asia/Kolkata"):
        item = anonymous.client.get("/widget/sessions").json()["results"][0]

    # then
    assert item["created_at"] == iso(conversation.created_at)
    assert item["last_message"]["created_at"] == iso(message.created_at)
    assert item["created_at"].endswith("Z")


def test_history_pages_by_cursor_without_gaps_or_repeats(anonymous):
    # given: 45 conversations, several sharing one created_at to exercise the tie-break
    now = timezone.now()
    conversations = [
        ConversationFactory(
            contact=anonymous.contact,
            device=anonymous.device,
            created_at=now - timedelta(minutes=index // 3),
        )
        for index in range(45)
    ]

    # when: follow `next` to the end
    seen, pages, url = [], [], "/widget/sessions"
    while url:
        body = anonymous.client.get(url).json()
        pages.append(len(body["results"]))
        seen += [row["id"] for row in body["results"]]
        url = f"/widget/sessions?cursor={body['next']}" if body["next"] else None

    # then
    expected = sorted(conversations, key=lambda c: (c.created_at, str(c.id)), reverse=True)
    assert pages == [20, 20, 5]
    assert seen == [str(c.id) for c in expected]


def cursor_of(value: str, pk: str = "00000000-0000-0000-0000-000000000001") -> str:
    raw = json.dumps([value, pk]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize(
    "cursor",
    [
        "garbage!",
        "bm90IGpzb24",
        "WyJub3QgYSBkYXRlIiwiMSJd",
        "W10",
        "x" * 300,
        # well-formed instants that are not a date in UTC, at either edge of the calendar
        cursor_of("0001-01-01T00:00:00+14:00"),
        cursor_of("9999-12-31T23:59:59-14:00"),
    ],
)
def test_history_refuses_an_invalid_cursor_with_400(anonymous, cursor):
    response = anonymous.client.get(f"/widget/sessions?cursor={cursor}")

    assert response.status_code == 400
    assert response.json() == {
        "error": {"code": "invalid_cursor", "message": "The cursor is not valid."}
    }


@pytest.mark.parametrize("external_id", ["x" * 256, "a\x00b"])
def test_history_and_posting_refuse_a_bad_external_id_and_post_nothing(anonymous, external_id):
    conversation = ConversationFactory(contact=anonymous.contact, device=anonymous.device)
    query = f"?externalId={quote(external_id)}"

    listed = anonymous.client.get(f"/widget/sessions{query}")
    posted = anonymous.client.post(
        f"/widget/sessions/{conversation.id}/messages{query}", {"text": "hi"}, format="json"
    )

    for response in (listed, posted):
        assert response.status_code == 400
        assert list(response.json()["error"]["fields"]) == ["externalId"]
    assert not Message.objects.exists()


def test_an_empty_external_id_is_no_external_id(anonymous):
    ConversationFactory(contact=anonymous.contact, device=anonymous.device, external_id="")

    response = anonymous.client.get("/widget/sessions?externalId=")

    assert response.status_code == 200
    assert len(response.json()["results"]) == 1


# --- opening ---------------------------------------------------------------------------------


def test_unknown_field_names_are_named_back_only_as_real_ones_can_be(org, anonymous):
    # given an org with form fields, and answers under 25 short and one huge unknown name
    org.extra_data_collection_fields = EXTRA_FIELDS
    org.save()
    fields = {f"extra{n}": "x" for n in range(25)} | {"y" * 50_000: "x"}

    # when
    response = anonymous.client.post(
        "/widget/sessions", {"externalId": "page", "fields": fields}, format="json"
    )

    # then twenty are named, the rest counted, and the body stays small
    errors = response.json()["error"]["fields"]
    assert response.status_code == 400
    assert len(response.content) < 5_000
    assert len([key for key in errors if key.startswith("fields.extra")]) == 20
    assert errors["fields"] == ["6 more unknown fields."]
    assert not Conversation.objects.exists()


def test_open_records_device_contact_trust_external_id_and_sender_auth_info(verified):
    # when
    response = verified.client.post("/widget/sessions", {"externalId": "page-7"}, format="json")

    # then
    assert response.status_code == 201
    conversation = Conversation.objects.get()
    assert response.json() == {
        "id": str(conversation.id),
        "status": "open",
        "created_at": iso(conversation.created_at),
        "external_id": "page-7",
        "fields": {},
    }
    assert conversation.org_id == verified.contact.org_id
    assert conversation.contact == verified.contact
    assert conversation.device == verified.device
    assert conversation.created_verified is True
    assert conversation.sender_auth_info == verified.contact.sender_auth_info
    assert conversation.sender_auth_info["authType"] == "VERIFIED"


def test_open_by_a_non_verified_token_is_not_created_verified(non_verified):
    response = non_verified.client.post("/widget/sessions", {"externalId": "e"}, format="json")

    assert response.status_code == 201
    conversation = Conversation.objects.get()
    assert conversation.created_verified is False
    assert conversation.external_id == "e"
    assert conversation.sender_auth_info["authType"] == "NON_VERIFIED"


def test_open_types_and_keeps_the_answers_to_extra_fields(org, anonymous):
    # given
    org.extra_data_collection_fields = EXTRA_FIELDS
    org.save()
    fields = {
        "order": "  A-1001 ",
        "contact_email": "Me@Example.TEST",
        "items": 3,
        "topic": "b",
        "consent": True,
    }

    # when
    response = anonymous.client.post("/widget/sessions", {"fields": fields}, format="json")

    # then
    expected = {
        "order": "A-1001",
        "contact_email": "me@example.test",
        "items": 3,
        "topic": "b",
        "consent": True,
    }
    assert response.status_code == 201
    assert response.json()["fields"] == expected
    assert Conversation.objects.get().fields == expected


NOT_A_NUMBER = f"Must be a number between -{2**53 - 1} and {2**53 - 1}."


@pytest.mark.parametrize(
    ("fields", "errors"),
    [
        (
            {},
            {
                "fields.order": ["This field is required."],
                "fields.topic": ["This field is required."],
                "fields.consent": ["This field is required."],
            },
        ),
        (
            {"order": "1", "topic": "a", "consent": True, "shoe_size": 44},
            {"fields.shoe_size": ["Unknown field."]},
        ),
        (
            {"order": 1001, "topic": "c", "consent": "yes", "items": "3", "contact_email": "no"},
            {
                "fields.order": ["Must be a string."],
                "fields.topic": ["Must be one of the field's options."],
                "fields.consent": ["Must be true or false."],
                "fields.items": [NOT_A_NUMBER],
                "fields.contact_email": ["Enter a valid email address."],
            },
        ),
        (
            {"order": "1", "topic": "a", "consent": True, "items": 10**400},
            {"fields.items": [NOT_A_NUMBER]},
        ),
        (
            {"order": "1", "topic": "a", "consent": True, "items": -(2**53)},
            {"fields.items": [NOT_A_NUMBER]},
        ),
        (
            {"order": "x" * 1001, "topic": "a", "consent": False, "items": True},
            {
                "fields.order": ["Must be at most 1000 characters."],
                "fields.consent": ["This field is required."],
                "fields.items": [NOT_A_NUMBER],
            },
        ),
    ],
    ids=["required", "unknown", "wrong-types", "huge-integer", "past-a-safe-integer", "limits"],
)
def test_open_refuses_bad_field_answers_and_writes_nothing(org, anonymous, fields, errors):
    # given
    org.extra_data_collection_fields = EXTRA_FIELDS
    org.save()

    # when
    response = anonymous.client.post("/widget/sessions", {"fields": fields}, format="json")

    # then
    assert response.status_code == 400
    assert response.json() == invalid(errors)
    assert Conversation.objects.count() == 0


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        ({"fields": ["a"]}, {"fields": ['Expected a dictionary of items but got type "list".']}),
        ({"externalId": 7}, {"externalId": ["Must be a string."]}),
        (
            {"externalId": "e" * 256},
            {"externalId": ["Ensure this field has no more than 255 characters."]},
        ),
    ],
)
def test_open_refuses_malformed_bodies(anonymous, body, errors):
    response = anonymous.client.post("/widget/sessions", body, format="json")

    assert response.status_code == 400
    assert response.json() == invalid(errors)
    assert Conversation.objects.count() == 0


def test_open_is_refused_to_browser_tokens_when_the_org_requires_verified_identity(
    org, anonymous, verified
):
    # given
    org.require_verified_identity = True
    org.save()

    # when
    refused = anonymous.client.post("/widget/sessions", {}, format="json")
    allowed = verified.client.post("/widget/sessions", {}, format="json")

    # then
    assert refused.status_code == 403
    assert refused.json() == {
        "error": {
            "code": "verified_identity_required",
            "message": "This organization chats with verified contacts only.",
        }
    }
    assert allowed.status_code == 201
    assert Conversation.objects.filter(contact=anonymous.contact).count() == 0


# --- messages ----------------------------------------------------------------------------------


def test_thread_is_oldest_first_names_agents_by_first_name_only(org, anonymous):
    # given
    agent = UserFactory(first_name="Sam", last_name="Secret", email="sam@staff.test")
    conversation = ConversationFactory(contact=anonymous.contact, device=anonymous.device)
    mine = MessageFactory(conversation=conversation, body="hi", sender_contact=anonymous.contact)
    reply = MessageFactory(
        conversation=conversation,
        body="hello!",
        sender_kind=Message.SenderKind.AGENT,
        sender_user=agent,
    )
    notice = MessageFactory(
        conversation=conversation, body="Closed.", sender_kind=Message.SenderKind.SYSTEM
    )

    # when
    response = anonymous.client.get(f"/widget/sessions/{conversation.id}/messages")

    # then
    assert response.status_code == 200
    assert response.json() == {
        "results": [
            {
                "id": mine.id,
                "text": "hi",
                "sender_kind": "contact",
                "sender_name": None,
                "created_at": iso(mine.created_at),
            },
            {
                "id": reply.id,
                "text": "hello!",
                "sender_kind": "agent",
                "sender_name": "Sam",
                "created_at": iso(reply.created_at),
            },
            {
                "id": notice.id,
                "text": "Closed.",
                "sender_kind": "system",
                "sender_name": None,
                "created_at": iso(notice.created_at),
            },
        ]
    }


def test_thread_after_returns_only_newer_messages(anonymous):
    # given
    conversation = ConversationFactory(contact=anonymous.contact, device=anonymous.device)
    first, second, third = MessageFactory.create_batch(3, conversation=conversation)

    # when
    response = anonymous.client.get(f"/widget/sessions/{conversation.id}/messages?after={first.id}")

    # then
    assert [row["id"] for row in response.json()["results"]] == [second.id, third.id]


@pytest.mark.parametrize("after", ["-1", "abc", "1.5", str(2**63)])
def test_thread_refuses_a_bad_after(anonymous, after):
    conversation = ConversationFactory(contact=anonymous.contact, device=anonymous.device)

    response = anonymous.client.get(f"/widget/sessions/{conversation.id}/messages?after={after}")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid"
    assert list(response.json()["error"]["fields"]) == ["after"]


def test_send_stores_the_message_with_the_contacts_sender_auth_info(non_verified):
    # given
    conversation = ConversationFactory(
        contact=non_verified.contact, device=non_verified.device, external_id="e"
    )
    before = conversation.last_message_at

    # when
    response = non_verified.client.post(
        f"/widget/sessions/{conversation.id}/messages?externalId=e",
        {"text": "  my order is late\n"},
        format="json",
    )

    # then
    message = Message.objects.get()
    conversation.refresh_from_db()
    assert response.status_code == 201
    assert response.json() == {
        "id": message.id,
        "text": "  my order is late\n",
        "sender_kind": "contact",
        "sender_name": None,
        "created_at": iso(message.created_at),
    }
    assert message.sender_contact == non_verified.contact
    assert message.sender_auth_info == non_verified.contact.sender_auth_info
    assert message.sender_auth_info["authType"] == "NON_VERIFIED"
    assert message.org_id == conversation.org_id
    assert conversation.last_message_at == message.created_at > before


def test_send_ignores_a_client_sent_sender_auth_info(anonymous):
    conversation = ConversationFactory(contact=anonymous.contact, device=anonymous.device)
    forged = {"authType": "VERIFIED", "verified": True}

    response = anonymous.client.post(
        f"/widget/sessions/{conversation.id}/messages",
        {"text": "hi", "senderAuthInfo": forged, "sender_auth_info": forged},
        format="json",
    )

    assert response.status_code == 201
    assert Message.objects.get().sender_auth_info["authType"] == "ANONYMOUS"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, "This field is required."),
        ({"text": ""}, "This field may not be blank."),
        ({"text": " \n\t "}, "This field may not be blank."),
        ({"text": "x" * 10_001}, "Ensure this field has no more than 10000 characters."),
        ({"text": 42}, "Must be a string."),
        ({"text": None}, "This field may not be null."),
        ({"text": ["hi"]}, "Must be a string."),
    ],
    ids=["missing", "empty", "whitespace", "too-long", "number", "null", "list"],
)
def test_send_refuses_bad_text_and_writes_nothing(anonymous, body, message):
    # given
    conversation = ConversationFactory(contact=anonymous.contact, device=anonymous.device)
    before = conversation.last_message_at

    # when
    response = anonymous.client.post(
        f"/widget/sessions/{conversation.id}/messages", body, format="json"
    )

    # then
    conversation.refresh_from_db()
    assert response.status_code == 400
    assert response.json() == invalid({"text": [message]})
    assert Message.objects.count() == 0
    assert conversation.last_message_at == before


def test_send_accepts_exactly_ten_thousand_characters(anonymous):
    conversation = ConversationFactory(contact=anonymous.contact, device=anonymous.device)

    response = anonymous.client.post(
        f"/widget/sessions/{conversation.id}/messages", {"text": "é" * 10_000}, format="json"
    )

    assert response.status_code == 201
    assert len(Message.objects.get().body) == 10_000


@pytest.mark.parametrize(
    "raw", [b'{"text": "a\\u0000b"}', b'{"text": "\\ud800"}', b'{"text": NaN}', b"not json"]
)
def test_send_refuses_nul_lone_surrogates_and_bad_json(anonymous, raw):
    conversation = ConversationFactory(contact=anonymous.contact, device=anonymous.device)

    response = anonymous.client.post(
        f"/widget/sessions/{conversation.id}/messages", raw, content_type="application/json"
    )

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "parse_error"
    assert Message.objects.count() == 0


def test_send_into_a_closed_conversation_is_409_and_writes_nothing(anonymous):
    # given
    conversation = ConversationFactory(
        contact=anonymous.contact,
        device=anonymous.device,
        status=Conversation.Status.CLOSED,
        closed_at=timezone.now(),
    )
    before = conversation.last_message_at

    # when
    response = anonymous.client.post(
        f"/widget/sessions/{conversation.id}/messages", {"text": "hello?"}, format="json"
    )

    # then
    conversation.refresh_from_db()
    assert response.status_code == 409
    assert response.json() == {
        "error": {"code": "conversation_closed", "message": "This conversation is closed."}
    }
    assert Message.objects.count() == 0
    assert conversation.last_message_at == before


def test_a_sent_message_is_stored_as_answered_and_becomes_the_conversations_last(verified):
    # given: a verified contact's conversation with an earlier message
    conversation = ConversationFactory(
        contact=verified.contact, device=verified.device, created_verified=True
    )
    MessageFactory(conversation=conversation, body="earlier")
    before = timezone.now()

    # when
    response = verified.client.post(
        f"/widget/sessions/{conversation.id}/messages",
        {"text": "where is my order?"},
        format="json",
    )

    # then: the row holds what the answer says, and the conversation points at it
    assert response.status_code == 201, response.content
    body = response.json()
    stored = Message.objects.get(pk=body["id"])
    assert body == {
        "id": stored.pk,
        "text": "where is my order?",
        "sender_kind": "contact",
        "sender_name": None,
        "created_at": iso(stored.created_at),
    }
    assert (stored.org_id, stored.conversation_id) == (conversation.org_id, conversation.pk)
    assert stored.sender_contact_id == verified.contact.pk
    assert stored.sender_user_id is None and stored.sender_api_key_id is None
    assert stored.sender_auth_info == verified.contact.sender_auth_info
    assert stored.sender_auth_info["verified"] is True
    assert before <= stored.created_at <= timezone.now()
    conversation.refresh_from_db()
    assert conversation.last_message_id == stored.pk
    assert conversation.last_message_at == stored.created_at


def test_a_verified_contact_continues_a_verified_conversation_from_another_device(org):
    # given: the same verified customer signed in on a laptop and a phone
    laptop = visitor_with_trust(org, Contact.Trust.VERIFIED)
    phone = visitor_for(laptop.contact, DeviceFactory(contact=laptop.contact))
    opened = laptop.client.post("/widget/sessions", {}, format="json").json()

    # when
    sent = phone.client.post(
        f"/widget/sessions/{opened['id']}/messages", {"text": "from my phone"}, format="json"
    )
    listed = phone.client.get("/widget/sessions")

    # then
    assert sent.status_code == 201
    assert [row["id"] for row in listed.json()["results"]] == [opened["id"]]
    assert listed.json()["results"][0]["last_message"]["text"] == "from my phone"
