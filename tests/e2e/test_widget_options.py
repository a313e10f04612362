"""The widget's init options against the org's settings, on a blank page in a real browser.

The server is the truth: its extraDataCollectionFields are asked for whenever it requires one, the
visitor's device is kept per org (a rotated widget token strands nobody), and a failed first
config load is tried again.
"""

import json
import re
from urllib.parse import urlsplit

import pytest

from contacts.models import Contact, Device
from contacts.services import VerifiedProfile, VerifiedProof, contact_verified_sign_in
from conversations.models import Conversation, Message
from identity.services import (
    organization_widget_settings_update,
    organization_widget_token_rotate,
)
from tests.e2e.conftest import expect_or_skip_module, live_server_context
from tests.factories import OrganizationFactory

expect = expect_or_skip_module()

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

CONTACT_MESSAGES = "[data-testid=cs-message][data-sender-kind=contact]"
INLINE = "container: document.getElementById('chat')"
TOPIC = {
    "name": "topic",
    "label": "Topic",
    "type": "select",
    "options": ["Billing", "Shipping"],
    "required": True,
}
ORDER = {"name": "order", "label": "Order number", "type": "text", "required": False}


def blank_page(new_page):
    """A page of the live server's origin with nothing on it yet."""
    page = new_page()
    page.goto("/healthz")
    return page


def embed(page, live_server, widget_token: str, options: str = INLINE) -> None:
    """The shop's page: the widget's script tag and an inline init() with `options`."""
    page.set_content(
        '<!doctype html><title>Shop</title><h1>Our shop</h1><div id="chat"></div>'
        f'<script src="{live_server.url}/static/widget/chatshield.js"></script>'
        f'<script>ChatShield.init({{widgetToken: "{widget_token}", {options}}});</script>'
    )


def state(page) -> dict:
    return page.evaluate("() => ChatShield._state()")


def stored(page) -> dict:
    return page.evaluate(
        "() => Object.fromEntries(Object.keys(localStorage).map((k) => [k, localStorage[k]]))"
    )


def send(page, text: str) -> None:
    page.get_by_test_id("cs-message-input").fill(text)
    page.get_by_test_id("cs-send").click()
    expect(page.locator(CONTACT_MESSAGES).last).to_contain_text(text)


def form_labels(page) -> list[str]:
    return page.locator("[data-testid=cs-form] label").all_inner_texts()


def conversation_ids(page) -> list[str]:
    items = page.get_by_test_id("cs-conversation")
    return [items.nth(i).get_attribute("data-id") for i in range(items.count())]


@pytest.mark.parametrize(
    ("org_collects", "options"),
    [
        pytest.param(False, INLINE, id="collectUserData off in the org"),
        pytest.param(True, INLINE + ", collectUserData: false", id="collectUserData off in init"),
    ],
)
def test_a_required_extra_field_is_asked_for_without_collect_user_data(
    new_page, live_server, org_collects, options
):
    # given
    shop = OrganizationFactory(
        collect_user_data=org_collects, extra_data_collection_fields=[TOPIC, ORDER]
    )
    page = blank_page(new_page)
    embed(page, live_server, shop.widget_token, options)

    # when
    page.get_by_test_id("cs-new-conversation").click()

    # then: the extra fields only, no name and email
    expect(page.get_by_test_id("cs-form")).to_be_visible()
    assert form_labels(page) == ["Topic *", "Order number"]
    page.get_by_test_id("cs-field-topic").select_option("Shipping")
    page.get_by_test_id("cs-form-submit").click()
    send(page, "Where is my parcel?")
    conversation = Conversation.objects.get()
    assert conversation.fields == {"topic": "Shipping"}
    assert conversation.contact.trust == Contact.Trust.ANONYMOUS
    assert Message.objects.get().body == "Where is my parcel?"
    expect(page.get_by_test_id("cs-status")).to_have_text("")


def test_a_verified_visitor_answers_the_required_extra_fields_but_not_name_and_email(
    new_page, live_server
):
    # given: an org that does not collect details, and a token from the customer's backend
    shop = OrganizationFactory(collect_user_data=False, extra_data_collection_fields=[TOPIC])
    issued = contact_verified_sign_in(
        org=shop,
        profile=VerifiedProfile(email="ada@example.com", name="Ada Lovelace"),
        proof=VerifiedProof(method="api_key", key_id="csk_test"),
    )
    page = blank_page(new_page)
    embed(page, live_server, shop.widget_token, INLINE + f", user: {{token: '{issued.token}'}}")

    # when
    page.get_by_test_id("cs-new-conversation").click()

    # then
    expect(page.get_by_test_id("cs-form")).to_be_visible()
    assert form_labels(page) == ["Topic *"]
    page.get_by_test_id("cs-field-topic").select_option("Billing")
    page.get_by_test_id("cs-form-submit").click()
    send(page, "About my invoice")
    conversation = Conversation.objects.get()
    assert conversation.fields == {"topic": "Billing"}
    assert conversation.contact_id == issued.contact.pk
    assert Contact.objects.get(pk=issued.contact.pk).trust == Contact.Trust.VERIFIED


def test_the_pages_extra_fields_relabel_and_reorder_but_never_replace_the_servers(
    new_page, live_server
):
    # given: a page whose list relabels "order", makes it a required number, adds an unknown
    # field and leaves out the server's required "topic"
    shop = OrganizationFactory(collect_user_data=True, extra_data_collection_fields=[TOPIC, ORDER])
    page_fields = [
        {"name": "order", "label": "Your order", "type": "number", "required": True},
        {"name": "shoe_size", "label": "Shoe size", "type": "text", "required": True},
    ]
    page = blank_page(new_page)
    embed(
        page,
        live_server,
        shop.widget_token,
        INLINE + f", extraDataCollectionFields: {json.dumps(page_fields)}",
    )

    # when
    page.get_by_test_id("cs-new-conversation").click()

    # then: the page's label and order; the server's type and required; topic still asked for
    expect(page.get_by_test_id("cs-form")).to_be_visible()
    assert form_labels(page) == ["Name *", "Email *", "Your order", "Topic *"]
    expect(page.get_by_test_id("cs-field-shoe_size")).to_have_count(0)
    page.get_by_test_id("cs-field-name").fill("Ada Lovelace")
    page.get_by_test_id("cs-field-email").fill("ada@example.com")
    page.get_by_test_id("cs-field-order").fill("A-1001")
    page.get_by_test_id("cs-field-topic").select_option("Billing")
    page.get_by_test_id("cs-form-submit").click()
    send(page, "Wrong amount on my invoice")
    conversation = Conversation.objects.get()
    assert conversation.fields == {"topic": "Billing", "order": "A-1001"}
    assert (conversation.contact.trust, conversation.contact.email) == (
        Contact.Trust.NON_VERIFIED,
        "ada@example.com",
    )


def test_a_field_required_since_the_page_loaded_brings_up_the_form_with_its_error(
    new_page, live_server
):
    # given: the widget loaded while the org asked for nothing
    shop = OrganizationFactory(collect_user_data=False, extra_data_collection_fields=[])
    page = blank_page(new_page)
    embed(page, live_server, shop.widget_token)
    expect(page.get_by_test_id("cs-empty")).to_be_visible()
    organization_widget_settings_update(org=shop, changes={"extra_data_collection_fields": [TOPIC]})
    page.get_by_test_id("cs-new-conversation").click()

    # when: the first message would open the conversation
    page.get_by_test_id("cs-message-input").fill("Where is my parcel?")
    page.get_by_test_id("cs-send").click()

    # then: the form, with the server's word on the field, instead of "The request is invalid."
    expect(page.get_by_test_id("cs-form")).to_be_visible()
    expect(page.get_by_test_id("cs-status")).to_have_text("Please check the highlighted fields.")
    topic = page.get_by_test_id("cs-field-topic")
    expect(topic).to_have_attribute("aria-invalid", "true")
    expect(page.locator("[data-testid=cs-form] .cs-field-error")).to_have_text(
        ["This field is required."]
    )
    assert Conversation.objects.count() == 0
    topic.select_option("Shipping")
    page.get_by_test_id("cs-form-submit").click()
    expect(page.get_by_test_id("cs-message-input")).to_have_value("Where is my parcel?")
    page.get_by_test_id("cs-send").click()
    expect(page.locator(CONTACT_MESSAGES)).to_have_count(1)
    conversation = Conversation.objects.get()
    assert conversation.fields == {"topic": "Shipping"}
    assert Message.objects.get().body == "Where is my parcel?"


def chatting_before_a_rotation(new_page, live_server):
    """A shop's page where a visitor has opened a conversation and said hello: (shop, page)."""
    shop = OrganizationFactory()
    page = blank_page(new_page)
    embed(page, live_server, shop.widget_token)
    page.get_by_test_id("cs-new-conversation").click()
    send(page, "Hello before the rotation")
    return shop, page


def test_a_visitor_keeps_their_device_and_history_when_the_widget_token_is_rotated(
    new_page, live_server
):
    # given
    shop, page = chatting_before_a_rotation(new_page, live_server)
    before = state(page)
    conversation = Conversation.objects.get()

    # when: an operator rotates the token and the shop's page carries the new one
    organization_widget_token_rotate(org=shop)
    page.goto("/healthz")
    embed(page, live_server, shop.widget_token)

    # then: the same contact and device, its conversation, stored under the org's id
    expect(page.get_by_test_id("cs-conversation")).to_have_count(1)
    assert conversation_ids(page) == [str(conversation.pk)]
    assert state(page) == before
    assert sorted(stored(page)) == [
        f"chatshield:{shop.pk}:externalId",
        f"chatshield:{shop.pk}:meta",
        f"chatshield:{shop.pk}:token",
    ]
    assert Contact.objects.count() == 1


def test_a_widget_open_across_a_rotation_keeps_the_device_token_the_server_still_accepts(
    new_page, live_server
):
    # given: a visitor's thread open and polled, and the answers the widget gets counted from now
    # on (answers, not requests: a poll sent just before the listener may be answered after the
    # rotation)
    shop, page = chatting_before_a_rotation(new_page, live_server)
    kept = stored(page)
    before = state(page)
    conversation = Conversation.objects.get()
    token = kept[f"chatshield:{shop.pk}:token"]
    answered = []
    page.on(
        "response",
        lambda r: answered.append(
            (
                r.request.method,
                urlsplit(r.url).path,
                r.request.headers.get("authorization"),
                r.status,
            )
        ),
    )

    # when: an operator rotates the token while the page still carries the old one
    organization_widget_token_rotate(org=shop)
    expect(page.get_by_test_id("cs-status")).to_contain_text("Authentication credentials")
    page.wait_for_timeout(3_500)  # longer than a poll interval

    # then: one refused poll, one refused mint that presented the stored token, and no more
    # (a poll answered before the rotation took effect is the only other answer)
    poll = ("GET", f"/widget/sessions/{conversation.pk}/messages", f"Bearer {token}")
    mint = ("POST", "/widget/contacts/unverified", f"Bearer {token}")
    assert answered[-2:] == [(*poll, 401), (*mint, 401)]
    assert set(answered[:-2]) <= {(*poll, 200)}
    assert stored(page) == kept

    # when: the visitor reloads the page, which now carries the new token
    page.goto("/healthz")
    embed(page, live_server, shop.widget_token)

    # then: the same contact, with their conversation
    expect(page.get_by_test_id("cs-conversation")).to_have_count(1)
    assert conversation_ids(page) == [str(conversation.pk)]
    assert state(page) == before
    page.get_by_test_id("cs-conversation").click()
    expect(page.locator(f"{CONTACT_MESSAGES} .cs-message-text")).to_have_text(
        ["Hello before the rotation"]
    )
    assert stored(page) == kept
    assert Contact.objects.count() == 1
    assert Device.objects.count() == 1


def test_entries_kept_under_a_rotated_away_widget_token_are_adopted(new_page, live_server):
    # given: what the widget used to keep under the widget token, for this org and another
    shop = OrganizationFactory()
    other = OrganizationFactory()
    page = blank_page(new_page)

    def mint(org, external_id: str) -> dict:
        response = page.request.post(
            "/widget/contacts/unverified",
            data={"externalId": external_id},
            headers={"X-Widget-Token": org.widget_token},
        )
        assert response.status == 201, response.text()
        return response.json()

    minted = mint(shop, "visitor-1")
    opened = page.request.post(
        "/widget/sessions",
        data={"externalId": "visitor-1"},
        headers={"X-Widget-Token": shop.widget_token, "Authorization": f"Bearer {minted['token']}"},
    )
    assert opened.status == 201, opened.text()
    elsewhere = mint(other, "visitor-2")
    old = shop.widget_token
    legacy = {
        f"chatshield:{old}:token": minted["token"],
        f"chatshield:{old}:meta": json.dumps(
            {"contactId": minted["contact"]["id"], "trust": "anonymous", "fp": "0"}
        ),
        f"chatshield:{old}:externalId": "visitor-1",
        f"chatshield:{other.widget_token}:token": elsewhere["token"],
        f"chatshield:{other.widget_token}:externalId": "visitor-2",
    }
    page.evaluate("(entries) => Object.assign(localStorage, entries)", legacy)
    organization_widget_token_rotate(org=shop)

    # when
    embed(page, live_server, shop.widget_token)

    # then: this org's entries moved under its id, the other org's stay where they were
    expect(page.get_by_test_id("cs-conversation")).to_have_count(1)
    assert conversation_ids(page) == [opened.json()["id"]]
    assert state(page) == {
        "trust": "anonymous",
        "externalId": "visitor-1",
        "contactId": minted["contact"]["id"],
    }
    entries = stored(page)
    assert entries == {
        f"chatshield:{shop.pk}:token": minted["token"],
        f"chatshield:{shop.pk}:meta": legacy[f"chatshield:{old}:meta"],
        f"chatshield:{shop.pk}:externalId": "visitor-1",
        f"chatshield:{other.widget_token}:token": elsewhere["token"],
        f"chatshield:{other.widget_token}:externalId": "visitor-2",
    }
    assert Contact.objects.filter(org=shop).count() == 1


@pytest.mark.parametrize(
    ("failure", "options", "status"),
    [
        pytest.param(
            {},
            INLINE,
            "Can't reach the chat server. Check your connection and try again.",
            id="inline, network error",
        ),
        pytest.param(
            {
                "status": 503,
                "headers": {"Retry-After": "1"},
                "json": {"error": {"code": "unavailable", "message": "Try later."}},
            },
            "open: true",
            "The chat server had a problem. Please try again.",
            id="open: true, 503 with Retry-After",
        ),
    ],
)
def test_a_failed_first_config_load_is_tried_again_while_the_widget_is_open(
    new_page, live_server, failure, options, status
):
    # given: the first GET /widget/config fails
    shop = OrganizationFactory()
    page = blank_page(new_page)
    loads = []

    def config(route):
        loads.append(route.request.url)
        if len(loads) > 1:
            route.continue_()
        elif failure:
            route.fulfill(**failure)
        else:
            route.abort()

    page.route("**/widget/config", config)

    # when
    embed(page, live_server, shop.widget_token, options)

    # then: the reason meanwhile, then the widget, within Retry-After or the first 3 s back-off
    expect(page.get_by_test_id("cs-status")).to_have_text(status)
    expect(page.get_by_test_id("cs-loading")).to_be_visible()
    expect(page.get_by_test_id("cs-new-conversation")).to_be_visible(
        timeout=2_500 if failure else 5_000
    )
    expect(page.get_by_test_id("cs-status")).to_have_text("")
    assert len(loads) == 2
    page.get_by_test_id("cs-new-conversation").click()
    send(page, "Hello after the retry")
    assert Message.objects.get().conversation.org_id == shop.pk


def test_a_verified_logout_also_revokes_the_device_token_a_failed_adoption_left(
    new_page, live_server
):
    # given: a guest's visit, then the customer signs in while the adoption fails (a 503)
    shop = OrganizationFactory()
    page = blank_page(new_page)
    embed(page, live_server, shop.widget_token)
    page.get_by_test_id("cs-new-conversation").click()
    send(page, "Hello as a guest")
    guest = Device.objects.get()
    device_token = stored(page)[f"chatshield:{shop.pk}:token"]
    issued = contact_verified_sign_in(
        org=shop,
        profile=VerifiedProfile(email="ada@example.com", name="Ada Lovelace"),
        proof=VerifiedProof(method="api_key", key_id="csk_test"),
    )
    page.goto("/healthz")
    page.route(
        "**/widget/contacts/adopt",
        lambda route: route.fulfill(
            status=503,
            content_type="application/json",
            body='{"error": {"code": "service_unavailable", "message": "Try again."}}',
        ),
    )
    with page.expect_response(lambda response: response.url.endswith("/widget/contacts/adopt")):
        embed(page, live_server, shop.widget_token, INLINE + f", user: {{token: '{issued.token}'}}")
    page.evaluate("() => ChatShield.ready")
    assert stored(page)[f"chatshield:{shop.pk}:token"] == device_token  # kept for the next try

    # when: the customer logs out on this shared computer
    page.evaluate("() => ChatShield.logout()")

    # then: the verified token and the guest's device token are both revoked, not only forgotten
    guest.refresh_from_db()
    assert guest.revoked_at is not None
    assert Device.objects.get(pk=issued.device.pk).revoked_at is not None
    assert f"chatshield:{shop.pk}:token" not in stored(page)


def test_a_logout_before_the_config_arrives_still_forgets_the_device(new_page, live_server):
    # given: a returning visitor whose widget could not load its config yet
    shop = OrganizationFactory()
    page = blank_page(new_page)
    embed(page, live_server, shop.widget_token)
    page.get_by_test_id("cs-new-conversation").click()
    send(page, "Using a shared computer")
    first = state(page)["contactId"]
    page.goto("/healthz")
    page.route("**/widget/config", lambda route: route.abort(), times=1)
    embed(page, live_server, shop.widget_token, "open: false")
    page.evaluate("() => ChatShield.ready.catch(() => null)")

    # when
    page.evaluate("() => ChatShield.logout()")
    with page.expect_response(lambda response: response.url.endswith("/widget/logout")):
        page.get_by_test_id("cs-launcher").click()

    # then: a new contact, none of the old conversations, the old device revoked
    expect(page.get_by_test_id("cs-empty")).to_be_visible()
    second = state(page)["contactId"]
    assert second
    assert second != first
    assert conversation_ids(page) == []
    assert Device.objects.get(contact_id=first).revoked_at is not None


SLOW_FETCH = """
<script>
  // Holds the widget's requests whose URL has `part` for `ms`, as a slow network would, and
  // counts them in window.held.
  window.held = 0;
  window.slowDown = (part, ms) => {
    const fetch = window.fetch;
    window.fetch = (url, init) => {
      if (!String(url).includes(part)) return fetch(url, init);
      window.held += 1;
      return new Promise((resolve) => setTimeout(resolve, ms)).then(() => fetch(url, init));
    };
  };
</script>
"""


def embed_slow(page, live_server, widget_token: str, part: str, ms: int) -> None:
    """The shop's page, with the widget's requests to `part` held for `ms` ms each."""
    page.set_content(
        f'<!doctype html><title>Shop</title><div id="chat"></div>{SLOW_FETCH}'
        f"<script>slowDown({part!r}, {ms});</script>"
        f'<script src="{live_server.url}/static/widget/chatshield.js"></script>'
        f'<script>ChatShield.init({{widgetToken: "{widget_token}", {INLINE}}});</script>'
    )


def test_what_the_visitor_types_while_a_message_is_sent_is_kept(new_page, live_server):
    # given: a conversation, and posts that take 600 ms
    org = OrganizationFactory()
    page = blank_page(new_page)
    embed_slow(page, live_server, org.widget_token, "/messages", 600)
    page.get_by_test_id("cs-new-conversation").click()
    send(page, "has my parcel left?")
    box = page.get_by_test_id("cs-message-input")

    # when: they send, then type on while it is on its way
    box.fill("it has not arrived yet")
    box.press("Enter")
    box.type("and the tracking link is dead")

    # then: the sent message is shown and what they typed since stays in the box
    expect(page.locator(CONTACT_MESSAGES).last).to_have_text(re.compile("it has not arrived yet"))
    expect(box).to_have_value("and the tracking link is dead")
    bodies = list(Message.objects.order_by("pk").values_list("body", flat=True))
    assert bodies == ["has my parcel left?", "it has not arrived yet"]


def test_a_logout_while_the_first_token_is_on_its_way_revokes_it(new_page, live_server):
    # given: a shared computer, and a first sign-in that takes 800 ms
    org = OrganizationFactory()
    page = blank_page(new_page)
    embed_slow(page, live_server, org.widget_token, "/widget/contacts/unverified", 800)

    # when: the visitor logs out once it is on its way, before it has arrived
    page.wait_for_function("() => window.held > 0")
    page.evaluate("() => ChatShield.logout()")

    # then: the identity that arrived is revoked, so the next person does not inherit it
    first = Contact.objects.order_by("first_seen_at").first()
    assert first is not None
    assert Device.objects.get(contact=first).revoked_at is not None
    assert page.evaluate("() => ChatShield._state().contactId") != str(first.pk)


@pytest.fixture
def two_tabs(browser, live_server):
    """Two pages of one browser (one context: one localStorage), on the live server's origin."""
    context = live_server_context(browser, live_server)
    tabs = context.new_page(), context.new_page()
    for page in tabs:
        page.goto("/healthz")
    yield tabs
    context.close()


def test_two_tabs_opened_on_a_first_visit_share_one_identity(two_tabs, live_server):
    # given: a first visit, in one browser, whose sign-ins take 800 ms each
    org = OrganizationFactory()
    first, second = two_tabs

    # when: the shop is opened in two tabs, the second while the first tab's sign-in is on its way
    embed_slow(first, live_server, org.widget_token, "/widget/contacts/unverified", 800)
    first.wait_for_function("() => window.held > 0")
    embed_slow(second, live_server, org.widget_token, "/widget/contacts/unverified", 800)
    for page in two_tabs:
        page.wait_for_function("() => ChatShield._state().contactId !== null")

    # then: one contact and one device, which both tabs use with the same externalId
    contact = Contact.objects.get()
    assert Device.objects.get().contact == contact
    assert state(first) == state(second)
    assert state(first)["contactId"] == str(contact.pk)
    assert second.evaluate("() => window.held") == 0


def test_after_a_logout_the_tabs_sign_in_again_as_one_new_identity(two_tabs, live_server):
    # given: a shared computer with the shop open in two tabs, one visitor's identity in both
    org = OrganizationFactory()
    first, second = two_tabs
    for page in two_tabs:
        embed(page, live_server, org.widget_token)
        page.wait_for_function("() => ChatShield._state().contactId !== null")
    before = Contact.objects.get()

    # when: they log out in the first tab and the next person chats in both
    first.evaluate("() => ChatShield.logout()")
    first.get_by_test_id("cs-new-conversation").click()
    send(first, "first tab")
    second.get_by_test_id("cs-new-conversation").click()
    send(second, "second tab")

    # then: the old identity is revoked, and both tabs share one new one
    after = Contact.objects.exclude(pk=before.pk).get()
    assert state(first)["contactId"] == state(second)["contactId"] == str(after.pk)
    assert Device.objects.get(contact=before).revoked_at is not None
    assert set(Conversation.objects.values_list("contact", flat=True)) == {after.pk}


def test_an_unknown_widget_token_on_a_customers_site_is_said_once_and_not_retried(
    browser, live_server
):
    # given: a customer's page on another origin (127.0.0.1 against the server's localhost)
    site = live_server.url.replace("localhost", "127.0.0.1")
    assert site != live_server.url
    context = browser.new_context()
    configs = []
    context.route(
        "**/*",
        lambda route: (
            route.continue_()
            if route.request.url.startswith((site, live_server.url))
            else route.abort()
        ),
    )
    page = context.new_page()
    page.on("request", lambda r: configs.append(r.url) if "/widget/config" in r.url else None)
    page.goto(f"{site}/healthz")

    # when: its widget token is wrong (or was rotated away)
    embed(page, live_server, "wgt_no_such_token")

    # then: the widget reads the refusal across origins, says it, and does not ask again
    status = page.locator(".cs-status")
    expect(status).to_contain_text("Authentication credentials")
    page.wait_for_timeout(4_000)
    assert len(configs) == 1
    context.close()
