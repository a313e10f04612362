"""The widget on /playground/ in a real browser: each browser context is one device.

Visitors use the real widget against the live server; the verified model gets its tokens from the
playground's demo backend, as a customer's backend would from authenticate-user.
"""

import json

import pytest
from django.utils import timezone

from contacts.models import Contact, Device
from conversations.models import Conversation, Message
from conversations.services import message_post_agent
from identity.demo import seed_identity
from tests.conftest import PASSWORD
from tests.e2e.conftest import SCREENSHOTS, expect_or_skip_module
from tests.factories import MembershipFactory, OrganizationFactory, UserFactory

expect = expect_or_skip_module()

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

CONTACT_MESSAGES = "[data-testid=cs-message][data-sender-kind=contact]"
AGENT_MESSAGES = "[data-testid=cs-message][data-sender-kind=agent]"
EXTRA_FIELDS = [
    {
        "name": "topic",
        "label": "Topic",
        "type": "select",
        "options": ["Billing", "Shipping"],
        "required": True,
    },
    {"name": "order", "label": "Order number", "type": "text", "required": False},
]


@pytest.fixture
def shop():
    """The demo org the playground shows by default."""
    return OrganizationFactory(slug="demo", name="Demo Shop")


@pytest.fixture
def demo_backend(settings, shop):
    """Demo mode on, and the org seeded: the demo backend acts with the seed's demo API key only."""
    settings.DEMO_MODE = True
    seed_identity(slug=shop.slug)


def wait_ready(page) -> None:
    page.wait_for_selector("body[data-pg-state=ready]")


def open_playground(new_page, path: str = "/playground/"):
    """A new device (browser context) on the playground, its widget open and signed in."""
    page = new_page()
    page.goto(path)
    wait_ready(page)
    expect(page.get_by_test_id("cs-panel")).to_be_visible()
    return page


def choose(page, model: str) -> None:
    page.get_by_test_id(f"pg-model-{model}").check()
    wait_ready(page)


def state(page) -> dict:
    return page.evaluate("() => ChatShield._state()")


def stored_token(page, org_id):
    return page.evaluate(f"() => localStorage.getItem('chatshield:{org_id}:token')")


def start_conversation(page, text: str) -> None:
    page.get_by_test_id("cs-new-conversation").click()
    send(page, text)


def send(page, text: str) -> None:
    page.get_by_test_id("cs-message-input").fill(text)
    page.get_by_test_id("cs-send").click()
    expect(page.locator(CONTACT_MESSAGES).last).to_contain_text(text)


def conversation_ids(page) -> list[str]:
    items = page.get_by_test_id("cs-conversation")
    return [items.nth(i).get_attribute("data-id") for i in range(items.count())]


def save_page_with_widget(page, name: str) -> None:
    """The whole page in one viewport, so the fixed widget sits in its corner, not mid-page."""
    height = page.evaluate("() => document.documentElement.scrollHeight")
    page.set_viewport_size({"width": 1280, "height": height})
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / name))


def test_an_anonymous_conversation_stays_on_its_device(new_page, shop):
    # given
    device_1 = open_playground(new_page)
    start_conversation(device_1, "Hello from device one")

    # when
    device_2 = open_playground(new_page)

    # then
    expect(device_2.get_by_test_id("cs-empty")).to_be_visible()
    assert conversation_ids(device_2) == []
    conversation = Conversation.objects.get()
    assert conversation.contact.trust == Contact.Trust.ANONYMOUS
    assert state(device_2)["contactId"] != str(conversation.contact_id)
    device_1.reload()
    wait_ready(device_1)
    expect(device_1.get_by_test_id("cs-conversation")).to_have_count(1)
    assert conversation_ids(device_1) == [str(conversation.pk)]


def test_a_verified_users_history_follows_them_but_not_their_typed_email(
    new_page, shop, demo_backend
):
    # given: Ada signs in on device 1 through the demo backend and chats
    device_1 = open_playground(new_page)
    choose(device_1, "verified")
    expect(device_1.get_by_test_id("pg-state-trust")).to_have_text("verified")
    snippet = device_1.get_by_test_id("pg-snippet").text_content()
    assert "user: {token: CHATSHIELD_TOKEN}," in snippet
    assert "onTokenExpired: fetchChatshieldToken," in snippet
    start_conversation(device_1, "My order never arrived")
    conversation = Conversation.objects.get()
    ada = Contact.objects.get(trust=Contact.Trust.VERIFIED)

    # when: device 2 gets a second token for the same user
    device_2 = open_playground(new_page)
    choose(device_2, "verified")

    # then
    expect(device_2.get_by_test_id("cs-conversation")).to_have_count(1)
    assert conversation_ids(device_2) == [str(conversation.pk)]
    device_2.get_by_test_id("cs-conversation").click()
    expect(device_2.locator(CONTACT_MESSAGES)).to_contain_text("My order never arrived")
    assert Device.objects.filter(contact=ada).count() == 2
    assert Contact.objects.get(pk=ada.pk).email == "ada@example.com"

    # when: a visitor on device 2 types Ada's email into the form instead
    device_2.get_by_test_id("cs-back").click()
    choose(device_2, "form")
    device_2.get_by_test_id("cs-new-conversation").click()
    device_2.get_by_test_id("cs-field-name").fill("Mallory")
    device_2.get_by_test_id("cs-field-email").fill("ada@example.com")
    device_2.get_by_test_id("cs-form-submit").click()
    expect(device_2.get_by_test_id("cs-thread")).to_be_visible()
    device_2.get_by_test_id("cs-back").click()

    # then: only the visitor's own new conversation, from a separate non-verified contact
    expect(device_2.get_by_test_id("cs-conversation")).to_have_count(1)
    typed = Contact.objects.get(trust=Contact.Trust.NON_VERIFIED)
    assert (typed.name, typed.email) == ("Mallory", "ada@example.com")
    assert typed.pk != ada.pk
    assert typed.sender_auth_info["authType"] == "NON_VERIFIED"
    assert typed.sender_auth_info["verified"] is False
    own = Conversation.objects.exclude(pk=conversation.pk).get()
    assert own.contact_id == typed.pk
    assert conversation_ids(device_2) == [str(own.pk)]
    assert state(device_2)["trust"] == "non_verified"


def test_a_refused_verified_token_is_replaced_through_on_token_expired(
    new_page, shop, demo_backend
):
    # given: Ada is signed in, then her token stops working (as when it expires)
    page = open_playground(new_page)
    choose(page, "verified")
    expect(page.get_by_test_id("pg-state-trust")).to_have_text("verified")
    ada = Contact.objects.get(trust=Contact.Trust.VERIFIED)
    Device.objects.filter(contact=ada).update(revoked_at=timezone.now())

    # when
    start_conversation(page, "Still there?")

    # then: the playground's onTokenExpired got a fresh token from the demo backend
    assert Device.objects.filter(contact=ada, revoked_at__isnull=True).count() == 1
    assert Message.objects.get().conversation.contact_id == ada.pk
    expect(page.get_by_test_id("cs-expired")).to_have_count(0)


def test_logout_clears_the_device_and_the_next_visit_is_a_new_contact(new_page, shop):
    # given
    page = open_playground(new_page)
    start_conversation(page, "Using a shared computer")
    first = state(page)["contactId"]
    assert stored_token(page, shop.pk)

    # when
    page.evaluate("() => ChatShield.logout()")

    # then
    assert stored_token(page, shop.pk) is None
    assert Device.objects.get(contact_id=first).revoked_at is not None
    page.reload()
    wait_ready(page)
    second = state(page)["contactId"]
    assert second
    assert second != first
    assert stored_token(page, shop.pk)
    expect(page.get_by_test_id("cs-empty")).to_be_visible()
    assert conversation_ids(page) == []


def test_an_agents_reply_through_the_api_appears_in_the_widget(new_page, shop):
    # given
    agent = UserFactory(first_name="Sam", password=PASSWORD)
    MembershipFactory(user=agent, org=shop, role="agent")
    page = open_playground(new_page)
    start_conversation(page, "Can I change my delivery address?")
    conversation = Conversation.objects.get()
    login = page.request.post(
        "/api/v1/auth/token", data={"email": agent.email, "password": PASSWORD}
    )
    assert login.status == 200, login.text()
    access = login.json()["access"]

    # when
    reply = page.request.post(
        f"/api/v1/orgs/{shop.pk}/conversations/{conversation.pk}/messages",
        data={"text": "Yes: send me the new address and I will update it."},
        headers={"Authorization": f"Bearer {access}"},
    )

    # then
    assert reply.status == 201, reply.text()
    agent_message = page.locator(AGENT_MESSAGES)
    expect(agent_message).to_contain_text("Yes: send me the new address", timeout=10_000)
    expect(agent_message).to_contain_text("Sam")
    assert Message.objects.filter(conversation=conversation).count() == 2
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.get_by_test_id("cs-panel").screenshot(path=str(SCREENSHOTS / "widget-open.png"))


def test_a_reply_that_lands_just_before_the_visitor_sends_is_shown_in_order(new_page, shop):
    # given: a conversation whose thread has just been polled
    agent = UserFactory(first_name="Sam", password=PASSWORD)
    MembershipFactory(user=agent, org=shop, role="agent")
    page = open_playground(new_page)
    with page.expect_response(lambda r: "/messages" in r.url and r.request.method == "GET"):
        start_conversation(page, "Where is my parcel?")
    conversation = Conversation.objects.get()

    # when: an agent replies, and the visitor sends again before the next poll (every 3 s)
    message_post_agent(
        org=shop, conversation=conversation, text="What is your order number?", user=agent
    )
    send(page, "Also, can I change the address?")

    # then: the reply is fetched at once and sits between the two, where it was said
    expect(page.locator(AGENT_MESSAGES)).to_contain_text("What is your order number?")
    texts = page.locator("[data-testid=cs-message] .cs-message-text").all_inner_texts()
    assert texts == [
        "Where is my parcel?",
        "What is your order number?",
        "Also, can I change the address?",
    ]


def test_a_message_keeps_its_indentation_and_line_breaks(new_page, shop):
    # given
    page = open_playground(new_page)
    page.get_by_test_id("cs-new-conversation").click()
    typed = "  def hello():\n      return 'hi'  "

    # when
    page.get_by_test_id("cs-message-input").fill(typed)
    page.get_by_test_id("cs-send").click()

    # then: stored and shown as typed, as the console keeps an agent's reply
    expect(page.locator(CONTACT_MESSAGES)).to_have_count(1)
    assert Message.objects.get().body == typed
    assert page.locator(CONTACT_MESSAGES).get_attribute("data-id") == str(Message.objects.get().pk)


def test_extra_fields_answered_in_the_form_are_stored_on_the_conversation(
    new_page, shop, demo_backend
):
    # given
    shop.extra_data_collection_fields = EXTRA_FIELDS
    shop.save(update_fields=["extra_data_collection_fields"])
    page = open_playground(new_page)
    choose(page, "form")
    page.get_by_test_id("pg-prefill").check()
    wait_ready(page)
    page.get_by_test_id("cs-new-conversation").click()

    # when
    expect(page.get_by_test_id("cs-field-name")).to_have_value("Ada Lovelace")
    expect(page.get_by_test_id("cs-field-email")).to_have_value("ada@example.com")
    page.get_by_test_id("cs-field-topic").select_option("Shipping")
    page.get_by_test_id("cs-field-order").fill("A-1001")
    save_page_with_widget(page, "playground.png")
    page.get_by_test_id("cs-form-submit").click()
    send(page, "Where is my parcel?")

    # then
    conversation = Conversation.objects.get()
    assert conversation.fields == {"topic": "Shipping", "order": "A-1001"}
    contact = conversation.contact
    assert (contact.trust, contact.name, contact.email) == (
        Contact.Trust.NON_VERIFIED,
        "Ada Lovelace",
        "ada@example.com",
    )
    assert contact.sender_auth_info["method"] == "collect_form"


def test_the_copied_embed_snippet_works_on_a_blank_page(new_page, live_server, shop):
    # given
    playground = open_playground(new_page)
    playground.context.grant_permissions(["clipboard-read", "clipboard-write"])
    playground.get_by_test_id("pg-copy").click()
    expect(playground.get_by_test_id("pg-copy")).to_have_text("Copied")
    snippet = playground.evaluate("() => navigator.clipboard.readText()")
    assert snippet == playground.get_by_test_id("pg-snippet").text_content()
    assert f'<script src="{live_server.url}/static/widget/chatshield.js"></script>' in snippet
    assert f'widgetToken: "{shop.widget_token}"' in snippet
    page = new_page()
    page.goto("/healthz")

    # when
    page.set_content(f"<!doctype html><title>Shop</title><h1>Our shop</h1>{snippet}")
    page.get_by_test_id("cs-launcher").click()

    # then
    expect(page.get_by_test_id("cs-panel")).to_be_visible()
    start_conversation(page, "Pasted from the playground")
    message = Message.objects.get()
    assert message.body == "Pasted from the playground"
    assert message.conversation.contact.trust == Contact.Trust.ANONYMOUS


def test_markup_typed_into_the_options_cannot_end_the_snippets_script(new_page, shop, demo_backend):
    # given: the verified model, with markup in externalId and in an extra field's label and key
    hostile = '"</script><img src=x onerror=alert(1)><!--\u2028&'
    fields = [{"name": "topic", "label": f"Topic {hostile}", hostile: hostile}]
    playground = open_playground(new_page)
    choose(playground, "verified")
    playground.get_by_test_id("pg-extra-on").check()
    playground.get_by_test_id("pg-extra-json").fill(json.dumps(fields))
    playground.get_by_test_id("pg-external-id").fill(f"order {hostile} 1")

    # when: the snippet, once it shows the externalId typed last
    expect(playground.get_by_test_id("pg-snippet")).to_contain_text("externalId")
    snippet = playground.get_by_test_id("pg-snippet").text_content()

    # then: nothing in the inline script is markup, and it still says what was typed
    widget_tag, inline = snippet.split("\n", 1)
    assert widget_tag.endswith("></script>")
    assert inline.startswith("<script>\n")
    assert inline.endswith("\n</script>")
    assert "<" not in inline.removeprefix("<script>").removesuffix("</script>")
    assert "\u2028" not in inline
    page = new_page()
    page.goto("/healthz")
    page.set_content(
        "<!doctype html><title>Shop</title>"
        "<script>window.ChatShield = {init: (options) => { window.options = options; }};</script>"
        f"{inline}<p>end of page</p>"
    )
    assert page.evaluate(
        "() => [window.options.user, window.options.extraDataCollectionFields]"
    ) == [
        {"token": "{{ token from your backend }}", "externalId": f"order {hostile} 1"},
        fields,
    ]
    assert page.locator("img").count() == 0
    expect(page.locator("p")).to_have_text("end of page")


def test_init_from_the_head_mounts_the_widget_once_the_body_exists(new_page, live_server, shop):
    # given: a page that calls init() in <head>, before <body> is parsed
    page = new_page()
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto("/healthz")

    # when
    page.set_content(
        f'<!doctype html><html><head><script src="{live_server.url}/static/widget/chatshield.js">'
        f'</script><script>ChatShield.init({{widgetToken: "{shop.widget_token}"}});</script>'
        "</head><body><h1>Our shop</h1></body></html>"
    )
    page.get_by_test_id("cs-launcher").click()

    # then
    expect(page.get_by_test_id("cs-panel")).to_be_visible()
    start_conversation(page, "Hello from a head script")
    assert errors == []
    assert Message.objects.get().body == "Hello from a head script"


def test_a_long_thread_is_fetched_page_after_page_without_waiting_for_the_poll(new_page, shop):
    # given: a visitor's conversation that already holds 450 messages (three of the server's pages)
    page = open_playground(new_page)
    start_conversation(page, "message 0")
    conversation = Conversation.objects.get()
    Message.objects.bulk_create(
        Message(org=shop, conversation=conversation, sender_kind="agent", body=f"reply {n}")
        for n in range(449)
    )

    # when: the visitor opens it again
    page.get_by_test_id("cs-back").click()
    page.get_by_test_id("cs-conversation").first.click()

    # then: all of it, well within one 3 s poll interval
    expect(page.locator("[data-testid=cs-message]")).to_have_count(450, timeout=2_500)
    assert page.locator(AGENT_MESSAGES).last.locator(".cs-message-text").inner_text() == "reply 448"


def test_the_playground_shows_the_stored_device_and_forgets_it(new_page, shop):
    # given: an anonymous visitor who chatted, so the widget keeps a device token for the org
    page = open_playground(new_page)
    start_conversation(page, "Remember me")
    first = state(page)["contactId"]
    expect(page.get_by_test_id("pg-state-stored")).to_have_text("yes")

    # when
    page.get_by_test_id("pg-forget").click()
    wait_ready(page)

    # then: the widget starts over as a new contact on this browser
    assert stored_token(page, shop.pk) is not None
    assert state(page)["contactId"] not in (None, first)
    assert Contact.objects.count() == 2
