"""Anonymous and non-verified visitors: /widget/config, /contacts/unverified, /me and /logout."""

import os
import time
from datetime import timedelta

import jwt
import pytest
from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.utils import timezone
from django_redis import get_redis_connection
from redis.client import Pipeline, Redis

from contacts.api.serializers import WidgetConfigOutputSerializer
from contacts.api.throttles import AnonymousMintIpThrottle, AnonymousMintWidgetThrottle
from contacts.models import Contact, Device
from contacts.services import LAST_SEEN_RESOLUTION, contact_token_issue
from identity import widget_cache
from identity.selectors import organization_for_widget_token
from identity.tokens import CONTACT_TOKEN_TRUST_LEVELS, contact_token_mint
from identity.widget_cache import widget_config_cache_key
from tests.conftest import PASSWORD
from tests.contacts.conftest import mint, widget_client
from tests.factories import DeviceFactory, OrganizationFactory, VerifiedContactFactory

pytestmark = pytest.mark.django_db

UNAUTHENTICATED = {
    "error": {
        "code": "not_authenticated",
        "message": "Authentication credentials were not provided or are not valid.",
    }
}


# --- /widget/config ----------------------------------------------------------------------


def test_config_returns_the_public_widget_settings(widget, org):
    # given
    org.collect_user_data = True
    org.extra_data_collection_fields = [
        {"name": "order", "label": "Order number", "type": "text", "required": True}
    ]
    org.save()

    # when
    response = widget.get("/widget/config")

    # then
    assert response.status_code == 200
    assert response.json() == {
        "org": {"id": str(org.id), "name": org.name},
        "collectUserData": True,
        "extraDataCollectionFields": [
            {"name": "order", "label": "Order number", "type": "text", "required": True}
        ],
        "requireVerifiedIdentity": False,
        "theme": {"primaryColor": "#18bdf7", "title": "Chat with us"},
    }


@pytest.mark.parametrize("token", ["", "wgt_unknown", "nonsense", "wgt_" + "x" * 200])
def test_config_refuses_an_unknown_widget_token(api_client, token):
    response = api_client.get("/widget/config", HTTP_X_WIDGET_TOKEN=token)

    assert response.status_code == 401
    assert response.json() == UNAUTHENTICATED


def test_warm_config_makes_no_query(widget, django_assert_num_queries):
    widget.get("/widget/config")

    with django_assert_num_queries(0):
        response = widget.get("/widget/config")

    assert response.status_code == 200


def test_warm_config_skips_the_shared_cache_within_the_local_ttl(widget, monkeypatch, settings):
    # given: a process memo of 5 s, warmed by one request
    settings.WIDGET_ORG_LOCAL_CACHE_SECONDS = 5
    widget.get("/widget/config")
    shared_reads = []
    real_get = cache.get
    monkeypatch.setattr(cache, "get", lambda *a, **k: shared_reads.append(a) or real_get(*a, **k))

    # when
    response = widget.get("/widget/config")

    # then: no round trip to the shared cache (Redis in production)
    assert response.status_code == 200
    assert not [key for key in shared_reads if str(key[0]).startswith("widget-org:")]


def test_warm_config_is_rendered_once_per_memoised_org(widget, monkeypatch, settings):
    # given: a process memo, warmed by one request
    settings.WIDGET_ORG_LOCAL_CACHE_SECONDS = 5
    first = widget.get("/widget/config").json()
    renders = []
    real = WidgetConfigOutputSerializer.to_representation
    monkeypatch.setattr(
        WidgetConfigOutputSerializer,
        "to_representation",
        lambda self, org: renders.append(org) or real(self, org),
    )

    # when
    again = [widget.get("/widget/config").json() for _ in range(3)]

    # then: the same body, rendered by nobody
    assert again == [first] * 3
    assert renders == []


def test_memo_derived_computes_for_an_org_the_memo_does_not_hold(org, settings):
    settings.WIDGET_ORG_LOCAL_CACHE_SECONDS = 5
    widget_cache.memo_put(org.widget_token, org)
    other_instance = type(org).objects.get(pk=org.pk)
    calls = []

    def compute():
        calls.append(1)
        return len(calls)

    assert widget_cache.memo_derived(org, "n", compute) == 1
    assert widget_cache.memo_derived(org, "n", compute) == 1
    assert widget_cache.memo_derived(other_instance, "n", compute) == 2
    widget_cache.memo_clear()
    assert widget_cache.memo_derived(org, "n", compute) == 3


def test_another_process_sees_a_settings_change_once_its_local_ttl_passes(
    widget, org, monkeypatch, settings
):
    # given: this process memoized the org; "another server" changed it and dropped the shared cache
    settings.WIDGET_ORG_LOCAL_CACHE_SECONDS = 5
    assert widget.get("/widget/config").json()["collectUserData"] is False
    type(org).objects.filter(pk=org.pk).update(collect_user_data=True)
    cache.delete(widget_config_cache_key(org.widget_token))

    # then: the memo holds within its TTL, and the change shows once it has passed
    assert widget.get("/widget/config").json()["collectUserData"] is False
    later = time.monotonic() + 6
    monkeypatch.setattr(widget_cache.time, "monotonic", lambda: later)
    assert widget.get("/widget/config").json()["collectUserData"] is True


def test_a_reader_that_fetched_the_org_before_a_rotation_cannot_cache_it_after(
    org, operator_client, django_capture_on_commit_callbacks
):
    # given: a slow reader (another server) fetched the org under its old token from the database
    old_token = org.widget_token
    fetched_before = type(org).objects.get(pk=org.pk)

    # when: the rotation commits, and only then the slow reader writes what it fetched
    with django_capture_on_commit_callbacks(execute=True):
        rotated = operator_client.post(f"/api/v1/orgs/{org.id}/widget-settings/rotate-token")
    widget_cache.shared_add(old_token, fetched_before)
    widget_cache.memo_clear()

    # then: the old token still names no org
    assert rotated.status_code == 200
    assert organization_for_widget_token(widget_token=old_token) is None
    assert widget_client(org).get("/widget/config").status_code == 401


def test_a_reader_that_fetched_the_org_before_a_settings_change_cannot_cache_it_after(
    widget, org, operator_client, django_capture_on_commit_callbacks
):
    # given: a slow reader fetched the org with its old settings
    fetched_before = type(org).objects.get(pk=org.pk)

    # when: the change commits, and only then the slow reader writes what it fetched
    with django_capture_on_commit_callbacks(execute=True):
        patch = operator_client.patch(
            f"/api/v1/orgs/{org.id}/widget-settings", {"collectUserData": True}, format="json"
        )
    widget_cache.shared_add(org.widget_token, fetched_before)
    widget_cache.memo_clear()

    # then: every process that asks the shared cache gets the new settings
    assert patch.status_code == 200
    assert widget.get("/widget/config").json()["collectUserData"] is True


def test_config_cache_is_invalidated_when_an_operator_changes_settings(
    widget, org, operator_client, django_capture_on_commit_callbacks
):
    # given: a warm cache
    assert widget.get("/widget/config").json()["collectUserData"] is False

    # when
    with django_capture_on_commit_callbacks(execute=True):
        patch = operator_client.patch(
            f"/api/v1/orgs/{org.id}/widget-settings", {"collectUserData": True}, format="json"
        )

    # then
    assert patch.status_code == 200
    assert widget.get("/widget/config").json()["collectUserData"] is True


def test_rotated_widget_token_stops_working_at_once(
    org, operator_client, django_capture_on_commit_callbacks
):
    # given
    old = widget_client(org)
    assert old.get("/widget/config").status_code == 200

    # when
    with django_capture_on_commit_callbacks(execute=True):
        rotated = operator_client.post(f"/api/v1/orgs/{org.id}/widget-settings/rotate-token")

    # then
    new_token = rotated.json()["widgetToken"]
    assert rotated.status_code == 200
    assert new_token != org.widget_token
    assert old.get("/widget/config").status_code == 401
    new = widget_client(org)
    new.defaults["HTTP_X_WIDGET_TOKEN"] = new_token
    assert new.get("/widget/config").status_code == 200


# --- minting -----------------------------------------------------------------------------


def test_mint_without_details_gives_an_anonymous_contact(widget, org):
    # when
    response = mint(widget)

    # then
    body = response.json()
    contact = Contact.objects.get()
    assert response.status_code == 201
    assert set(body) == {"token", "contact", "externalId", "expires_at"}
    assert body["contact"] == {"id": str(contact.id), "trust": "anonymous"}
    assert body["externalId"].startswith("ext_")
    assert contact.org == org
    assert contact.sender_auth_info == {
        "authType": "ANONYMOUS",
        "method": "anonymous",
        "verified": False,
        "verifiedAt": None,
        "authVar": {"uid": str(contact.id), "keyId": None},
    }
    assert Device.objects.get().contact == contact


def test_token_claims_follow_the_spec(widget, org):
    # when
    token = mint(widget).json()["token"]

    # then
    header = jwt.get_unverified_header(token)
    claims = jwt.decode(token, options={"verify_signature": False})
    contact, device = Contact.objects.get(), Device.objects.get()
    assert header["typ"] == "contact+jwt"
    assert header["alg"] == "HS256"
    assert header["kid"]
    assert set(claims) == {"iss", "aud", "sub", "did", "trust", "iat", "exp", "jti"}
    assert claims["iss"] == settings.PUBLIC_URL
    assert claims["aud"] == str(org.id)
    assert claims["sub"] == str(contact.id)
    assert claims["did"] == str(device.id)
    assert claims["trust"] == "anonymous"
    assert claims["exp"] - claims["iat"] == int(org.anonymous_token_lifetime.total_seconds())


def test_presenting_the_token_again_keeps_the_same_contact_and_device(widget):
    # given
    first = mint(widget).json()

    # when
    again = mint(widget, token=first["token"]).json()

    # then
    assert again["contact"]["id"] == first["contact"]["id"]
    assert Contact.objects.count() == 1
    assert Device.objects.count() == 1


def test_a_second_mint_without_a_token_is_a_different_contact(widget):
    first = mint(widget).json()
    second = mint(widget).json()

    assert first["contact"]["id"] != second["contact"]["id"]
    assert Contact.objects.count() == 2


def test_details_make_a_non_verified_contact_in_the_non_verified_fields_only(widget):
    # when
    response = mint(
        widget,
        {
            "name": "Jane Visitor",
            "email": " Jane@Example.COM ",
            "customData": {"plan": "gold", "user_id": "u-1"},
            "externalId": "page-42",
            "method": "collect_form",
        },
    )

    # then
    body = response.json()
    contact = Contact.objects.get()
    assert response.status_code == 201
    assert body["contact"]["trust"] == "non_verified"
    assert body["externalId"] == "page-42"
    assert contact.name == "Jane Visitor"
    assert contact.email == "jane@example.com"
    assert contact.non_verified_custom_data == {"plan": "gold", "user_id": "u-1"}
    assert contact.custom_data == {}
    assert contact.user_id == ""
    assert contact.verified_at is None
    assert contact.sender_auth_info["authType"] == "NON_VERIFIED"
    assert contact.sender_auth_info["method"] == "collect_form"
    assert contact.sender_auth_info["verified"] is False


def test_page_given_details_are_recorded_as_browser(widget):
    mint(widget, {"email": "a@b.test"})

    assert Contact.objects.get().sender_auth_info["method"] == "browser"


def test_custom_data_alone_does_not_relabel_how_the_identity_was_given(widget):
    # given: the visitor answered the form
    first = mint(widget, {"name": "Jo", "email": "jo@b.test", "method": "collect_form"}).json()
    before = Contact.objects.get().sender_auth_info

    # when: the page later passes custom data only (decisions audit)
    mint(widget, {"customData": {"plan": "gold"}, "method": "browser"}, token=first["token"])

    # then
    contact = Contact.objects.get()
    assert contact.non_verified_custom_data == {"plan": "gold"}
    assert contact.sender_auth_info == before
    assert before["method"] == "collect_form"


def test_reuse_upgrades_anonymous_to_non_verified_and_merges_custom_data(widget):
    # given
    first = mint(widget, {"customData": {"a": 1, "b": 1}}).json()

    # when
    second = mint(widget, {"name": "Jo", "customData": {"b": 2}}, token=first["token"]).json()

    # then
    contact = Contact.objects.get()
    assert second["contact"] == {"id": first["contact"]["id"], "trust": "non_verified"}
    assert contact.name == "Jo"
    assert contact.non_verified_custom_data == {"a": 1, "b": 2}


def test_reuse_removes_a_custom_data_key_sent_as_null(widget):
    # given
    first = mint(widget, {"customData": {"a": 1, "b": 1}}).json()

    # when: decisions.md, "customData merges shallowly": null removes the key
    mint(widget, {"customData": {"a": None, "c": 3}}, token=first["token"])

    # then
    assert Contact.objects.get().non_verified_custom_data == {"b": 1, "c": 3}


def test_a_first_visits_null_custom_data_keys_are_not_stored(widget):
    mint(widget, {"name": "Jo", "customData": {"a": None, "b": 2}})

    assert Contact.objects.get().non_verified_custom_data == {"b": 2}


def test_reuse_whose_custom_data_would_overflow_once_merged_is_a_400_and_writes_nothing(widget):
    # given: two halves, each under 16 KiB alone, over it together
    first = mint(widget, {"name": "Jo", "customData": {"a": "x" * 9000}}).json()
    before = Contact.objects.values().get()

    # when
    response = mint(
        widget, {"name": "Someone else", "customData": {"b": "y" * 9000}}, token=first["token"]
    )

    # then
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "custom_data_too_large"
    assert Contact.objects.values().get() == before
    assert Device.objects.count() == 1


def test_a_returning_browser_moves_last_seen_at_at_most_once_a_minute(widget):
    # given: a first visit, then a return within the minute
    first = mint(widget).json()
    contact = Contact.objects.get()
    seen = contact.last_seen_at

    # when
    mint(widget, {"name": "Jo"}, token=first["token"])

    # then: the details changed, the device was seen, the contact's visit time did not move
    contact.refresh_from_db()
    assert (contact.name, contact.last_seen_at) == ("Jo", seen)
    assert Device.objects.get().last_seen_at > seen

    # when: a return a minute after the last recorded visit
    a_minute_earlier = seen - LAST_SEEN_RESOLUTION
    Contact.objects.filter(pk=contact.pk).update(last_seen_at=a_minute_earlier)
    mint(widget, token=first["token"])

    # then
    contact.refresh_from_db()
    assert contact.last_seen_at > seen


def test_reuse_without_details_never_downgrades(widget):
    first = mint(widget, {"email": "a@b.test"}).json()

    second = mint(widget, token=first["token"]).json()

    assert second["contact"]["trust"] == "non_verified"
    assert Contact.objects.get().email == "a@b.test"


def test_typing_a_verified_customers_email_gives_a_separate_unverified_contact(widget, org):
    # given
    customer = VerifiedContactFactory(org=org, email="vip@shop.test", custom_data={"tier": "vip"})

    # when
    body = mint(widget, {"email": "vip@shop.test", "name": "Impostor"}).json()

    # then
    impostor = Contact.objects.get(pk=body["contact"]["id"])
    assert impostor.pk != customer.pk
    assert impostor.trust == "non_verified"
    assert impostor.custom_data == {}
    me = widget_client(org, body["token"]).get("/widget/me").json()
    assert me == {
        "id": str(impostor.id),
        "trust": "non_verified",
        "name": "Impostor",
        "email": "vip@shop.test",
    }
    customer.refresh_from_db()
    assert customer.name != "Impostor"


def test_a_verified_contacts_token_cannot_write_browser_details(widget, org):
    # given
    customer = VerifiedContactFactory(org=org)
    device = DeviceFactory(contact=customer)
    token, _ = contact_token_issue(org=org, contact=customer, device=device)

    # when
    response = mint(widget, {"name": "Changed", "customData": {"x": 1}}, token=token)

    # then
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "contact_is_verified"
    customer.refresh_from_db()
    assert customer.name != "Changed"
    assert customer.non_verified_custom_data == {}
    assert Contact.objects.count() == 1


def test_another_orgs_token_is_not_reused(org):
    # given
    other = OrganizationFactory()
    foreign = mint(widget_client(other)).json()

    # when
    mine = mint(widget_client(org), token=foreign["token"]).json()

    # then
    assert mine["contact"]["id"] != foreign["contact"]["id"]
    assert Contact.objects.filter(org=org).count() == 1


# --- /widget/me and /widget/logout --------------------------------------------------------


def test_me_shows_only_what_the_widget_may_see(widget, org):
    body = mint(widget, {"name": "Jo", "email": "jo@x.test", "customData": {"k": "v"}}).json()

    response = widget_client(org, body["token"], prefix="JWT").get("/widget/me")

    assert response.status_code == 200
    assert response.json() == {
        "id": body["contact"]["id"],
        "trust": "non_verified",
        "name": "Jo",
        "email": "jo@x.test",
    }


def test_logout_revokes_the_token(widget, org):
    # given
    token = mint(widget).json()["token"]
    client = widget_client(org, token)

    # when
    logout = client.post("/widget/logout")

    # then
    assert logout.status_code == 204
    assert Device.objects.get().revoked_at is not None
    assert client.get("/widget/me").status_code == 401
    assert client.post("/widget/logout").status_code == 401


def test_after_logout_the_next_visit_starts_fresh(widget, org):
    first = mint(widget).json()
    widget_client(org, first["token"]).post("/widget/logout")

    second = mint(widget, token=first["token"]).json()

    assert second["contact"]["id"] != first["contact"]["id"]


def _forged(token: str) -> str:
    head, payload, signature = token.split(".")
    return f"{head}.{payload}.{signature[::-1]}"


@pytest.mark.parametrize(
    "kind",
    [
        "missing",
        "garbage",
        "forged signature",
        "expired",
        "other org",
        "agent access token",
        "agent refresh token",
        "signed with the agent key",
        "customer-signed token",
        "alg none",
        "our key, another kind",
        "our key, another key's id",
        "unknown device",
        "trust claim says verified",
        "basic scheme",
        "token not in ASCII",
        "three words",
    ],
)
def test_hostile_contact_tokens_all_get_the_same_401(org, agent_user, api_client, kind):
    # given
    good = mint(widget_client(org)).json()["token"]
    contact, device = Contact.objects.get(), Device.objects.get()
    other = OrganizationFactory()
    common = {
        "key": settings.CONTACT_TOKEN_KEY,
        "issuer": settings.PUBLIC_URL,
        "contact_id": str(contact.id),
        "device_id": str(device.id),
        "lifetime": timedelta(days=1),
    }
    pair = api_client.post(
        "/api/v1/auth/token", {"email": agent_user.email, "password": PASSWORD}, format="json"
    ).json()
    tokens = {
        "missing": None,
        "garbage": "not.a.token",
        "forged signature": _forged(good),
        "expired": contact_token_mint(
            **common,
            org_id=str(org.id),
            trust="anonymous",
            now=timezone.now() - timedelta(days=2),
        )[0],
        "other org": contact_token_mint(**common, org_id=str(other.id), trust="anonymous")[0],
        "agent access token": pair["access"],
        "agent refresh token": pair["refresh"],
        "signed with the agent key": contact_token_mint(
            **{**common, "key": settings.AGENT_TOKEN_KEY}, org_id=str(org.id), trust="anonymous"
        )[0],
        "customer-signed token": jwt.encode(
            {"_id": "u1", "aud": str(org.id)},
            "customer-secret-of-at-least-32-bytes!",
            algorithm="HS256",
        ),
        "alg none": jwt.encode(jwt.decode(good, options={"verify_signature": False}), None, "none"),
        # Claims and signature as good as ours; only the header says what it is not.
        "our key, another kind": jwt.encode(
            jwt.decode(good, options={"verify_signature": False}),
            settings.CONTACT_TOKEN_KEY,
            "HS256",
            headers={**jwt.get_unverified_header(good), "typ": "JWT"},
        ),
        "our key, another key's id": jwt.encode(
            jwt.decode(good, options={"verify_signature": False}),
            settings.CONTACT_TOKEN_KEY,
            "HS256",
            headers={**jwt.get_unverified_header(good), "kid": "0123456789ab"},
        ),
        "unknown device": contact_token_mint(
            **{**common, "device_id": "00000000-0000-0000-0000-000000000000"},
            org_id=str(org.id),
            trust="anonymous",
        )[0],
        "trust claim says verified": contact_token_mint(
            **common, org_id=str(org.id), trust="verified"
        )[0],
    }
    whole_headers = {
        "basic scheme": "Basic dXNlcjpwYXNz",
        "token not in ASCII": f"Bearer {good[:-1]}\u00e9",
        "three words": f"Bearer {good} {good}",
    }
    client = widget_client(org, tokens.get(kind))
    if kind in whole_headers:
        client.credentials(HTTP_AUTHORIZATION=whole_headers[kind])

    # when
    response = client.get("/widget/me")

    # then
    assert response.status_code == 401
    assert response.json() == UNAUTHENTICATED
    assert response["WWW-Authenticate"]


@pytest.mark.parametrize("header", ["Bearer t\u00f6k\u00e9n", "Bearer a b", "Basic dXNlcjpwYXNz"])
def test_a_mint_with_a_malformed_authorization_header_mints_a_fresh_identity(widget, header):
    # given: a browser that already has an identity
    mint(widget)

    # when: its header is malformed, reuse is best effort
    response = widget.post(
        "/widget/contacts/unverified", {}, format="json", HTTP_AUTHORIZATION=header
    )

    # then
    assert response.status_code == 201
    assert Contact.objects.count() == 2


def test_a_token_needs_the_matching_widget_token(org):
    token = mint(widget_client(org)).json()["token"]
    other = OrganizationFactory()

    response = widget_client(other, token).get("/widget/me")

    assert response.status_code == 401


def test_previous_contact_key_still_verifies_during_rotation(widget, org, settings):
    # given: a token signed with today's key
    token = mint(widget).json()["token"]

    # when: the key rotates and the old one is kept as previous
    settings.CONTACT_TOKEN_PREVIOUS_KEY = settings.CONTACT_TOKEN_KEY
    settings.CONTACT_TOKEN_KEY = "a-brand-new-contact-token-key-of-more-than-32-bytes"
    still_valid = widget_client(org, token).get("/widget/me")
    settings.CONTACT_TOKEN_PREVIOUS_KEY = ""
    dropped = widget_client(org, token).get("/widget/me")

    # then
    assert still_valid.status_code == 200
    assert dropped.status_code == 401


# --- query counts ------------------------------------------------------------------------


def test_me_is_one_query_on_a_warm_widget_cache(widget, org, django_assert_num_queries):
    client = widget_client(org, mint(widget).json()["token"])
    client.get("/widget/me")

    with django_assert_num_queries(1):
        assert client.get("/widget/me").status_code == 200


def test_first_mint_query_budget(widget, django_assert_num_queries):
    widget.get("/widget/config")
    # PostgreSQL: contact and device in one INSERT statement, which commits on its own; SQLite:
    # one INSERT each inside a savepoint (config.precompiled.RowsInsert).
    expected = 1 if connection.vendor == "postgresql" else 4

    with django_assert_num_queries(expected):
        assert mint(widget, {"name": "Jo"}).status_code == 201


def test_reuse_mint_query_budget(widget, django_assert_max_num_queries):
    token = mint(widget).json()["token"]

    # the token's principal; under the lock, the contact and then the device read again (a
    # logout or erasure since the check stands); their two UPDATEs; the savepoint's two
    with django_assert_max_num_queries(7):
        assert mint(widget, {"name": "Jo"}, token=token).status_code == 201


# --- throttles (CI runs these again on Redis) ----------------------------------------------


@pytest.mark.redis
def test_minting_counts_both_of_its_throttles_in_one_redis_round_trip(widget, monkeypatch):
    if not os.environ.get("REDIS_URL"):
        pytest.skip("REDIS_URL is not set")
    assert mint(widget).status_code == 201  # the counting script is loaded on first use
    sent = []
    real_execute_command = Redis.execute_command

    def recording_execute_command(self, *args, **options):
        sent.append(args)
        return real_execute_command(self, *args, **options)

    monkeypatch.setattr(Redis, "execute_command", recording_execute_command)
    monkeypatch.setattr(Pipeline, "execute", lambda self, *a, **k: pytest.fail("a pipeline"))

    response = mint(widget)

    # then: one command, the counting script over the IP's counter and the widget token's
    assert response.status_code == 201
    assert [(command, keys) for command, _sha, keys, *_ in sent] == [("EVALSHA", 2)]


@pytest.mark.redis
@pytest.mark.parametrize("throttle", [AnonymousMintIpThrottle, AnonymousMintWidgetThrottle])
def test_anonymous_minting_is_throttled_and_the_throttled_mint_writes_nothing(
    widget, monkeypatch, throttle
):
    # given: a low rate, spent
    monkeypatch.setattr(throttle, "rate", "2/min", raising=False)
    for _ in range(2):
        assert mint(widget).status_code == 201

    # when
    response = mint(widget)

    # then
    assert response.status_code == 429
    assert 0 < int(response["Retry-After"]) <= 60
    assert response.json()["error"]["code"] == "throttled"
    assert Contact.objects.count() == 2
    assert Device.objects.count() == 2


@pytest.mark.redis
def test_the_cache_is_redis_when_redis_url_is_set():
    if not os.environ.get("REDIS_URL"):
        pytest.skip("REDIS_URL is not set")

    assert settings.CACHES["default"]["BACKEND"] == "django_redis.cache.RedisCache"
    cache.set("redis-probe", "here", timeout=10)
    assert get_redis_connection("default").exists(cache.client.make_key("redis-probe"))


@pytest.mark.parametrize(
    "claims",
    [
        {"exp": 10**13},
        {"exp": 1e300},
        {"iat": 10**13 - 1, "exp": 10**13},
        {"sub": "not-a-uuid"},
        {"did": "not-a-uuid"},
        {"aud": 42},
        {"trust": "root"},
        {"jti": ["x"]},
    ],
    ids=repr,
)
def test_odd_claims_signed_with_our_key_are_the_401_on_every_contact_route(widget, org, claims):
    # given: a token only a holder of the contact key could make (decisions.md, as for agent tokens)
    good = mint(widget).json()["token"]
    payload = {**jwt.decode(good, options={"verify_signature": False}), **claims}
    odd = jwt.encode(
        payload, settings.CONTACT_TOKEN_KEY, "HS256", headers=jwt.get_unverified_header(good)
    )
    known = {str(pk) for pk in Contact.objects.values_list("pk", flat=True)}

    # when
    me = widget_client(org, odd).get("/widget/me")
    reuse = mint(widget, {"name": "Jo"}, token=odd)
    resume = widget.post("/v3/auth/signinWithCustomToken", HTTP_AUTHORIZATION=f"JWT {odd}")

    # then: refused, or ignored by the best-effort reuse (a fresh identity); never a 500
    assert me.status_code == 401
    assert me.json() == UNAUTHENTICATED
    assert reuse.status_code == 201
    assert reuse.json()["contact"]["id"] not in known
    assert resume.status_code == 401


def test_the_trust_levels_a_token_may_name_are_the_contacts():
    assert set(Contact.Trust.values) == CONTACT_TOKEN_TRUST_LEVELS
