"""The Django admin: membership scoping, operator-only secrets shown once, the contact panel."""

import re

import pytest
from django.contrib.sessions.models import Session
from django.core.cache import cache
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from contacts.models import Contact
from contacts.services import sender_auth_info_build
from conversations.data_rights import contact_erase
from identity.admin import MEMBER_TURNED_OFF
from identity.models import ApiKey, AuditEvent, Membership, SigningSecret, User
from identity.services import (
    api_key_create,
    api_key_revoke,
    audit_record,
    signing_secret_create_shared,
    signing_secret_retire,
)
from identity.tokens import api_key_matches
from identity.widget_cache import widget_config_cache_key
from tests.conftest import PASSWORD, agent_access_token
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
CONTACTS = "/admin/contacts/contact/"
CONVERSATIONS = "/admin/conversations/conversation/"
API_KEYS = "/admin/identity/apikey/"
SIGNING_SECRETS = "/admin/identity/signingsecret/"
KEY_PATTERN = re.compile(r"csk_[A-Za-z0-9_\-]{20,}")


def admin_client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def agent_admin(agent_user) -> Client:
    return admin_client(agent_user)


@pytest.fixture
def operator_admin(operator_user) -> Client:
    return admin_client(operator_user)


def verified_contact(org, **kwargs) -> Contact:
    contact = VerifiedContactFactory(org=org, **kwargs)
    contact.sender_auth_info = sender_auth_info_build(
        contact=contact, method="api_key", key_id="csk_abc123"
    )
    contact.save()
    return contact


def non_verified_contact(org, **kwargs) -> Contact:
    kwargs.setdefault("email", "typed@visitor.test")
    contact = ContactFactory(org=org, trust=Contact.Trust.NON_VERIFIED, **kwargs)
    contact.sender_auth_info = sender_auth_info_build(contact=contact, method="collect_form")
    contact.save()
    return contact


def changelist_ids(response) -> set:
    return {str(obj.pk) for obj in response.context["cl"].result_list}


# --- scoping -----------------------------------------------------------------------------------


def test_contacts_changelist_shows_only_the_members_orgs(agent_admin, org, other_org):
    # given
    mine = verified_contact(org)
    verified_contact(other_org)

    # when
    response = agent_admin.get(CONTACTS)

    # then
    assert response.status_code == 200
    assert changelist_ids(response) == {str(mine.pk)}


def test_agent_of_two_orgs_sees_both_without_duplicates(agent_user, org, other_org):
    # given
    MembershipFactory(user=agent_user, org=other_org)
    MembershipFactory(org=org)  # another member: a join through memberships would duplicate rows
    contacts = {str(verified_contact(org).pk), str(verified_contact(other_org).pk)}

    # when
    response = admin_client(agent_user).get(CONTACTS)

    # then
    listed = [str(c.pk) for c in response.context["cl"].result_list]
    assert sorted(listed) == sorted(contacts)


def test_superuser_sees_every_org(org, other_org):
    superuser = UserFactory(is_superuser=True)
    contacts = {str(verified_contact(org).pk), str(verified_contact(other_org).pk)}

    response = admin_client(superuser).get(CONTACTS)

    assert changelist_ids(response) == contacts


def test_org_filter_offers_only_the_members_orgs(agent_user, org, other_org):
    # given
    MembershipFactory(user=agent_user, org=other_org)
    stranger_org = MembershipFactory().org

    # when
    content = admin_client(agent_user).get(CONTACTS).content.decode()

    # then
    assert org.name in content
    assert other_org.name in content
    assert stranger_org.name not in content


def test_another_orgs_contact_page_is_not_shown(agent_admin, other_org):
    contact = verified_contact(other_org, name="Secret Customer")

    response = agent_admin.get(f"{CONTACTS}{contact.pk}/change/", follow=True)

    assert b"Secret Customer" not in response.content
    assert response.redirect_chain[0] == ("/admin/", 302)


def test_conversations_changelist_is_scoped(agent_admin, org, other_org):
    mine = ConversationFactory(contact=verified_contact(org))
    ConversationFactory(contact=verified_contact(other_org))

    response = agent_admin.get("/admin/conversations/conversation/")

    assert changelist_ids(response) == {str(mine.pk)}


def test_members_without_memberships_see_nothing(org):
    outsider = admin_client(UserFactory())
    verified_contact(org)

    assert outsider.get(CONTACTS).status_code == 403
    index = outsider.get("/admin/")
    assert index.status_code == 200
    assert index.context["app_list"] == []


# --- contacts list and page --------------------------------------------------------------------


def test_contacts_changelist_has_the_shield_for_verified_only(agent_admin, org):
    # given
    verified_contact(org, name="Vera Verified")
    non_verified_contact(org, name="Nina Typed")
    ContactFactory(org=org)

    # when
    content = agent_admin.get(CONTACTS).content.decode()

    # then
    rows = re.findall(r"<tr>.*?</tr>", content, flags=re.S)
    (verified_row,) = [r for r in rows if "Vera Verified" in r]
    (typed_row,) = [r for r in rows if "Nina Typed" in r]
    assert content.count(SHIELD) == 1
    assert SHIELD in verified_row
    assert "#18BDF7" in verified_row
    assert "<title>Verified</title>" in verified_row
    assert SHIELD not in typed_row
    assert "unverified" in typed_row


def test_contacts_changelist_settings(agent_admin, org):
    verified_contact(org)

    response = agent_admin.get(CONTACTS)

    cl = response.context["cl"]
    assert cl.show_full_result_count is False
    assert cl.search_fields == ("name", "email", "user_id")
    assert cl.list_select_related == ("org",)
    assert response.context["cl"].model_admin.ordering == ("-last_seen_at",)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("Vera", "vera"),
        ("nina@typed.test", "nina"),
        ("user-77", "vera"),
        ("trust=verified", "vera"),
    ],
)
def test_contacts_changelist_search_and_trust_filter(agent_admin, org, query, expected):
    contacts = {
        "vera": verified_contact(org, name="Vera Verified", user_id="user-77"),
        "nina": non_verified_contact(org, name="Nina", email="nina@typed.test"),
    }
    url = f"{CONTACTS}?{query}" if "=" in query else f"{CONTACTS}?q={query}"

    response = agent_admin.get(url)

    assert changelist_ids(response) == {str(contacts[expected].pk)}


def test_contacts_changelist_query_count_is_constant(
    agent_admin, org, django_assert_max_num_queries
):
    # given
    for _ in range(2):
        verified_contact(org)
    with CaptureQueriesContext(connection) as few:
        assert agent_admin.get(CONTACTS).status_code == 200
    for _ in range(25):
        non_verified_contact(org, email="")

    # then
    with django_assert_max_num_queries(len(few)):
        response = agent_admin.get(CONTACTS)
    assert len(response.context["cl"].result_list) == 27


@pytest.mark.parametrize(
    ("query", "rows"),
    [("", 26), ("?status=open", 26), ("?contact__trust__exact=verified", 13), ("?q=Nina", 13)],
)
def test_conversations_changelist_query_count_is_constant(
    agent_user, org, other_org, query, rows, django_assert_num_queries
):
    # given: an agent of two orgs; in each pair, a verified contact's conversation in one org and
    # a non-verified contact's in the other, with a last message and an assignee
    MembershipFactory(user=agent_user, org=other_org)
    client = admin_client(agent_user)

    def add_pairs(count):
        for _ in range(count):
            for contact in (verified_contact(org), non_verified_contact(other_org, name="Nina")):
                conversation = ConversationFactory(contact=contact, assignee=UserFactory())
                MessageFactory(conversation=conversation, sender_contact=contact)

    add_pairs(1)
    client.get(f"{CONVERSATIONS}{query}")
    with CaptureQueriesContext(connection) as few:
        assert client.get(f"{CONVERSATIONS}{query}").status_code == 200
    add_pairs(12)

    # then
    with django_assert_num_queries(len(few)):
        response = client.get(f"{CONVERSATIONS}{query}")
    assert len(response.context["cl"].result_list) == rows


def test_conversation_page_query_count_does_not_grow_with_the_thread(
    agent_admin, org, django_assert_num_queries
):
    # given: a verified contact's thread with every kind of sender
    contact = verified_contact(org)
    conversation = ConversationFactory(
        contact=contact, assignee=UserFactory(), sender_auth_info=contact.sender_auth_info
    )
    key = api_key_create(
        org=org, created_by=None, name="CRM", scopes=["conversations:write"], expires_at=None
    ).api_key
    page = f"{CONVERSATIONS}{conversation.pk}/change/"
    thread_add(conversation, 4, api_key=key)
    agent_admin.get(page)
    with CaptureQueriesContext(connection) as few:
        assert agent_admin.get(page).status_code == 200
    thread_add(conversation, 36, api_key=key)

    # then
    with django_assert_num_queries(len(few)):
        response = agent_admin.get(page)
    assert len(response.context["thread"]) == 40


def add_members(org, other_org, operator_user, count):
    for index in range(count):
        MembershipFactory(org=(org, other_org)[index % 2], role=Membership.Role.AGENT)


def add_api_keys(org, other_org, operator_user, count):
    for index in range(count):
        issued = api_key_create(
            org=(org, other_org)[index % 2],
            created_by=UserFactory(),
            name=f"key {index}",
            scopes=["contacts:read"],
            expires_at=None,
        )
        if index % 3 == 0:
            api_key_revoke(
                org=issued.api_key.org, api_key_id=issued.api_key.pk, revoked_by=operator_user
            )


def add_signing_secrets(org, other_org, operator_user, count):
    for index in range(count):
        target = (org, other_org)[index % 2]
        issued = signing_secret_create_shared(org=target, created_by=UserFactory())
        # At most two active per org: the rest are listed as retired.
        signing_secret_retire(org=target, kid=issued.signing_secret.kid, retired_by=operator_user)


def add_audit_events(org, other_org, operator_user, count):
    # One acting key, made (and its own creation recorded) the first time only.
    key = (
        ApiKey.objects.filter(org=org).first()
        or api_key_create(
            org=org, created_by=None, name="bot", scopes=["contacts:read"], expires_at=None
        ).api_key
    )
    for index in range(count):
        actor = ({"actor_user": UserFactory()}, {"actor_api_key": key}, {})[index % 3]
        audit_record(
            org=(org, other_org)[index % 2],
            action=AuditEvent.Action.CONTACT_ERASED,
            target=f"contact-{index}",
            **actor,
        )


def add_orgs(org, other_org, operator_user, count):
    for index in range(count):
        role = (Membership.Role.OWNER, Membership.Role.ADMIN, Membership.Role.AGENT)[index % 3]
        MembershipFactory(user=operator_user, role=role)


@pytest.mark.parametrize(
    ("changelist", "add_rows"),
    [
        ("/admin/identity/membership/", add_members),
        (API_KEYS, add_api_keys),
        (SIGNING_SECRETS, add_signing_secrets),
        ("/admin/identity/auditevent/", add_audit_events),
        ("/admin/identity/organization/", add_orgs),
    ],
)
def test_operator_changelists_query_count_is_constant(
    operator_user, org, other_org, changelist, add_rows, django_assert_num_queries
):
    # given: an operator of two orgs (owner of one, admin of the other)
    MembershipFactory(user=operator_user, org=other_org, role=Membership.Role.ADMIN)
    client = admin_client(operator_user)
    add_rows(org, other_org, operator_user, 3)
    client.get(changelist)
    with CaptureQueriesContext(connection) as few:
        response = client.get(changelist)
    assert response.status_code == 200
    shown = len(response.context["cl"].result_list)
    add_rows(org, other_org, operator_user, 27)

    # then
    with django_assert_num_queries(len(few)):
        response = client.get(changelist)
    assert len(response.context["cl"].result_list) == shown + 27


def test_contacts_cannot_be_added_edited_or_deleted_here(operator_admin, org):
    contact = verified_contact(org, name="Vera Verified")

    assert operator_admin.get(f"{CONTACTS}add/").status_code == 403
    assert operator_admin.get(f"{CONTACTS}{contact.pk}/delete/").status_code == 403
    response = operator_admin.post(f"{CONTACTS}{contact.pk}/change/", {"name": "Changed"})
    assert response.status_code == 403
    contact.refresh_from_db()
    assert contact.name == "Vera Verified"


def test_verified_contact_page_shows_the_sender_auth_info_panel(agent_admin, org):
    # given
    contact = VerifiedContactFactory(
        org=org, custom_data={"plan": "gold"}, non_verified_custom_data={"colour": "blue"}
    )
    contact.sender_auth_info = sender_auth_info_build(
        contact=contact,
        method="custom_jwt",
        key_id="kid_live_1",
        token_claims={
            "iss": "https://shop.test",
            "sub": "user-9",
            "aud": "x",
            "iat": 1,
            "exp": 2,
            "jti": "j-1",
        },
    )
    contact.save()

    # when
    response = agent_admin.get(f"{CONTACTS}{contact.pk}/change/")

    # then
    content = response.content.decode()
    assert response.status_code == 200
    assert SHIELD in content
    assert "Customer-signed token (custom JWT)" in content
    assert "kid_live_1" in content
    assert "<caption>Customer-signed token claims</caption>" in content
    assert "j-1" in content
    assert "Verified custom data — set by your backend" in content
    assert "Unverified custom data — sent by the browser, do not trust" in content
    assert '"authType"' not in content
    assert 'name="_save"' not in content


def test_non_verified_contact_page_has_no_shield_and_marks_data_unverified(agent_admin, org):
    contact = non_verified_contact(
        org, name="<script>alert(1)</script>", non_verified_custom_data={"x": "<script>y"}
    )

    content = agent_admin.get(f"{CONTACTS}{contact.pk}/change/").content.decode()

    assert SHIELD not in content
    assert "Collected by the chat form" in content
    assert "cs-data--unverified" in content
    assert "<script>alert(1)</script>" not in content
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in content
    assert "&lt;script&gt;y" in content


def test_conversation_page_shows_the_thread_and_the_side_panel(agent_admin, org):
    # given
    contact = verified_contact(org, name="Vera Verified")
    conversation = ConversationFactory(contact=contact, sender_auth_info=contact.sender_auth_info)
    MessageFactory(conversation=conversation, sender_contact=contact, body="first <b>hi</b>")
    MessageFactory(conversation=conversation, sender_kind="agent", body="second")

    # when
    content = agent_admin.get(f"/admin/conversations/conversation/{conversation.pk}/change/")
    content = content.content.decode()

    # then
    assert content.index("first &lt;b&gt;hi&lt;/b&gt;") < content.index("second")
    assert "Verified by the customer&#x27;s backend with an API key" in content
    assert SHIELD in content


def test_an_erased_verified_contact_shows_as_erased_with_no_shield_in_the_admin(agent_admin, org):
    # given: a verified contact's conversation, then the contact erased (trust kept)
    contact = verified_contact(org, name="Vera Verified", email="vera@customer.test")
    conversation = ConversationFactory(contact=contact, sender_auth_info=contact.sender_auth_info)
    MessageFactory(conversation=conversation, sender_contact=contact, body="Hi, it's Vera.")
    contact_erase(org=org, contact_id=contact.pk, actor_user=None)
    contact.refresh_from_db()
    assert contact.trust == Contact.Trust.VERIFIED

    # when
    conversation_page = f"/admin/conversations/conversation/{conversation.pk}/change/"
    pages = {
        "contacts": agent_admin.get(CONTACTS).content.decode(),
        "contact": agent_admin.get(f"{CONTACTS}{contact.pk}/change/").content.decode(),
        "conversations": agent_admin.get("/admin/conversations/conversation/").content.decode(),
        "conversation": agent_admin.get(conversation_page).content.decode(),
    }

    # then: named as erased, never as a verified (or anonymous) visitor
    for name, content in pages.items():
        assert SHIELD not in content, name
        assert "Anonymous visitor" not in content, name
        assert "Erased contact" in content, name
    for name in ("contacts", "contact"):
        assert 'Erased <span class="cs-muted">(was verified)</span>' in pages[name], name
    assert f"<h2>Erased contact {str(contact.pk)[:8]}</h2>" in pages["contact"]
    for name in ("contact", "conversation"):
        (panel,) = re.findall(
            r'<section class="cs-panel cs-panel--erased".*?</section>', pages[name], flags=re.S
        )
        assert "<dt>Erased at</dt>" in panel, name
        assert "Verified at" not in panel, name


def test_agent_closes_conversations_with_the_admin_action(agent_admin, org):
    conversation = ConversationFactory(contact=verified_contact(org))

    agent_admin.post(
        "/admin/conversations/conversation/",
        {"action": "close_selected", "_selected_action": [str(conversation.pk)]},
    )

    conversation.refresh_from_db()
    assert conversation.status == "closed"


# --- API keys and signing secrets --------------------------------------------------------------


@pytest.mark.parametrize("path", [API_KEYS, f"{API_KEYS}add/", SIGNING_SECRETS])
def test_plain_agents_cannot_reach_keys_or_secrets(agent_admin, path):
    assert agent_admin.get(path).status_code == 403


def test_plain_agents_do_not_see_keys_or_secrets_in_the_index(agent_admin, operator_admin):
    agent_models = {
        m["object_name"]
        for app in agent_admin.get("/admin/").context["app_list"]
        for m in app["models"]
    }
    operator_models = {
        m["object_name"]
        for app in operator_admin.get("/admin/").context["app_list"]
        for m in app["models"]
    }

    operator_only = {"ApiKey", "SigningSecret", "Membership"}
    assert {"Contact", "Conversation", "Organization"} <= agent_models
    assert agent_models.isdisjoint(operator_only | {"User"})
    assert operator_only | {"Contact", "Conversation", "Organization"} <= operator_models
    assert "User" not in operator_models


def test_operator_creates_an_api_key_and_sees_it_exactly_once(operator_admin, operator_user, org):
    # when
    response = operator_admin.post(
        f"{API_KEYS}add/",
        {"org": str(org.pk), "name": "Backend", "scopes": ["widget:authenticate", "contacts:read"]},
    )

    # then: the key is in the POST's answer and nowhere else, the session table included
    api_key = ApiKey.objects.get()
    assert response.status_code == 200
    assert api_key.org == org
    assert api_key.created_by == operator_user
    assert api_key.scopes == ["widget:authenticate", "contacts:read"]

    (key,) = set(KEY_PATTERN.findall(response.content.decode()))
    assert api_key_matches(key, api_key.digest)
    assert b'id="cs-copy"' in response.content
    assert "no-store" in response["Cache-Control"]
    sessions = Session.objects.all()
    assert all(key not in str(s.get_decoded()) for s in sessions)

    second = operator_admin.get(f"{API_KEYS}{api_key.pk}/created/")
    assert key.encode() not in second.content
    assert b"cannot be shown again" in second.content

    listing = operator_admin.get(API_KEYS).content.decode()
    assert api_key.prefix in listing
    assert key not in listing
    assert api_key.digest not in listing


def test_reloading_the_created_page_does_not_create_a_second_key(operator_admin, org):
    # given the add form as the operator's browser got it, with its one-time submission id
    form = operator_admin.get(f"{API_KEYS}add/").content.decode()
    (submission,) = re.findall(r'name="submission" value="([^"]+)"', form)
    data = {"org": str(org.pk), "name": "Backend", "scopes": ["widget:authenticate"]}
    data["submission"] = submission

    # when the form is sent, then sent again (a reload of the page that showed the key)
    first = operator_admin.post(f"{API_KEYS}add/", data)
    again = operator_admin.post(f"{API_KEYS}add/", data)

    # then one key exists, and the reload is sent to the page that says it was shown once
    api_key = ApiKey.objects.get()
    (key,) = set(KEY_PATTERN.findall(first.content.decode()))
    assert api_key_matches(key, api_key.digest)
    assert again.status_code == 302
    assert again["Location"] == f"{API_KEYS}{api_key.pk}/created/"
    shown = operator_admin.get(again["Location"]).content
    assert b"cannot be shown again" in shown
    assert key.encode() not in shown


def test_a_sending_while_the_first_is_still_creating_creates_nothing(operator_admin, org):
    # given a submission id the first sending has claimed but not finished with
    cache.add("admin-add:apikey:in-flight", "", timeout=60)
    data = {"org": str(org.pk), "name": "Backend", "scopes": ["widget:authenticate"]}

    # when
    response = operator_admin.post(f"{API_KEYS}add/", {**data, "submission": "in-flight"})

    # then
    assert response.status_code == 302
    assert response["Location"] == API_KEYS
    assert not ApiKey.objects.exists()


def test_invalid_api_key_form_writes_nothing(operator_admin, org):
    response = operator_admin.post(
        f"{API_KEYS}add/", {"org": str(org.pk), "name": "", "scopes": []}
    )

    assert response.status_code == 200
    assert ApiKey.objects.count() == 0


def test_operator_cannot_create_a_key_for_another_org(operator_admin, other_org):
    response = operator_admin.post(
        f"{API_KEYS}add/",
        {"org": str(other_org.pk), "name": "x", "scopes": ["widget:authenticate"]},
    )

    assert response.status_code == 200
    assert ApiKey.objects.count() == 0


def test_operator_revokes_keys_with_the_action_and_the_row_button(
    operator_admin, operator_user, org
):
    # given
    first = api_key_create(
        org=org, created_by=operator_user, name="a", scopes=["contacts:read"], expires_at=None
    ).api_key
    second = api_key_create(
        org=org, created_by=operator_user, name="b", scopes=["contacts:read"], expires_at=None
    ).api_key

    # when
    operator_admin.post(
        API_KEYS, {"action": "revoke_selected", "_selected_action": [str(first.pk)]}
    )
    confirm = operator_admin.get(f"{API_KEYS}{second.pk}/revoke/")
    operator_admin.post(f"{API_KEYS}{second.pk}/revoke/")

    # then
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.revoked_at is not None
    assert confirm.status_code == 200
    assert second.revoked_at is not None


def test_keys_and_secrets_made_and_ended_in_the_admin_are_audited_with_the_ip(operator_admin, org):
    # when: an operator at 203.0.113.7 creates and revokes a key, and creates and retires a secret
    ip = {"REMOTE_ADDR": "203.0.113.7"}
    operator_admin.post(
        f"{API_KEYS}add/",
        {"org": str(org.pk), "name": "Backend", "scopes": ["contacts:read"]},
        **ip,
    )
    operator_admin.post(f"{API_KEYS}{ApiKey.objects.get().pk}/revoke/", **ip)
    operator_admin.post(f"{SIGNING_SECRETS}add/", {"org": str(org.pk), "algorithm": "HS256"}, **ip)
    operator_admin.post(f"{SIGNING_SECRETS}{SigningSecret.objects.get().pk}/retire/", **ip)

    # then: as through the API, each audit row says where it came from
    events = AuditEvent.objects.order_by("pk").values_list("action", "ip")
    assert list(events) == [
        ("api_key.created", "203.0.113.7"),
        ("api_key.revoked", "203.0.113.7"),
        ("signing_secret.created", "203.0.113.7"),
        ("signing_secret.retired", "203.0.113.7"),
    ]


def test_operator_cannot_revoke_another_orgs_key(operator_admin, other_org):
    key = api_key_create(
        org=other_org, created_by=None, name="theirs", scopes=["contacts:read"], expires_at=None
    ).api_key

    response = operator_admin.post(f"{API_KEYS}{key.pk}/revoke/")

    key.refresh_from_db()
    assert response.status_code == 403
    assert key.revoked_at is None


def test_operator_creates_a_shared_signing_secret_shown_once_and_retires_it(operator_admin, org):
    # when
    response = operator_admin.post(
        f"{SIGNING_SECRETS}add/", {"org": str(org.pk), "algorithm": "HS256"}
    )

    # then
    secret = SigningSecret.objects.get()
    (shown,) = re.findall(r'id="cs-secret"[^>]*value="([^"]+)"', response.content.decode())
    again = operator_admin.get(f"{SIGNING_SECRETS}{secret.pk}/created/").content.decode()
    assert shown not in again
    assert all(shown not in str(s.get_decoded()) for s in Session.objects.all())
    listing = operator_admin.get(SIGNING_SECRETS).content.decode()
    assert secret.kid in listing
    assert secret.encrypted_secret not in listing
    assert shown not in listing

    operator_admin.post(
        SIGNING_SECRETS, {"action": "retire_selected", "_selected_action": [secret.pk]}
    )
    secret.refresh_from_db()
    assert secret.retired_at is not None


def test_public_key_algorithms_need_a_pem(operator_admin, org):
    response = operator_admin.post(
        f"{SIGNING_SECRETS}add/", {"org": str(org.pk), "algorithm": "RS256"}
    )

    assert response.status_code == 200
    assert b"RS256 needs your public key in PEM." in response.content
    assert SigningSecret.objects.count() == 0


def test_third_active_signing_secret_is_refused_on_the_form(operator_admin, org):
    for _ in range(2):
        operator_admin.post(f"{SIGNING_SECRETS}add/", {"org": str(org.pk), "algorithm": "HS256"})

    response = operator_admin.post(
        f"{SIGNING_SECRETS}add/", {"org": str(org.pk), "algorithm": "HS256"}
    )

    assert response.status_code == 200
    assert b"at most 2 active signing secrets" in response.content
    assert SigningSecret.objects.count() == 2


# --- organizations and memberships -------------------------------------------------------------


def org_form(org, **changes) -> dict:
    data = {
        "name": org.name,
        "collect_user_data": "on",
        "extra_data_collection_fields": "[]",
        "theme": '{"title": "Hi"}',
        "allowed_origins": '["https://shop.example.com/"]',
        "merge_device_history_on_verify": "on",
        "anonymous_token_lifetime": "30 00:00:00",
        "non_verified_token_lifetime": "30 00:00:00",
        "verified_token_lifetime": "12:00:00",
    }
    data.update(changes)
    return data


def test_operator_saves_widget_settings_and_the_cached_org_is_replaced(
    operator_admin, org, django_capture_on_commit_callbacks
):
    # given
    cache.set(widget_config_cache_key(org.widget_token), org)

    # when
    with django_capture_on_commit_callbacks(execute=True):
        response = operator_admin.post(
            f"/admin/identity/organization/{org.pk}/change/", org_form(org)
        )

    # then
    org.refresh_from_db()
    assert response.status_code == 302
    assert org.collect_user_data is True
    assert org.allowed_origins == ["https://shop.example.com"]
    cached = cache.get(widget_config_cache_key(org.widget_token))
    assert (cached.pk, cached.collect_user_data) == (org.pk, True)
    assert cached.allowed_origins == ["https://shop.example.com"]
    event = AuditEvent.objects.get(action="widget_settings.changed")
    assert event.org == org
    assert event.actor_user is not None
    assert "allowed_origins" in event.details["fields"]


def test_widget_settings_are_validated_like_the_api(operator_admin, org):
    response = operator_admin.post(
        f"/admin/identity/organization/{org.pk}/change/",
        org_form(org, allowed_origins='["not an origin"]'),
    )

    org.refresh_from_db()
    assert response.status_code == 200
    assert b"Must be an origin like https://shop.example.com." in response.content
    assert org.allowed_origins == []


@pytest.mark.parametrize(
    ("theme", "message"),
    [
        ('{"title": 1e400}', b"Numbers must be finite"),
        ('{"title": "Hi\\u0000"}', b"NUL characters are not allowed"),
        ('{"title": "Hi\\ud800"}', b"Lone surrogates are not allowed"),
    ],
    ids=["infinite", "nul", "surrogate"],
)
def test_widget_settings_json_the_api_refuses_is_refused_here_too(
    operator_admin, org, theme, message
):
    # given JSON the form's own parser accepts but no JSON column can hold
    before = org.theme
    # when
    response = operator_admin.post(
        f"/admin/identity/organization/{org.pk}/change/", org_form(org, theme=theme)
    )
    # then the form says why, and nothing is written
    org.refresh_from_db()
    assert response.status_code == 200
    assert message in response.content
    assert org.theme == before


def test_plain_agent_cannot_change_widget_settings(agent_admin, org):
    response = agent_admin.post(
        f"/admin/identity/organization/{org.pk}/change/", org_form(org, name="Hijacked")
    )

    org.refresh_from_db()
    assert response.status_code == 403
    assert org.name != "Hijacked"


def test_operator_rotates_the_widget_token(operator_admin, org):
    old = org.widget_token

    operator_admin.post(f"/admin/identity/organization/{org.pk}/rotate-widget-token/")

    org.refresh_from_db()
    assert org.widget_token != old
    assert AuditEvent.objects.get(action="widget_token.rotated").actor_user is not None


def test_agent_cannot_rotate_the_widget_token(agent_admin, org):
    old = org.widget_token

    response = agent_admin.post(f"/admin/identity/organization/{org.pk}/rotate-widget-token/")

    org.refresh_from_db()
    assert response.status_code == 403
    assert org.widget_token == old


def test_operator_adds_an_existing_user_by_email(operator_admin, org):
    newcomer = UserFactory(email="new@agents.test")

    response = operator_admin.post(
        "/admin/identity/membership/add/",
        {"email": "NEW@agents.test", "org": str(org.pk), "role": "agent"},
    )

    assert response.status_code == 302
    assert Membership.objects.get(user=newcomer).org == org


NOT_ADDABLE = (
    "No account with this email can be added here. A superuser creates accounts, and adds people "
    "who already belong to another organization."
)


@pytest.mark.parametrize("who", ["nobody", "another tenant's agent", "inactive"])
def test_an_operator_cannot_add_another_tenants_agent_or_learn_who_has_an_account(
    operator_admin, org, other_org, who
):
    # given
    email = "someone@agents.test"
    if who == "another tenant's agent":
        MembershipFactory(org=other_org, user=UserFactory(email=email), role="agent")
    elif who == "inactive":
        UserFactory(email=email, is_active=False)
    before = Membership.objects.count()

    # when
    response = operator_admin.post(
        "/admin/identity/membership/add/",
        {"email": email, "org": str(org.pk), "role": "agent"},
    )

    # then: the same answer whether the account exists or not, and no membership
    assert response.status_code == 200
    assert response.context["adminform"].form.errors == {"email": [NOT_ADDABLE]}
    assert Membership.objects.count() == before


def test_an_account_a_superuser_just_created_is_added_and_becomes_staff(operator_admin, org):
    # given: the admin's "Add user" makes accounts without "staff"
    newcomer = UserFactory(email="fresh@agents.test", is_staff=False)

    # when
    response = operator_admin.post(
        "/admin/identity/membership/add/",
        {"email": newcomer.email, "org": str(org.pk), "role": "agent"},
    )

    # then: members are staff, so the membership gives access
    newcomer.refresh_from_db()
    assert response.status_code == 302
    assert newcomer.is_staff is True
    assert Membership.objects.in_force().filter(user=newcomer, org=org).exists()


def test_saving_a_cut_off_members_membership_leaves_them_cut_off(operator_admin, org):
    # given: an agent with an API token, whom a superuser then cut off by unticking "staff"
    agent = MembershipFactory(org=org, role="agent", user=UserFactory(password=PASSWORD)).user
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {agent_access_token(api, agent)}")
    User.objects.filter(pk=agent.pk).update(is_staff=False)
    membership = Membership.objects.get(user=agent, org=org)
    events = AuditEvent.objects.count()

    # when: an operator of the org presses Save on that membership, role unchanged, then changed
    unchanged = operator_admin.post(
        f"/admin/identity/membership/{membership.pk}/change/", {"role": "agent"}
    )
    changed = operator_admin.post(
        f"/admin/identity/membership/{membership.pk}/change/", {"role": "admin"}
    )

    # then: is_staff is the account's, a superuser's to give back; the old token stays refused
    agent.refresh_from_db()
    assert (unchanged.status_code, changed.status_code) == (302, 302)
    assert agent.is_staff is False
    assert api.get(f"/api/v1/orgs/{org.pk}/conversations").status_code == 404
    assert AuditEvent.objects.count() == events + 1  # the role change, nothing for the unchanged


def test_a_cut_off_account_is_not_added_to_another_org(
    operator_admin, operator_user, org, other_org
):
    # given: a member of the operator's org, cut off by a superuser
    MembershipFactory(org=other_org, user=operator_user, role="admin")
    cut_off = MembershipFactory(org=org, role="agent", user=UserFactory(is_staff=False)).user

    # when
    response = operator_admin.post(
        "/admin/identity/membership/add/",
        {"email": cut_off.email, "org": str(other_org.pk), "role": "agent"},
    )

    # then: refused, saying why and what to do
    cut_off.refresh_from_db()
    assert response.status_code == 200
    assert response.context["adminform"].form.errors == {"email": [MEMBER_TURNED_OFF]}
    assert not Membership.objects.filter(user=cut_off, org=other_org).exists()
    assert cut_off.is_staff is False


def test_an_operator_of_both_orgs_adds_a_member_of_one_to_the_other(
    operator_admin, operator_user, org, other_org
):
    # given
    MembershipFactory(org=other_org, user=operator_user, role="admin")
    colleague = MembershipFactory(org=other_org, role="agent").user

    # when
    response = operator_admin.post(
        "/admin/identity/membership/add/",
        {"email": colleague.email, "org": str(org.pk), "role": "agent"},
    )

    # then
    assert response.status_code == 302
    assert Membership.objects.filter(user=colleague, org=org).exists()


def test_a_superuser_adds_another_tenants_agent(org, other_org):
    # given
    root = UserFactory(is_superuser=True)
    agent = MembershipFactory(org=other_org, role="agent").user

    # when
    response = admin_client(root).post(
        "/admin/identity/membership/add/",
        {"email": agent.email, "org": str(org.pk), "role": "agent"},
    )

    # then
    assert response.status_code == 302
    assert Membership.objects.filter(user=agent, org=org).exists()


def test_an_admin_cannot_grant_owner(org):
    admin_user = MembershipFactory(org=org, role="admin").user
    newcomer = UserFactory()

    response = admin_client(admin_user).post(
        "/admin/identity/membership/add/",
        {"email": newcomer.email, "org": str(org.pk), "role": "owner"},
    )

    assert response.status_code == 200
    assert not Membership.objects.filter(user=newcomer).exists()


def test_the_last_owner_cannot_be_demoted(operator_admin, operator_user, org):
    membership = Membership.objects.get(user=operator_user, org=org)

    response = operator_admin.post(
        f"/admin/identity/membership/{membership.pk}/change/", {"role": "agent"}
    )

    membership.refresh_from_db()
    assert response.status_code == 200
    assert membership.role == "owner"


def test_the_last_owner_cannot_be_removed(operator_admin, operator_user, org):
    membership = Membership.objects.get(user=operator_user, org=org)

    response = operator_admin.post(
        f"/admin/identity/membership/{membership.pk}/delete/", {"post": "yes"}
    )

    assert response.status_code == 403
    assert Membership.objects.get(pk=membership.pk).role == "owner"


def test_memberships_have_no_bulk_delete(operator_admin, operator_user, org):
    # given: two owners, both selected; deleted together, each would pass its own check
    selected = [
        Membership.objects.get(user=operator_user, org=org).pk,
        MembershipFactory(org=org, role="owner").pk,
    ]

    # when
    response = operator_admin.post(
        "/admin/identity/membership/",
        {"action": "delete_selected", "_selected_action": selected, "post": "yes"},
    )

    # then: the action is not offered, and both stay
    assert response.status_code == 200
    assert set(Membership.objects.filter(org=org).values_list("pk", flat=True)) == set(selected)


def test_a_changed_membership_keeps_its_user_and_org(operator_admin, operator_user, org, other_org):
    # given: another owner in the org, and the operator owns the other org too
    membership = Membership.objects.get(user=operator_user, org=org)
    colleague = MembershipFactory(org=org, role="owner").user
    MembershipFactory(org=other_org, user=operator_user, role="owner")

    # when: the change form is sent with another org and user, which it shows read-only
    response = operator_admin.post(
        f"/admin/identity/membership/{membership.pk}/change/",
        {"org": str(other_org.pk), "user": colleague.pk, "role": "admin"},
    )

    # then: only the role changed, so no owner leaves an org by being moved out of it
    membership.refresh_from_db()
    assert response.status_code == 302
    assert (membership.org, membership.user, membership.role) == (org, operator_user, "admin")


def test_a_membership_page_names_its_user_without_a_link_an_operator_cannot_follow(
    operator_admin, operator_user, org
):
    # given: a colleague's membership, and the users' pages, which are for superusers only
    colleague = MembershipFactory(org=org, role="agent")
    assert (
        operator_admin.get(f"/admin/identity/user/{colleague.user.pk}/change/").status_code == 403
    )

    # when
    page = operator_admin.get(f"/admin/identity/membership/{colleague.pk}/change/")

    # then: the user's email is there, and no link to their page
    assert page.status_code == 200
    assert colleague.user.email in page.content.decode()
    assert "/admin/identity/user/" not in page.content.decode()


def test_plain_agents_cannot_manage_memberships_or_users(agent_admin):
    assert agent_admin.get("/admin/identity/membership/").status_code == 403
    assert agent_admin.get("/admin/identity/user/").status_code == 403


def test_admin_sign_in_shares_the_lockout(client, operator_user, settings):
    for _ in range(settings.LOCKOUT_MAX_FAILURES):
        client.post("/admin/login/", {"username": operator_user.email, "password": "nope"})

    response = client.post(
        "/admin/login/?next=/admin/", {"username": operator_user.email, "password": PASSWORD}
    )

    assert response.status_code == 429
    assert 0 < int(response["Retry-After"]) <= settings.LOCKOUT_WINDOW_SECONDS
    assert b"Too many failed sign-ins" in response.content
    assert "_auth_user_id" not in client.session


@pytest.mark.parametrize("spelling", ["ANN@XN--BCHER-KVA.DE", "ann@bu\u0308cher.de"], ids=repr)
def test_a_superuser_cannot_give_an_account_another_accounts_address_in_another_spelling(spelling):
    # given
    root = UserFactory(is_superuser=True, is_staff=True)
    UserFactory(email="ann@b\u00fccher.de")
    bob = UserFactory(email="bob@shop.test")
    form = admin_client(root).get(f"/admin/identity/user/{bob.pk}/change/").context["adminform"]
    data = {k: v for k, v in form.form.initial.items() if v is not None and k != "password"}

    # when
    response = admin_client(root).post(
        f"/admin/identity/user/{bob.pk}/change/", {**data, "email": spelling}
    )

    # then: the form says so (a 500 from the unique index before)
    assert response.status_code == 200
    assert "A user with this email already exists." in response.content.decode()
    bob.refresh_from_db()
    assert bob.email == "bob@shop.test"
