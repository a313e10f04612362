"""The agent console: sign-in, org scoping, the shield rule, escaping, replies and CSRF."""

import re

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils.http import urlencode

from contacts.models import Contact
from contacts.services import sender_auth_info_build
from conversations.console import urls as console_urls
from conversations.data_rights import contact_erase
from conversations.models import Conversation, Message
from identity.services import api_key_create
from tests.conftest import PASSWORD
from tests.conversations.conftest import thread_add
from tests.factories import (
    ContactFactory,
    ConversationFactory,
    MembershipFactory,
    MessageFactory,
    UserFactory,
    VerifiedContactFactory,
)

pytestmark = pytest.mark.django_db

SHIELD = 'aria-label="Verified"'
XSS = "<script>alert(1)</script>"
XSS_ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"


def with_info(contact: Contact, method: str, **kwargs) -> Contact:
    contact.sender_auth_info = sender_auth_info_build(contact=contact, method=method, **kwargs)
    contact.save()
    return contact


def verified_contact(org, **kwargs) -> Contact:
    return with_info(VerifiedContactFactory(org=org, **kwargs), "api_key", key_id="csk_abc123")


def non_verified_contact(org, **kwargs) -> Contact:
    kwargs.setdefault("name", "Typed Name")
    kwargs.setdefault("email", "typed@visitor.test")
    return with_info(ContactFactory(org=org, trust=Contact.Trust.NON_VERIFIED, **kwargs), "browser")


def anonymous_contact(org) -> Contact:
    return with_info(ContactFactory(org=org, name="guest#ab12"), "anonymous")


@pytest.fixture
def console(agent_user) -> Client:
    client = Client()
    client.force_login(agent_user)
    return client


def conversation_url(conversation, org=None) -> str:
    return f"/console/conversations/{conversation.pk}?org={(org or conversation.org).pk}"


def contact_url(contact, org=None) -> str:
    return f"/console/contacts/{contact.pk}?org={(org or contact.org).pk}"


# --- sign-in ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/console/", "/console/conversations/00000000-0000-0000-0000-000000000001"]
)
def test_console_pages_redirect_anonymous_visitors_to_sign_in(client, path):
    response = client.get(path)

    assert response.status_code == 302
    assert response["Location"].startswith("/console/login?next=/console/")


def test_a_console_sign_in_lasts_a_working_day(client, agent_user, settings):
    # when
    client.post("/console/login", {"username": agent_user.email, "password": PASSWORD})

    # then: the session cookie and the stored session both end after twelve hours
    assert settings.SESSION_COOKIE_AGE == 12 * 60 * 60
    assert client.cookies["sessionid"]["max-age"] == 12 * 60 * 60
    assert client.session.get_expiry_age() == 12 * 60 * 60


def test_agent_signs_in_with_email_and_password(client, agent_user):
    # when
    response = client.post(
        "/console/login", {"username": agent_user.email.upper(), "password": PASSWORD}
    )

    # then
    assert response.status_code == 302
    assert response["Location"] == "/console/"
    assert client.get("/console/").status_code == 200


def test_sign_in_with_a_wrong_password_is_refused(client, agent_user):
    response = client.post("/console/login", {"username": agent_user.email, "password": "nope"})

    assert response.status_code == 200
    assert "_auth_user_id" not in client.session
    assert b"Please enter a correct email and password" in response.content


def test_sign_in_shares_the_lockout_so_a_correct_password_is_refused_while_locked(
    client, agent_user, settings
):
    # given
    for _ in range(settings.LOCKOUT_MAX_FAILURES):
        client.post("/console/login", {"username": agent_user.email, "password": "nope"})

    # when
    response = client.post("/console/login", {"username": agent_user.email, "password": PASSWORD})

    # then
    assert response.status_code == 429
    assert 0 < int(response["Retry-After"]) <= settings.LOCKOUT_WINDOW_SECONDS
    assert b"Too many failed sign-ins" in response.content
    assert "_auth_user_id" not in client.session


def test_logout_is_post_only_and_ends_the_session(console):
    assert console.get("/console/logout").status_code == 405

    response = console.post("/console/logout")

    assert response.status_code == 302
    assert response["Location"] == "/console/login"
    assert console.get("/console/").status_code == 302


# --- scoping ---------------------------------------------------------------------------------


def test_inbox_lists_only_the_agents_org(console, org, other_org):
    # given
    mine = ConversationFactory(contact=verified_contact(org, name="Mine Customer"))
    ConversationFactory(contact=verified_contact(other_org, name="Theirs Customer"))

    # when
    response = console.get("/console/")

    # then
    assert response.status_code == 200
    assert b"Mine Customer" in response.content
    assert b"Theirs Customer" not in response.content
    assert conversation_url(mine).encode() in response.content


def test_inbox_for_an_org_the_agent_does_not_belong_to_is_404(console, other_org):
    assert console.get(f"/console/?org={other_org.pk}").status_code == 404
    assert console.get("/console/?org=not-a-uuid").status_code == 404


def test_agent_of_several_orgs_switches_org(console, agent_user, other_org):
    # given
    MembershipFactory(user=agent_user, org=other_org)
    ConversationFactory(contact=verified_contact(other_org, name="Second Org Customer"))

    # when
    response = console.get(f"/console/?org={other_org.pk}")

    # then
    assert response.status_code == 200
    assert b"Second Org Customer" in response.content
    assert b'id="cs-org"' in response.content
    assert console.session["console_org_id"] == str(other_org.pk)


def test_naming_the_org_already_chosen_does_not_write_the_session(console, org):
    # given: the org chosen once
    console.get(f"/console/?org={org.pk}")

    # when: every page after names it again, as the console's links do
    with CaptureQueriesContext(connection) as queries:
        assert console.get(f"/console/?org={org.pk}").status_code == 200

    # then: no session row written (it slid the sign-in's 12 hours on every page)
    writes = [q["sql"] for q in queries.captured_queries if "django_session" in q["sql"]]
    assert not [sql for sql in writes if not sql.lstrip().upper().startswith("SELECT")]


def test_another_orgs_conversation_and_contact_are_404(console, org, other_org):
    # given
    contact = verified_contact(other_org)
    conversation = ConversationFactory(contact=contact)

    # then: under the agent's org, and under the other org's id alike
    assert console.get(conversation_url(conversation, org)).status_code == 404
    assert console.get(conversation_url(conversation)).status_code == 404
    assert console.get(contact_url(contact, org)).status_code == 404
    assert console.get(contact_url(contact)).status_code == 404


def test_agent_without_membership_sees_no_conversation(client, org):
    # given
    outsider = UserFactory()
    conversation = ConversationFactory(contact=verified_contact(org))
    client.force_login(outsider)

    # then
    inbox = client.get("/console/")
    assert inbox.status_code == 200
    assert b"not a member of any organization" in inbox.content
    assert client.get(conversation_url(conversation)).status_code == 404


# --- the shield rule ---------------------------------------------------------------------------


def test_inbox_shows_the_shield_for_verified_contacts_only(console, org):
    # given
    ConversationFactory(contact=verified_contact(org, name="Vera Verified"))
    ConversationFactory(contact=non_verified_contact(org, name="Nina Typed"))
    ConversationFactory(contact=anonymous_contact(org))

    # when
    content = console.get("/console/").content.decode()

    # then
    assert content.count(SHIELD) == 1
    rows = re.findall(r"<tr>.*?</tr>", content, flags=re.S)
    (verified_row,) = [row for row in rows if "Vera Verified" in row]
    (typed_row,) = [row for row in rows if "Nina Typed" in row]
    (anonymous_row,) = [row for row in rows if "guest#ab12" in row]
    assert SHIELD in verified_row
    assert SHIELD not in typed_row
    assert "unverified" in typed_row
    assert SHIELD not in anonymous_row
    assert "unverified" not in anonymous_row


@pytest.mark.parametrize("make_contact", [non_verified_contact, anonymous_contact])
def test_conversation_of_an_unproven_contact_shows_no_shield(console, org, make_contact):
    # given
    conversation = ConversationFactory(contact=make_contact(org))
    MessageFactory(conversation=conversation, sender_contact=conversation.contact)

    # when
    response = console.get(conversation_url(conversation))

    # then
    assert response.status_code == 200
    assert SHIELD not in response.content.decode()


def test_the_conversation_shows_its_chat_form_answers_as_unverified(console, org):
    # given a conversation opened with answers to the org's form, one of them markup
    conversation = ConversationFactory(
        contact=non_verified_contact(org),
        fields={"order": "A-1947", "note": "<b>rush</b>"},
    )

    # when
    content = console.get(conversation_url(conversation)).content.decode()

    # then the agent reads them in the side panel, marked as the browser's, escaped
    (answers,) = re.findall(
        r'<section class="cs-data cs-data--unverified"[^>]*>\s*<h3 class="cs-data__title">'
        r"Chat form answers.*?</section>",
        content,
        flags=re.S,
    )
    assert "A-1947" in answers
    assert "&lt;b&gt;rush&lt;/b&gt;" in answers
    assert "do not rely on it" in answers


def test_a_conversation_without_form_answers_shows_no_such_section(console, org):
    conversation = ConversationFactory(contact=non_verified_contact(org), fields={})

    content = console.get(conversation_url(conversation)).content.decode()

    assert "Chat form answers" not in content


def test_verified_conversation_shows_the_shield_and_the_sender_auth_info_panel(console, org):
    # given
    contact = verified_contact(org, name="Vera Verified", custom_data={"plan": "gold"})
    contact.non_verified_custom_data = {"favourite": "blue"}
    contact.save()
    conversation = ConversationFactory(contact=contact, sender_auth_info=contact.sender_auth_info)

    # when
    content = console.get(conversation_url(conversation)).content.decode()

    # then
    assert SHIELD in content
    assert "Verified by the customer&#x27;s backend with an API key" in content
    assert "csk_abc123" in content
    assert "Verified custom data — set by your backend" in content
    assert "Unverified custom data — sent by the browser, do not trust" in content
    assert "gold" in content
    assert "blue" in content
    assert '"authType"' not in content


def test_custom_jwt_claims_are_shown_as_a_table(console, org):
    # given
    contact = with_info(
        VerifiedContactFactory(org=org),
        "custom_jwt",
        key_id="kid_123",
        token_claims={
            "iss": "https://shop.test",
            "sub": "user-9",
            "aud": f"http://testserver/projects/{org.pk}",
            "iat": 1_700_000_000,
            "exp": 1_700_000_600,
            "jti": "jti-42",
        },
    )

    # when
    content = console.get(contact_url(contact)).content.decode()

    # then
    assert "Customer-signed token (custom JWT)" in content
    assert "<caption>Customer-signed token claims</caption>" in content
    for value in ("https://shop.test", "user-9", "jti-42", "kid_123", "2023-11-14 22:13:20 UTC"):
        assert value in content


# --- erased contacts ---------------------------------------------------------------------------


ERASED_LABEL = '<span class="cs-contact__name cs-contact__name--erased">Erased contact</span>'
ERASED_BADGE = '<span class="cs-badge cs-badge--erased" title="Was verified">Erased</span>'


def erased_verified_conversation(org) -> Conversation:
    """A verified contact's conversation, then the contact erased (trust kept for statistics)."""
    contact = verified_contact(org, name="Vera Verified", email="vera@customer.test")
    conversation = ConversationFactory(contact=contact, sender_auth_info=contact.sender_auth_info)
    MessageFactory(conversation=conversation, sender_contact=contact, body="Hi, it's Vera.")
    contact_erase(org=org, contact_id=contact.pk, actor_user=None)
    conversation.refresh_from_db()
    return conversation


def test_an_erased_verified_contact_shows_as_erased_with_no_shield_anywhere(console, org):
    # given
    conversation = erased_verified_conversation(org)
    assert conversation.contact.trust == Contact.Trust.VERIFIED

    # when
    pages = {
        "inbox": console.get("/console/").content.decode(),
        "conversation": console.get(conversation_url(conversation)).content.decode(),
        "contact": console.get(contact_url(conversation.contact)).content.decode(),
    }

    # then: named as erased, never as a verified (or anonymous) visitor
    for name, content in pages.items():
        assert SHIELD not in content, name
        assert "cs-badge--verified" not in content, name
        assert "Anonymous visitor" not in content, name
        assert ERASED_LABEL in content, name
    assert ERASED_BADGE in pages["inbox"]
    for name in ("conversation", "contact"):
        (panel,) = re.findall(
            r'<section class="cs-panel cs-panel--erased".*?</section>', pages[name], flags=re.S
        )
        assert "<dt>Erased at</dt>" in panel, name
        assert (
            "<dt>Before erasure</dt><dd>VERIFIED — "
            "Verified by the customer&#x27;s backend with an API key</dd>"
        ) in panel, name
        assert "Verified at" not in panel, name
        assert 'Erased <span class="cs-muted">(was verified)</span>' in pages[name], name


def test_an_erased_contacts_conversation_offers_no_reply_box_but_can_be_closed(console, org):
    # given
    conversation = erased_verified_conversation(org)

    # when
    content = console.get(conversation_url(conversation)).content.decode()

    # then: every device of the contact is signed out, so nobody would read a reply
    assert f"/console/conversations/{conversation.pk}/reply" not in content
    assert "This contact was erased: nobody can read a reply here." in content
    assert f"/console/conversations/{conversation.pk}/close" in content


# --- escaping ----------------------------------------------------------------------------------


def test_visitor_typed_text_is_escaped_everywhere(console, org):
    # given
    contact = non_verified_contact(org, name=XSS, non_verified_custom_data={"note": XSS})
    conversation = ConversationFactory(contact=contact)
    MessageFactory(conversation=conversation, sender_contact=contact, body=XSS)

    # when
    pages = [
        console.get("/console/").content.decode(),
        console.get(conversation_url(conversation)).content.decode(),
        console.get(contact_url(contact)).content.decode(),
    ]

    # then
    for content in pages:
        assert XSS not in content
        assert "<script" not in content
        assert XSS_ESCAPED in content


# --- replies and closing -----------------------------------------------------------------------


def test_reply_posts_an_agent_message(console, org, agent_user):
    # given
    conversation = ConversationFactory(contact=verified_contact(org))

    # when
    response = console.post(
        f"/console/conversations/{conversation.pk}/reply?org={org.pk}",
        {"text": "Your order ships today."},
    )

    # then
    message = Message.objects.get(conversation=conversation)
    assert response.status_code == 302
    assert response["Location"] == f"{conversation_url(conversation)}#m{message.pk}"
    assert message.sender_kind == Message.SenderKind.AGENT
    assert message.sender_user == agent_user
    assert message.body == "Your order ships today."
    assert "Your order ships today." in console.get(conversation_url(conversation)).content.decode()


def test_reply_is_stored_as_typed(console, org):
    # given: a pasted snippet, indented and ending in a newline
    conversation = ConversationFactory(contact=verified_contact(org))
    snippet = "    indented code\n    more code\n"

    # when
    response = console.post(
        f"/console/conversations/{conversation.pk}/reply?org={org.pk}", {"text": snippet}
    )

    # then
    assert response.status_code == 302
    assert Message.objects.get(conversation=conversation).body == snippet


@pytest.mark.parametrize("text", ["", "   ", " \n\t\n "])
def test_blank_reply_is_refused_and_writes_nothing(console, org, text):
    conversation = ConversationFactory(contact=verified_contact(org))

    response = console.post(
        f"/console/conversations/{conversation.pk}/reply?org={org.pk}", {"text": text}
    )

    assert response.status_code == 400
    assert response.context["form"].errors == {"text": ["This field is required."]}
    assert not Message.objects.exists()


@pytest.mark.parametrize(
    ("text", "error"),
    [
        # the limit counts the whitespace it keeps
        (" " + "x" * 9_999 + " ", "Ensure this value has at most 10000 characters (it has 10001)."),
        ("  before\x00after\n", "Null characters are not allowed."),
    ],
)
def test_reply_over_the_limit_or_with_nul_is_refused_and_writes_nothing(console, org, text, error):
    conversation = ConversationFactory(contact=verified_contact(org))

    response = console.post(
        f"/console/conversations/{conversation.pk}/reply?org={org.pk}", {"text": text}
    )

    assert response.status_code == 400
    assert response.context["form"].errors == {"text": [error]}
    assert not Message.objects.exists()


def test_reply_of_exactly_the_limit_keeps_its_surrounding_whitespace(console, org):
    # given: 10,000 characters, the first and last of them spaces
    conversation = ConversationFactory(contact=verified_contact(org))
    text = " " + "x" * 9_998 + " "

    # when
    response = console.post(
        f"/console/conversations/{conversation.pk}/reply?org={org.pk}", {"text": text}
    )

    # then
    assert response.status_code == 302
    assert Message.objects.get(conversation=conversation).body == text


def test_reply_to_a_closed_conversation_is_refused_and_writes_nothing(console, org):
    conversation = ConversationFactory(
        contact=verified_contact(org), status=Conversation.Status.CLOSED
    )

    response = console.post(
        f"/console/conversations/{conversation.pk}/reply?org={org.pk}", {"text": "hello"}
    )

    assert response.status_code == 400
    assert b"This conversation is closed." in response.content
    assert not Message.objects.exists()


def test_reply_into_another_orgs_conversation_is_404_and_writes_nothing(console, other_org):
    conversation = ConversationFactory(contact=verified_contact(other_org))

    response = console.post(
        f"/console/conversations/{conversation.pk}/reply?org={other_org.pk}", {"text": "hi"}
    )

    assert response.status_code == 404
    assert not Message.objects.exists()


def test_close_button_closes_the_conversation(console, org):
    conversation = ConversationFactory(contact=verified_contact(org))

    response = console.post(f"/console/conversations/{conversation.pk}/close?org={org.pk}")

    conversation.refresh_from_db()
    assert response.status_code == 302
    assert conversation.status == Conversation.Status.CLOSED
    assert b"This conversation is closed." in console.get(conversation_url(conversation)).content


def test_posts_without_a_csrf_token_are_refused(agent_user, org):
    # given
    client = Client(enforce_csrf_checks=True)
    client.force_login(agent_user)
    conversation = ConversationFactory(contact=verified_contact(org))
    reply_url = f"/console/conversations/{conversation.pk}/reply?org={org.pk}"

    # when
    refused = client.post(reply_url, {"text": "hi"})
    closed = client.post(f"/console/conversations/{conversation.pk}/close?org={org.pk}")

    # then
    assert refused.status_code == 403
    assert closed.status_code == 403
    assert not Message.objects.exists()
    conversation.refresh_from_db()
    assert conversation.status == Conversation.Status.OPEN

    # and with the page's token the same reply goes through
    page = client.get(conversation_url(conversation))
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.content.decode())[1]
    accepted = client.post(reply_url, {"text": "hi", "csrfmiddlewaretoken": token})
    assert accepted.status_code == 302
    assert Message.objects.filter(conversation=conversation, body="hi").count() == 1


# --- filters, pages, query counts --------------------------------------------------------------


def test_inbox_filters_by_trust_and_status(console, org):
    ConversationFactory(contact=verified_contact(org, name="Vera Verified"))
    ConversationFactory(contact=non_verified_contact(org, name="Nina Typed"))
    ConversationFactory(
        contact=verified_contact(org, name="Cleo Closed"), status=Conversation.Status.CLOSED
    )

    verified_open = console.get(f"/console/?org={org.pk}&trust=verified&status=open").content

    assert b"Vera Verified" in verified_open
    assert b"Nina Typed" not in verified_open
    assert b"Cleo Closed" not in verified_open


def test_inbox_query_count_does_not_grow_with_rows(console, org, django_assert_max_num_queries):
    # given
    for _ in range(3):
        MessageFactory(conversation=ConversationFactory(contact=verified_contact(org)))
    with CaptureQueriesContext(connection) as few:
        assert console.get("/console/").status_code == 200
    for _ in range(20):
        MessageFactory(conversation=ConversationFactory(contact=non_verified_contact(org)))

    # then
    with django_assert_max_num_queries(len(few)):
        assert console.get("/console/").status_code == 200


def test_conversation_page_query_count_does_not_grow_with_the_thread(
    console, agent_user, org, other_org, django_assert_num_queries
):
    # given: an agent of two orgs; a verified contact's thread with every kind of sender
    MembershipFactory(user=agent_user, org=other_org)
    contact = verified_contact(org)
    conversation = ConversationFactory(
        contact=contact, assignee=agent_user, sender_auth_info=contact.sender_auth_info
    )
    key = api_key_create(
        org=org, created_by=None, name="CRM", scopes=["conversations:write"], expires_at=None
    ).api_key
    thread_add(conversation, 4, api_key=key)
    console.get(conversation_url(conversation))
    with CaptureQueriesContext(connection) as few:
        assert console.get(conversation_url(conversation)).status_code == 200
    thread_add(conversation, 36, api_key=key)

    # then
    with django_assert_num_queries(len(few)):
        response = console.get(conversation_url(conversation))
    assert len(response.context["thread"]) == 40


def test_contact_page_query_count_does_not_grow_with_conversations(
    console, agent_user, org, other_org, django_assert_num_queries
):
    # given: an agent of two orgs; a contact's conversations, assigned or not, with messages
    MembershipFactory(user=agent_user, org=other_org)
    contact = non_verified_contact(org)

    def add_conversations(count):
        for index in range(count):
            assignee = UserFactory() if index % 2 else None
            MessageFactory(conversation=ConversationFactory(contact=contact, assignee=assignee))

    add_conversations(2)
    console.get(contact_url(contact))
    with CaptureQueriesContext(connection) as few:
        assert console.get(contact_url(contact)).status_code == 200
    add_conversations(25)

    # then
    with django_assert_num_queries(len(few)):
        response = console.get(contact_url(contact))
    assert len(response.context["conversations"]) == 27


def test_contact_page_lists_the_contacts_conversations(console, org):
    contact = verified_contact(org, name="Vera Verified")
    conversation = ConversationFactory(contact=contact)
    MessageFactory(conversation=conversation, body="Where is my parcel?")

    content = console.get(contact_url(contact)).content.decode()

    assert "Where is my parcel?" in content
    assert conversation_url(conversation) in content
    assert SHIELD in content


@pytest.mark.parametrize("after", ["²", "١٢", "1" * 30], ids=["superscript", "arabic", "huge"])
def test_an_after_that_is_not_a_plain_message_id_shows_the_first_page(console, org, after):
    # given: message 12, which reading "١٢" as 12 would hide
    conversation = ConversationFactory(contact=verified_contact(org))
    message = MessageFactory(pk=12, conversation=conversation, body="Where is my parcel?")

    # when
    response = console.get(f"{conversation_url(conversation)}&{urlencode({'after': after})}")

    # then
    assert response.status_code == 200
    assert response.context["thread"] == [message]


def test_pages_answer_head_as_they_answer_get_and_refuse_other_methods(console, org):
    # given
    conversation = ConversationFactory(contact=ContactFactory(org=org))
    pages = ["/console/", conversation_url(conversation)]

    # when / then: monitors and link checkers send HEAD
    for page in pages:
        head = console.head(page)
        assert (head.status_code, head.content) == (200, b""), page
        assert console.put(page).status_code == 405, page


# --- caching -----------------------------------------------------------------------------------

NEVER_CACHE = "max-age=0, no-cache, no-store, must-revalidate, private"


def test_no_console_answer_may_be_stored_by_the_browser(console, org):
    # given: one request to each console route; sign-out last, as it ends the session
    conversation = ConversationFactory(contact=verified_contact(org, name="Vera Verified"))
    base = f"/console/conversations/{conversation.pk}"
    requests = {
        "inbox": ("get", "/console/", {}, 200),
        "login": ("get", "/console/login", {}, 302),
        "conversation": ("get", conversation_url(conversation), {}, 200),
        # a refused reply shows the conversation page again
        "conversation-reply": ("post", f"{base}/reply?org={org.pk}", {"text": ""}, 400),
        "conversation-close": ("post", f"{base}/close?org={org.pk}", {}, 302),
        "contact": ("get", contact_url(conversation.contact), {}, 200),
        "logout": ("post", "/console/logout", {}, 302),
    }
    assert set(requests) == {pattern.name for pattern in console_urls.urlpatterns}

    for name, (method, path, data, status) in requests.items():
        # when
        response = getattr(console, method)(path, data)

        # then: Back after "Sign out" cannot bring the page back from the browser's caches
        assert (response.status_code, response.get("Cache-Control")) == (status, NEVER_CACHE), name
