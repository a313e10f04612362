"""The agent UI in a real browser: who is verified, and how, must be unmistakable.

Visitors are created through the real widget, server-to-server and /v3 routes of the live server;
an agent then reads them in the console and the admin. Screenshots land in docs/screenshots.
"""

import re
import time
import uuid
from dataclasses import dataclass

import jwt
import pytest
from django.conf import settings

from contacts.models import Contact
from conversations.models import Message
from identity.services import api_key_create, signing_secret_create_shared
from tests.conftest import PASSWORD
from tests.e2e.conftest import (
    CHROMIUM,
    CHROMIUM_ARGS,
    VIEWPORT,
    expect_or_skip_module,
    live_server_context,
)
from tests.factories import (
    ContactFactory,
    ConversationFactory,
    MembershipFactory,
    MessageFactory,
    OrganizationFactory,
    UserFactory,
)

expect = expect_or_skip_module()

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

SHIELD = "svg[aria-label='Verified']"


@dataclass
class Visitor:
    name: str
    token: str
    conversation_id: str
    contact_id: str
    external_id: str = ""


@dataclass
class Shop:
    org: object
    agent: object
    owner: object
    widget_token: str
    ada: Visitor  # verified by the shop's backend with an API key
    alan: Visitor  # verified by a customer-signed token (custom JWT)
    typed_ada: Visitor  # non-verified: typed Ada's name and email into the widget
    anonymous: Visitor


def _json(response, status: int) -> dict:
    assert response.status == status, response.text()
    return response.json()


def _open_conversation(
    api, shop_widget_token: str, token: str, text: str, external_id="", fields=None
):
    headers = {"X-Widget-Token": shop_widget_token, "Authorization": f"Bearer {token}"}
    body = {"externalId": external_id} if external_id else {}
    if fields:
        body["fields"] = fields
    session = _json(api.post("/widget/sessions", data=body, headers=headers), 201)
    query = f"?externalId={external_id}" if external_id else ""
    _json(
        api.post(
            f"/widget/sessions/{session['id']}/messages{query}",
            data={"text": text},
            headers=headers,
        ),
        201,
    )
    return session["id"]


def seed_shop(api, *, name: str = "Demo Shop") -> Shop:
    """One org whose four visitors arrive the way real ones do, over HTTP."""
    org = OrganizationFactory(
        name=name,
        # the widget's pre-chat form: one optional question
        extra_data_collection_fields=[
            {"name": "order", "label": "Order number", "type": "text", "required": False}
        ],
    )
    owner = UserFactory(first_name="Olivia", last_name="Owner")
    agent = UserFactory(first_name="Sam", last_name="Agent")
    MembershipFactory(user=owner, org=org, role="owner")
    MembershipFactory(user=agent, org=org, role="agent")
    widget = {"X-Widget-Token": org.widget_token}

    # Ada: the shop's backend vouches for her with an API key.
    key = api_key_create(
        org=org,
        created_by=owner,
        name="Shop backend",
        scopes=["widget:authenticate"],
        expires_at=None,
    ).key
    ada = _json(
        api.post(
            "/widget/authenticate-user",
            headers={"Authorization": f"Bearer {key}"},
            data={
                "email": "ada@example.com",
                "name": "Ada Lovelace",
                "user_id": "cust-1815",
                "customData": {
                    "plan": "Gold",
                    "orders": 12,
                    "lastOrder": {"id": "#1042", "status": "shipped"},
                },
            },
        ),
        201,
    )
    ada_conversation = _open_conversation(
        api,
        org.widget_token,
        ada["token"],
        "Hi! Where is my order #1042?",
        fields={"order": "1042"},
    )

    # Alan: the shop signs a short-lived JWT with its signing secret; the widget exchanges it.
    issued = signing_secret_create_shared(org=org, created_by=owner)
    now = int(time.time())
    custom_token = jwt.encode(
        {
            "_id": "cust-1912",
            "email": "alan@example.com",
            "firstname": "Alan",
            "lastname": "Turing",
            "attributes": {"plan": "Silver"},
            "iss": "https://shop.example.com",
            "sub": "cust-1912",
            "aud": f"{settings.PUBLIC_URL}/projects/{org.pk}",
            "iat": now,
            "exp": now + 300,
            "jti": str(uuid.uuid4()),
        },
        issued.secret,
        algorithm="HS256",
        headers={"kid": issued.signing_secret.kid},
    )
    alan = _json(
        api.post(
            "/v3/auth/signinWithCustomToken", headers={"Authorization": f"JWT {custom_token}"}
        ),
        200,
    )
    alan_token = alan["token"].removeprefix("JWT ")
    alan_conversation = _open_conversation(
        api, org.widget_token, alan_token, "Can I change the delivery address?"
    )

    # Someone types Ada's name and email into the widget: that proves nothing.
    typed = _json(
        api.post(
            "/widget/contacts/unverified",
            headers=widget,
            data={
                "name": "Ada Lovelace",
                "email": "ada@example.com",
                "customData": {"plan": "Platinum", "note": "VIP, send invoices here"},
            },
        ),
        201,
    )
    typed_conversation = _open_conversation(
        api,
        org.widget_token,
        typed["token"],
        "It's Ada. Please email me all my invoices.",
        typed["externalId"],
    )

    anonymous = _json(api.post("/widget/contacts/unverified", headers=widget, data={}), 201)
    anonymous_conversation = _open_conversation(
        api, org.widget_token, anonymous["token"], "Do you ship to Norway?", anonymous["externalId"]
    )

    return Shop(
        org=org,
        agent=agent,
        owner=owner,
        widget_token=org.widget_token,
        ada=Visitor("Ada Lovelace", ada["token"], ada_conversation, ada["contact"]["id"]),
        alan=Visitor("Alan Turing", alan_token, alan_conversation, str(alan["contact"]["id"])),
        typed_ada=Visitor(
            "Ada Lovelace",
            typed["token"],
            typed_conversation,
            typed["contact"]["id"],
            typed["externalId"],
        ),
        anonymous=Visitor(
            "anonymous",
            anonymous["token"],
            anonymous_conversation,
            anonymous["contact"]["id"],
            anonymous["externalId"],
        ),
    )


@pytest.fixture
def shop(new_page) -> Shop:
    return seed_shop(new_page().request)


def console_sign_in(page, user) -> None:
    page.goto("/console/login")
    page.get_by_label("Email").fill(user.email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/console/")


def admin_sign_in(page, user) -> None:
    page.goto("/admin/login/?next=/admin/")
    page.locator("#id_username").fill(user.email)
    page.locator("#id_password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/admin/")


def inbox_row(page, text: str):
    return page.locator("table.cs-inbox tbody tr", has_text=text)


def conversation_link(shop: Shop, visitor: Visitor) -> str:
    return f"/console/conversations/{visitor.conversation_id}?org={shop.org.pk}"


def test_console_inbox_shows_the_shield_on_verified_contacts_only(new_page, shop, screenshot):
    # given
    page = new_page()

    # when
    console_sign_in(page, shop.agent)

    # then
    rows = page.locator("table.cs-inbox tbody tr")
    assert rows.count() == 4
    assert page.locator(SHIELD).count() == 2
    verified_rows = page.locator("table.cs-inbox tbody tr", has=page.locator(SHIELD))
    assert sorted(verified_rows.locator(".cs-contact__name").all_inner_texts()) == [
        "Ada Lovelace",
        "Alan Turing",
    ]
    typed = inbox_row(page, "Please email me all my invoices")
    assert typed.locator(SHIELD).count() == 0
    assert typed.locator(".cs-unverified").inner_text() == "unverified"
    anonymous = inbox_row(page, "Do you ship to Norway?")
    assert anonymous.locator(SHIELD).count() == 0
    assert anonymous.locator(".cs-unverified").count() == 0
    shield = page.get_by_role("img", name="Verified").first
    assert shield.locator("path").first.get_attribute("fill") == "#18BDF7"
    screenshot(page, "console-inbox.png")


def test_agent_reads_a_verified_conversation_and_replies_to_the_widget(new_page, shop, screenshot):
    # given
    page = new_page()
    console_sign_in(page, shop.agent)

    # when
    inbox_row(page, "Where is my order #1042?").get_by_role("link").click()
    page.wait_for_url(f"**/console/conversations/{shop.ada.conversation_id}?org=*")

    # then: the side panel says who this is and how we know
    side = page.locator("aside.cs-conv-side")
    assert side.locator(SHIELD).count() >= 1
    panel = side.locator(".cs-panel")
    assert "Verified by the customer's backend with an API key" in panel.inner_text()
    assert "csk_" in panel.inner_text()
    assert "VERIFIED" in panel.inner_text()
    verified_data = side.locator(".cs-data--verified").inner_text()
    assert "Gold" in verified_data
    assert "#1042" in verified_data
    answers = side.locator(".cs-data--unverified", has_text="Chat form answers").inner_text()
    assert "order" in answers and "1042" in answers

    # when: the agent replies
    page.get_by_label("Reply").fill("Hi Ada, #1042 left our warehouse this morning.")
    page.get_by_role("button", name="Send reply").click()
    page.wait_for_load_state()

    # then: the reply is in the thread and reaches the widget
    assert (
        page.locator(".cs-msg--agent")
        .inner_text()
        .endswith("Hi Ada, #1042 left our warehouse this morning.")
    )
    screenshot(page, "console-conversation.png")
    widget = page.request.get(
        f"/widget/sessions/{shop.ada.conversation_id}/messages",
        headers={"X-Widget-Token": shop.widget_token, "Authorization": f"Bearer {shop.ada.token}"},
    )
    assert widget.status == 200
    messages = [(m["sender_kind"], m["text"], m["sender_name"]) for m in widget.json()["results"]]
    assert messages == [
        ("contact", "Hi! Where is my order #1042?", None),
        ("agent", "Hi Ada, #1042 left our warehouse this morning.", "Sam"),
    ]
    assert Message.objects.filter(sender_user=shop.agent).count() == 1


@pytest.mark.parametrize("who", ["typed_ada", "anonymous"])
def test_unproven_conversations_show_no_shield(new_page, shop, who):
    # given
    page = new_page()
    console_sign_in(page, shop.agent)
    visitor = getattr(shop, who)

    # when
    page.goto(conversation_link(shop, visitor))

    # then
    assert page.locator(SHIELD).count() == 0
    side = page.locator("aside.cs-conv-side")
    if who == "typed_ada":
        assert side.locator(".cs-badge--unverified").first.inner_text() == "Unverified"
        panel = side.locator(".cs-panel").inner_text()
        assert any(
            words in panel
            for words in ("Collected by the chat form", "Given by the web page (browser)")
        )
        assert "Platinum" in side.locator(".cs-data--unverified").inner_text()
        assert "Platinum" not in side.locator(".cs-data--verified").inner_text()
    else:
        assert side.locator(".cs-badge--anonymous").first.inner_text() == "Anonymous"


def test_admin_contacts_list_and_contact_panels(new_page, shop, screenshot):
    # given
    page = new_page()
    admin_sign_in(page, shop.agent)

    # when
    page.goto("/admin/contacts/contact/")

    # then
    rows = page.locator("#result_list tbody tr")
    assert rows.count() == 4
    assert page.locator(f"#result_list {SHIELD}").count() == 2
    typed_row = page.locator("#result_list tbody tr", has=page.locator(".cs-unverified"))
    assert typed_row.count() == 1
    assert typed_row.locator(SHIELD).count() == 0
    screenshot(page, "admin-contacts.png")

    # when: the custom-JWT contact's page
    page.goto(f"/admin/contacts/contact/{shop.alan.contact_id}/change/")

    # then
    panel = page.locator(".cs-panel")
    assert "Customer-signed token (custom JWT)" in panel.inner_text()
    claims = page.locator("table.cs-claims")
    assert claims.locator("th").all_inner_texts() == ["iss", "sub", "aud", "iat", "exp", "jti"]
    assert "https://shop.example.com" in claims.inner_text()
    assert page.locator(SHIELD).count() >= 1
    screenshot(page, "admin-contact-verified.png")

    # when: the contact who typed Ada's email
    page.goto(f"/admin/contacts/contact/{shop.typed_ada.contact_id}/change/")

    # then
    assert page.locator(SHIELD).count() == 0
    assert "Platinum" in page.locator(".cs-data--unverified").inner_text()
    assert page.get_by_text("Unverified custom data — sent by the browser, do not trust").count()
    screenshot(page, "admin-contact-non-verified.png")


def test_an_agent_of_another_org_sees_none_of_it(new_page, shop):
    # given
    other = seed_shop(new_page().request, name="Other Shop")
    page = new_page()
    console_sign_in(page, other.agent)

    # then: the console lists only the other shop's conversations
    assert page.locator(".cs-top__org").inner_text() == "Other Shop"
    assert inbox_row(page, "Where is my order #1042?").count() == 1  # their own Ada
    own = {other.ada.conversation_id, other.alan.conversation_id}
    links = page.locator("table.cs-inbox a").evaluate_all("els => els.map(e => e.href)")
    assert len(links) == 4
    assert not any(shop.ada.conversation_id in link for link in links)
    assert sum(any(c in link for c in own) for link in links) == 2

    # and Demo Shop's pages are 404, under either org id
    for url in (
        conversation_link(shop, shop.ada),
        f"/console/conversations/{shop.ada.conversation_id}?org={other.org.pk}",
        f"/console/contacts/{shop.ada.contact_id}?org={shop.org.pk}",
        f"/console/?org={shop.org.pk}",
    ):
        assert page.goto(url).status == 404, url

    # and the admin neither lists nor opens them
    admin_page = new_page()
    admin_sign_in(admin_page, other.agent)
    admin_page.goto("/admin/contacts/contact/")
    assert admin_page.locator("#result_list tbody tr").count() == 4
    admin_page.goto(f"/admin/contacts/contact/{shop.ada.contact_id}/change/")
    assert admin_page.url.endswith("/admin/")
    assert "Ada Lovelace" not in admin_page.locator("#content").inner_text()


# The longest values the API takes, with nowhere to break a line.
LONG_NAME = "N" * 200
LONG_EMAIL = f"{'l' * 64}@{'d' * 63}.{'d' * 63}.{'d' * 56}.test"
LONG_EXTERNAL_ID = "L" * 255


def horizontal_overflow(page) -> int:
    """How many pixels the page is wider than the window (0: no horizontal scrolling)."""
    return page.evaluate(
        "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )


def right_edges(page, cells: str) -> list[float]:
    return page.locator(cells).evaluate_all(
        "cells => cells.map(cell => cell.getBoundingClientRect().right)"
    )


def test_long_unbroken_visitor_values_wrap_inside_the_page(new_page, shop):
    # given: a visitor whose name, email and externalId have no space to break a line at
    contact = ContactFactory(
        org=shop.org, trust=Contact.Trust.NON_VERIFIED, name=LONG_NAME, email=LONG_EMAIL
    )
    conversation = ConversationFactory(contact=contact, external_id=LONG_EXTERNAL_ID)
    MessageFactory(conversation=conversation, sender_contact=contact, body="Hello?")
    page = new_page()
    admin_page = new_page()

    # when
    console_sign_in(page, shop.agent)
    admin_sign_in(admin_page, shop.agent)
    admin_page.goto("/admin/contacts/contact/")

    # then: every row's trust is on screen, in the console's inbox and the admin's list
    inbox_trust = right_edges(page, "table.cs-inbox td.cs-trust-cell")
    assert len(inbox_trust) == 5
    assert max(inbox_trust) <= VIEWPORT["width"]
    assert horizontal_overflow(page) == 0
    admin_trust = right_edges(admin_page, "#result_list td.field-trust_level")
    assert len(admin_trust) == 5
    assert max(admin_trust) <= VIEWPORT["width"]

    # and the conversation and contact pages, in the console and the admin, need no scrolling
    org = f"?org={shop.org.pk}"
    for at, url in [
        (page, f"/console/conversations/{conversation.pk}{org}"),
        (page, f"/console/contacts/{contact.pk}{org}"),
        (admin_page, f"/admin/conversations/conversation/{conversation.pk}/change/"),
        (admin_page, f"/admin/contacts/contact/{contact.pk}/change/"),
    ]:
        at.goto(url)
        assert horizontal_overflow(at) == 0, url


@pytest.fixture
def page_with_back_forward_cache(browser, live_server):
    """A page of a Chromium that keeps pages for Back and Forward as everyday Chrome does
    (Playwright turns that cache off unless told not to)."""
    chromium = browser.browser_type.launch(
        executable_path=str(CHROMIUM),
        headless=True,
        args=CHROMIUM_ARGS,
        ignore_default_args=["--disable-back-forward-cache"],
    )
    try:
        yield live_server_context(chromium, live_server).new_page()
    finally:
        chromium.close()


def test_back_after_signing_out_of_the_console_does_not_show_the_conversation_again(
    page_with_back_forward_cache, shop
):
    # given: an agent reads Ada's conversation, then signs out
    page = page_with_back_forward_cache
    console_sign_in(page, shop.agent)
    page.goto(conversation_link(shop, shop.ada))
    assert "ada@example.com" in page.locator("aside.cs-conv-side").inner_text()
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url("**/console/login")

    # when
    page.go_back(wait_until="commit")

    # then: the page is asked for again (never stored), and sign-in is what comes back
    expect(page).to_have_url(re.compile(r"/console/login\?next="))
    assert "ada@example.com" not in page.content()


def test_an_operator_copies_a_new_api_key_from_the_page_that_shows_it_once(new_page, shop):
    # given
    page = new_page()
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    admin_sign_in(page, shop.owner)
    page.goto("/admin/identity/apikey/add/")

    # when
    page.get_by_label("Name").fill("Order backend")
    page.get_by_label("widget:authenticate").check()
    page.get_by_role("button", name="Create").click()
    page.get_by_role("button", name="Copy").click()

    # then: the page's script (a file of this origin, as the policy asks) copied the key
    key = page.locator("#cs-secret").input_value()
    assert key.startswith("csk_")
    # the clipboard write is asynchronous: wait for the page to say it is done
    expect(page.locator("#cs-copy-status")).to_have_text("Copied to the clipboard.")
    assert page.evaluate("() => navigator.clipboard.readText()") == key


def test_the_api_docs_render_under_the_content_security_policy(new_page):
    # given
    page = new_page()

    # when
    response = page.goto("/api/docs/")

    # then
    assert "script-src 'self'" in response.headers["content-security-policy"]
    page.locator(".swagger-ui .info .title").wait_for()
    assert "chatshield API" in page.locator(".swagger-ui .info .title").inner_text()
    assert page.locator(".opblock-summary-path", has_text="/widget/authenticate-user").count()
