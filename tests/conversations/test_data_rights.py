"""Data rights: operators export everything about a contact, or erase its personal data."""

import io

import pytest
from django.core.management import call_command

from contacts.models import Contact, Device
from contacts.services import AuthMethod, VerifiedProfile, VerifiedProof, contact_verified_sign_in
from conversations.data_rights import contact_erase
from conversations.models import Conversation, Message
from conversations.services import device_history_adopt
from identity.models import ApiKey, AuditEvent
from tests.conversations.conftest import (
    FORBIDDEN,
    NOT_FOUND,
    Visitor,
    api_key_client,
    visitor_for,
    visitor_with_trust,
)
from tests.factories import (
    ContactFactory,
    ConversationFactory,
    DeviceFactory,
    MessageFactory,
    VerifiedContactFactory,
)

pytestmark = pytest.mark.django_db

NAME, EMAIL, PHONE = "Grace Hopper", "grace.hopper@navy.test", "+1-555-0199"
USER_ID, AVATAR = "navy-user-1906", "https://cdn.navy.test/grace-avatar.png"
TRUSTED, BROWSER = "cobol-compiler-a0", "bug-in-relay-70"
FORM_ANSWER, CHAT_CONTEXT = "order-number-1947", "looking at invoice 1947"
USER_AGENT = "Mozilla/5.0 (GraceBook; Harvard Mark II)"
WORDS = "my card number is 4111-1111-1111-1111"
PERSONAL = (NAME, EMAIL, PHONE, USER_ID, AVATAR, TRUSTED, BROWSER, FORM_ANSWER, CHAT_CONTEXT)
PERSONAL += (USER_AGENT, WORDS, "ext_grace_page")
LATER = "the verified customer, writing after the adoption"


def iso(value) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def url(org, contact_id, verb: str) -> str:
    return f"/api/v1/orgs/{org.id}/contacts/{contact_id}/{verb}"


def auth_info(contact: Contact) -> dict:
    return {
        "authType": "VERIFIED",
        "method": "api_key",
        "verified": True,
        "verifiedAt": iso(contact.verified_at),
        "authVar": {"uid": str(contact.pk), "keyId": "csk_0123456789abcdef"},
    }


def grace(org):
    """A verified contact with something in every personal field, a device, a conversation with
    form answers, one message of hers and one agent reply."""
    contact = VerifiedContactFactory(
        org=org,
        name=NAME,
        email=EMAIL,
        phone=PHONE,
        user_id=USER_ID,
        avatar_url=AVATAR,
        language="en-US",
        custom_data={"compiler": TRUSTED},
        non_verified_custom_data={"note": BROWSER},
        chat_context=CHAT_CONTEXT,
        http_action_overrides={"ticket": {"ref": TRUSTED}},
    )
    contact.sender_auth_info = auth_info(contact)
    contact.save()
    device = DeviceFactory(contact=contact, user_agent=USER_AGENT)
    conversation = ConversationFactory(
        contact=contact,
        device=device,
        created_verified=True,
        external_id="ext_grace_page",
        fields={"order": FORM_ANSWER},
        sender_auth_info=auth_info(contact),
    )
    mine = MessageFactory(
        conversation=conversation,
        sender_contact=contact,
        body=WORDS,
        sender_auth_info=auth_info(contact),
    )
    reply = MessageFactory(
        conversation=conversation, sender_kind=Message.SenderKind.AGENT, body="Thanks, Grace."
    )
    return contact, device, conversation, mine, reply


def adopted_browser(org) -> tuple[Visitor, Visitor, Conversation, Message, Message]:
    """An anonymous browser that answered the form and wrote, then a verified customer on the same
    browser adopted its conversation and wrote too; an agent replied before and after."""
    browser = visitor_with_trust(org, Contact.Trust.ANONYMOUS)
    conversation = ConversationFactory(
        contact=browser.contact,
        device=browser.device,
        external_id="ext_grace_page",
        fields={"phone": PHONE},
        sender_auth_info=browser.contact.sender_auth_info,
    )
    words = MessageFactory(
        conversation=conversation,
        sender_contact=browser.contact,
        body=WORDS,
        sender_auth_info=browser.contact.sender_auth_info,
    )
    MessageFactory(
        conversation=conversation, sender_kind=Message.SenderKind.AGENT, body="Which card?"
    )
    customer = visitor_with_trust(org, Contact.Trust.VERIFIED)
    adopted = device_history_adopt(
        org=org, verified_principal=customer.principal(), previous_device=browser.device
    )
    assert adopted == 1
    later = MessageFactory(
        conversation=conversation,
        sender_contact=customer.contact,
        body=LATER,
        sender_auth_info=customer.contact.sender_auth_info,
    )
    MessageFactory(
        conversation=conversation, sender_kind=Message.SenderKind.AGENT, body="Card replaced."
    )
    conversation.refresh_from_db()
    return browser, customer, conversation, words, later


def stored_rows() -> str:
    """Every row of contacts, devices, conversations, messages and the audit trail, as text."""
    out = io.StringIO()
    call_command("dumpdata", "contacts", "conversations", "identity.auditevent", stdout=out)
    return out.getvalue()


# --- export ----------------------------------------------------------------------------------


def test_operator_exports_everything_stored_about_a_contact(org, operator_client, operator_user):
    # given
    contact, device, conversation, mine, reply = grace(org)
    ConversationFactory(contact=ContactFactory(org=org))  # someone else's: not exported

    # when
    response = operator_client.get(url(org, contact.pk, "export"), REMOTE_ADDR="203.0.113.9")

    # then
    assert response.status_code == 200
    assert response.json() == {
        "contact": {
            "id": str(contact.pk),
            "trust": "verified",
            "name": NAME,
            "email": EMAIL,
            "phone": PHONE,
            "avatar_url": AVATAR,
            "language": "en-US",
            "user_id": USER_ID,
            "custom_data": {"compiler": TRUSTED},
            "non_verified_custom_data": {"note": BROWSER},
            "chat_context": CHAT_CONTEXT,
            "http_action_overrides": {"ticket": {"ref": TRUSTED}},
            "sender_auth_info": auth_info(contact),
            "verified_at": iso(contact.verified_at),
            "first_seen_at": iso(contact.first_seen_at),
            "last_seen_at": iso(contact.last_seen_at),
            "erased_at": None,
        },
        "devices": [
            {
                "id": str(device.pk),
                "created_at": iso(device.created_at),
                "last_seen_at": iso(device.last_seen_at),
                "user_agent": USER_AGENT,
                "revoked_at": None,
            }
        ],
        "conversations": [
            {
                "id": str(conversation.pk),
                "status": "open",
                "external_id": "ext_grace_page",
                "created_verified": True,
                "device_id": str(device.pk),
                "fields": {"order": FORM_ANSWER},
                "sender_auth_info": auth_info(contact),
                "created_at": iso(conversation.created_at),
                "last_message_at": iso(conversation.last_message_at),
                "closed_at": None,
                "messages": [
                    {
                        "id": mine.pk,
                        "sender_kind": "contact",
                        "text": WORDS,
                        "sender_auth_info": auth_info(contact),
                        "created_at": iso(mine.created_at),
                    },
                    {
                        "id": reply.pk,
                        "sender_kind": "agent",
                        "text": "Thanks, Grace.",
                        "sender_auth_info": {},
                        "created_at": iso(reply.created_at),
                    },
                ],
            }
        ],
    }
    event = AuditEvent.objects.get()
    assert (event.org, event.action, event.actor_user, event.target, event.ip, event.details) == (
        org,
        "contact.exported",
        operator_user,
        str(contact.pk),
        "203.0.113.9",
        {"devices": 1, "conversations": 1, "messages": 2},
    )


def test_export_runs_a_fixed_number_of_queries(org, operator_client, django_assert_num_queries):
    # given: two conversations with two messages each
    contact, device, *_ = grace(org)
    second = ConversationFactory(contact=contact, device=device)
    MessageFactory.create_batch(2, conversation=second, sender_contact=contact)

    # then: auth (user, membership), the service's savepoint pair, contact, devices,
    # conversations, messages and the audit insert
    with django_assert_num_queries(9):
        response = operator_client.get(url(org, contact.pk, "export"))
    assert response.status_code == 200
    assert [len(c["messages"]) for c in response.json()["conversations"]] == [2, 2]


# --- erase -----------------------------------------------------------------------------------


def test_erase_removes_personal_data_from_every_table(org, operator_client, operator_user):
    # given
    contact, *_ = grace(org)
    before = stored_rows()
    assert all(value in before for value in PERSONAL)

    # when
    response = operator_client.post(url(org, contact.pk, "erase"), REMOTE_ADDR="203.0.113.9")

    # then
    assert response.status_code == 200
    assert response.json() == {"erased": True}
    after = stored_rows()
    assert [value for value in PERSONAL if value in after] == []
    event = AuditEvent.objects.get()
    assert (event.org, event.action, event.actor_user, event.target, event.ip, event.details) == (
        org,
        "contact.erased",
        operator_user,
        str(contact.pk),
        "203.0.113.9",
        {"trust": "verified", "devices_revoked": 1, "conversations": 1, "messages": 1},
    )


def test_erase_keeps_trust_and_how_it_was_established(org, operator_client):
    # given
    contact, device, conversation, *_ = grace(org)
    verified_at = contact.verified_at

    # when
    operator_client.post(url(org, contact.pk, "erase"))

    # then
    contact.refresh_from_db()
    kept_auth = {
        "authType": "VERIFIED",
        "method": "api_key",
        "verified": True,
        "authVar": {"uid": str(contact.pk)},
    }
    assert (contact.trust, contact.verified_at, contact.erased_at is not None) == (
        "verified",
        verified_at,
        True,
    )
    assert {
        field: getattr(contact, field)
        for field in ("name", "email", "phone", "avatar_url", "language", "user_id")
    } == dict.fromkeys(("name", "email", "phone", "avatar_url", "language", "user_id"), "")
    assert (
        contact.custom_data,
        contact.non_verified_custom_data,
        contact.http_action_overrides,
        contact.chat_context,
        contact.sender_auth_info,
    ) == ({}, {}, {}, "", kept_auth)
    conversation.refresh_from_db()
    assert (conversation.fields, conversation.external_id, conversation.sender_auth_info) == (
        {},
        "",
        kept_auth,
    )
    assert list(Message.objects.order_by("pk").values_list("body", "sender_auth_info")) == [
        ("[erased]", {}),
        ("Thanks, Grace.", {}),
    ]
    device.refresh_from_db()
    assert (device.revoked_at is not None, device.user_agent) == (True, "")


def test_erased_contacts_tokens_are_refused(org, operator_client):
    # given: a browser holding a live token
    contact = ContactFactory(org=org, trust=Contact.Trust.NON_VERIFIED, name=NAME, email=EMAIL)
    visitor = visitor_for(contact)
    assert visitor.client.get("/widget/me").json() == {
        "id": str(contact.pk),
        "trust": "non_verified",
        "name": NAME,
        "email": EMAIL,
    }

    # when
    operator_client.post(url(org, contact.pk, "erase"))

    # then
    assert visitor.client.get("/widget/me").status_code == 401
    assert visitor.client.get("/widget/sessions?externalId=x").status_code == 401


def test_erase_reaches_messages_written_before_an_adoption(org, operator_client):
    # given: an anonymous browser's conversation, adopted by a verified contact
    anonymous = ContactFactory(org=org)
    anonymous_device = DeviceFactory(contact=anonymous)
    verified = VerifiedContactFactory(org=org)
    adopted = ConversationFactory(contact=verified, device=anonymous_device, created_verified=True)
    MessageFactory(conversation=adopted, sender_contact=anonymous, body=WORDS)

    # when: the anonymous contact is erased
    operator_client.post(url(org, anonymous.pk, "erase"))

    # then: its words are gone although the conversation is the verified contact's now
    assert list(Message.objects.values_list("body", flat=True)) == ["[erased]"]


def test_erasing_twice_changes_nothing_more(org, operator_client):
    # given
    contact, *_ = grace(org)
    operator_client.post(url(org, contact.pk, "erase"))
    contact.refresh_from_db()
    erased_at = contact.erased_at

    # when
    response = operator_client.post(url(org, contact.pk, "erase"))

    # then
    assert (response.status_code, response.json()) == (200, {"erased": True})
    contact.refresh_from_db()
    assert contact.erased_at == erased_at
    assert list(AuditEvent.objects.values_list("action", flat=True)) == ["contact.erased"]


def test_verified_sign_in_after_erasure_starts_a_fresh_contact(org):
    # given
    contact, *_ = grace(org)
    contact_erase(org=org, contact_id=contact.pk, actor_user=None)

    # when: the customer's backend signs the same user in again
    issued = contact_verified_sign_in(
        org=org,
        profile=VerifiedProfile(email=EMAIL, user_id=USER_ID, name=NAME),
        proof=VerifiedProof(method=AuthMethod.API_KEY, key_id="csk_0123456789abcdef"),
    )

    # then: a new contact; the erased one stays erased
    assert issued.contact.pk != contact.pk
    contact.refresh_from_db()
    assert (contact.email, contact.user_id) == ("", "")


def test_erase_leaves_other_contacts_alone(org, operator_client):
    # given
    contact, *_ = grace(org)
    other = VerifiedContactFactory(org=org, custom_data={"plan": "gold"})
    other_conversation = ConversationFactory(contact=other, fields={"order": "A-1"})
    MessageFactory(conversation=other_conversation, sender_contact=other, body="hello")
    other_device = DeviceFactory(contact=other)

    # when
    operator_client.post(url(org, contact.pk, "erase"))

    # then
    other.refresh_from_db()
    other_conversation.refresh_from_db()
    other_device.refresh_from_db()
    assert (other.erased_at, other.custom_data, other_device.revoked_at) == (
        None,
        {"plan": "gold"},
        None,
    )
    assert other_conversation.fields == {"order": "A-1"}
    assert Message.objects.filter(conversation=other_conversation).get().body == "hello"


# --- adopted history -------------------------------------------------------------------------


def test_export_includes_what_the_contact_gave_in_a_conversation_adopted_since(
    org, operator_client
):
    # given
    browser, _, conversation, words, _ = adopted_browser(org)

    # when: the browser contact, whose words erase would blank, is exported
    response = operator_client.get(url(org, browser.contact.pk, "export"))

    # then: the conversation as it opened it, with its own words only
    assert response.status_code == 200
    assert response.json()["conversations"] == [
        {
            "id": str(conversation.pk),
            "status": "open",
            "external_id": "ext_grace_page",
            "created_verified": True,
            "device_id": str(browser.device.pk),
            "fields": {"phone": PHONE},
            "sender_auth_info": browser.contact.sender_auth_info,
            "created_at": iso(conversation.created_at),
            "last_message_at": iso(conversation.last_message_at),
            "closed_at": None,
            "messages": [
                {
                    "id": words.pk,
                    "sender_kind": "contact",
                    "text": WORDS,
                    "sender_auth_info": browser.contact.sender_auth_info,
                    "created_at": iso(words.created_at),
                }
            ],
        }
    ]
    assert AuditEvent.objects.get().details == {"devices": 1, "conversations": 1, "messages": 1}


def test_export_of_the_earlier_contact_holds_nothing_the_adopting_contact_wrote(
    org, operator_client
):
    # given
    browser, customer, *_ = adopted_browser(org)

    # when
    response = operator_client.get(url(org, browser.contact.pk, "export"))

    # then: its words are there; the customer's, its id and the agents' replies are not
    body = response.content.decode()
    assert [
        message["text"]
        for conversation in response.json()["conversations"]
        for message in conversation["messages"]
    ] == [WORDS]
    assert [
        value for value in (LATER, str(customer.contact.pk), "Card replaced.") if value in body
    ] == []


def test_export_and_erase_cover_the_same_messages(org, operator_client):
    # given: two adoptions; the first browser also wrote from a second device it still owns
    browser, _, _, browser_words, _ = adopted_browser(org)
    kept = ConversationFactory(
        contact=browser.contact, device=DeviceFactory(contact=browser.contact)
    )
    from_phone = MessageFactory(conversation=kept, sender_contact=browser.contact, body="phone")
    MessageFactory(conversation=kept, sender_kind=Message.SenderKind.AGENT, body="Noted.")
    _, customer, _, adopted_words, customer_words = adopted_browser(org)
    expected = {
        browser.contact: {browser_words.pk, from_phone.pk},
        customer.contact: {adopted_words.pk, customer_words.pk},
    }

    for subject, own in expected.items():
        # when: the subject is exported, then erased
        exported = operator_client.get(url(org, subject.pk, "export")).json()
        before = set(Message.objects.exclude(body="[erased]").values_list("pk", flat=True))
        operator_client.post(url(org, subject.pk, "erase"))
        after = set(Message.objects.exclude(body="[erased]").values_list("pk", flat=True))

        # then: the contact's messages the export showed are exactly those the erase blanked
        shown = {
            message["id"]
            for conversation in exported["conversations"]
            for message in conversation["messages"]
            if message["sender_kind"] == "contact"
        }
        assert (shown, before - after) == (own, own)


def test_erase_clears_what_the_contact_gave_in_a_conversation_adopted_since(org, operator_client):
    # given
    browser, customer, conversation, *_ = adopted_browser(org)

    # when
    operator_client.post(url(org, browser.contact.pk, "erase"))

    # then: its form answers, external id and words go; the conversation stays the customer's
    conversation.refresh_from_db()
    assert (
        conversation.contact,
        conversation.fields,
        conversation.external_id,
        conversation.sender_auth_info,
    ) == (
        customer.contact,
        {},
        "",
        {
            "authType": "ANONYMOUS",
            "method": "anonymous",
            "verified": False,
            "authVar": {"uid": str(browser.contact.pk)},
        },
    )
    assert list(conversation.messages.order_by("pk").values_list("body", "sender_auth_info")) == [
        ("[erased]", {}),
        ("Which card?", {}),
        (LATER, customer.contact.sender_auth_info),
        ("Card replaced.", {}),
    ]
    assert AuditEvent.objects.get().details == {
        "trust": "anonymous",
        "devices_revoked": 1,
        "conversations": 1,
        "messages": 1,
    }


def test_export_with_adopted_history_runs_a_fixed_number_of_queries(
    org, operator_client, django_assert_num_queries
):
    # given: two conversations adopted from the browser's device and one it still owns
    browser = visitor_with_trust(org, Contact.Trust.ANONYMOUS)
    for _ in range(2):
        adopted = ConversationFactory(contact=browser.contact, device=browser.device)
        MessageFactory.create_batch(2, conversation=adopted, sender_contact=browser.contact)
    customer = visitor_with_trust(org, Contact.Trust.VERIFIED)
    device_history_adopt(
        org=org, verified_principal=customer.principal(), previous_device=browser.device
    )
    kept = ConversationFactory(
        contact=browser.contact, device=DeviceFactory(contact=browser.contact)
    )
    MessageFactory.create_batch(2, conversation=kept, sender_contact=browser.contact)

    # then: as many queries as for a contact without adopted history
    with django_assert_num_queries(9):
        response = operator_client.get(url(org, browser.contact.pk, "export"))
    assert response.status_code == 200
    assert [len(c["messages"]) for c in response.json()["conversations"]] == [2, 2, 2]


# --- refusals --------------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "verb"), [("get", "export"), ("post", "erase")])
def test_another_orgs_contact_is_not_found_and_nothing_changes(
    org, other_org, operator_client, method, verb
):
    # given
    contact, *_ = grace(other_org)
    before = stored_rows()

    # when
    response = getattr(operator_client, method)(url(org, contact.pk, verb))

    # then
    assert (response.status_code, response.json()) == (404, NOT_FOUND)
    assert stored_rows() == before
    assert not AuditEvent.objects.exists()


@pytest.mark.parametrize(("method", "verb"), [("get", "export"), ("post", "erase")])
def test_unknown_contact_is_not_found(org, operator_client, method, verb):
    response = getattr(operator_client, method)(
        url(org, "00000000-0000-0000-0000-000000000000", verb)
    )

    assert (response.status_code, response.json()) == (404, NOT_FOUND)
    assert not AuditEvent.objects.exists()


@pytest.mark.parametrize(("method", "verb"), [("get", "export"), ("post", "erase")])
def test_agents_may_not_export_or_erase(org, agent_client, method, verb):
    # given
    contact, *_ = grace(org)
    before = stored_rows()

    # when
    response = getattr(agent_client, method)(url(org, contact.pk, verb))

    # then
    assert (response.status_code, response.json()) == (403, FORBIDDEN)
    assert stored_rows() == before


@pytest.mark.parametrize(("method", "verb"), [("get", "export"), ("post", "erase")])
def test_api_keys_may_not_export_or_erase(org, method, verb):
    # given: a key with every scope
    contact, *_ = grace(org)
    client = api_key_client(org, *ApiKey.Scope.values)
    before = stored_rows()

    # when
    response = getattr(client, method)(url(org, contact.pk, verb))

    # then
    assert (response.status_code, response.json()) == (403, FORBIDDEN)
    assert stored_rows() == before


@pytest.mark.parametrize(("method", "verb"), [("get", "export"), ("post", "erase")])
def test_anonymous_callers_are_refused(org, api_client, method, verb):
    contact, *_ = grace(org)

    response = getattr(api_client, method)(url(org, contact.pk, verb))

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"
    assert not AuditEvent.objects.exists()


def test_a_failed_erase_writes_nothing(org, operator_user, monkeypatch):
    # given: the audit write fails after every other change was made
    contact, *_ = grace(org)
    before = stored_rows()

    def explode(**kwargs):
        raise RuntimeError("audit store unavailable")

    monkeypatch.setattr("conversations.data_rights.audit_record", explode)

    # when
    with pytest.raises(RuntimeError):
        contact_erase(org=org, contact_id=contact.pk, actor_user=operator_user, ip="")

    # then: the transaction rolled back; the contact is as it was
    assert stored_rows() == before
    assert Device.objects.get().revoked_at is None
    assert Conversation.objects.get().fields == {"order": FORM_ANSWER}
