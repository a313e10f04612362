"""Verified customers: authenticate-user with an org API key, and Tiledesk custom tokens."""

import base64
import json
import time
import uuid

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from django.conf import settings
from django.db import connection
from rest_framework.test import APIClient

from contacts.models import Contact, Device
from contacts.services import (
    LAST_SEEN_RESOLUTION,
    AuthMethod,
    VerifiedProfile,
    VerifiedProof,
    contact_verified_sign_in,
)
from identity.services import (
    api_key_create,
    api_key_revoke,
    signing_secret_create_public_key,
    signing_secret_create_shared,
)
from tests.concurrency import committed_elsewhere, in_parallel
from tests.conftest import agent_access_token
from tests.contacts.conftest import mint, widget_client
from tests.factories import OrganizationFactory
from tests.test_errors import post_raw

pytestmark = pytest.mark.django_db

UNAUTHENTICATED = {
    "error": {
        "code": "not_authenticated",
        "message": "Authentication credentials were not provided or are not valid.",
    }
}


def key_for(org, scopes=("widget:authenticate",)) -> str:
    return api_key_create(
        org=org, created_by=None, name="backend", scopes=list(scopes), expires_at=None
    ).key


def backend(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client


def authenticate(client: APIClient, body: dict):
    return client.post("/widget/authenticate-user", body, format="json")


# --- authenticate-user -------------------------------------------------------------------


def test_authenticate_user_creates_a_verified_contact_with_trusted_fields(org):
    # given
    issued = api_key_create(
        org=org, created_by=None, name="shop", scopes=["widget:authenticate"], expires_at=None
    )

    # when
    response = authenticate(
        backend(issued.key),
        {
            "email": "Ann@Shop.TEST",
            "name": "Ann",
            "user_id": "cust-1",
            "customData": {"plan": "gold"},
            "chat_context": "Ann is on the checkout page",
            "http_action_overrides": {"headers": {"X-Tenant": "7"}},
        },
    )

    # then
    body = response.json()
    contact = Contact.objects.get()
    assert response.status_code == 201
    assert set(body) == {"token", "contact", "expires_at"}
    assert body["contact"] == {"id": str(contact.id)}
    assert contact.trust == "verified"
    assert contact.email == "ann@shop.test"
    assert contact.user_id == "cust-1"
    assert contact.custom_data == {"plan": "gold"}
    assert contact.non_verified_custom_data == {}
    assert contact.chat_context == "Ann is on the checkout page"
    assert contact.http_action_overrides == {"headers": {"X-Tenant": "7"}}
    assert contact.verified_at is not None
    assert contact.sender_auth_info == {
        "authType": "VERIFIED",
        "method": "api_key",
        "verified": True,
        "verifiedAt": contact.verified_at.isoformat(),
        "authVar": {"uid": str(contact.id), "keyId": issued.api_key.prefix},
    }
    assert issued.key not in str(contact.sender_auth_info)
    claims = jwt.decode(body["token"], options={"verify_signature": False})
    assert claims["trust"] == "verified"
    assert claims["exp"] - claims["iat"] == int(org.verified_token_lifetime.total_seconds())
    me = widget_client(org, body["token"]).get("/widget/me").json()
    assert me == {
        "id": str(contact.id),
        "trust": "verified",
        "name": "Ann",
        "email": "ann@shop.test",
    }


def test_same_user_id_with_a_new_email_updates_the_email(org):
    client = backend(key_for(org))
    first = authenticate(client, {"email": "old@shop.test", "user_id": "u1"}).json()

    second = authenticate(client, {"email": "new@shop.test", "user_id": "u1"}).json()

    assert second["contact"] == first["contact"]
    assert Contact.objects.get().email == "new@shop.test"


def test_email_is_the_identity_key_without_user_id(org):
    client = backend(key_for(org))
    first = authenticate(client, {"email": "a@shop.test", "customData": {"a": 1}}).json()

    second = authenticate(client, {"email": "A@shop.test", "customData": {"b": 2}}).json()

    assert second["contact"] == first["contact"]
    assert Contact.objects.get().custom_data == {"a": 1, "b": 2}


def test_an_email_held_by_another_user_id_is_a_409_and_writes_nothing(org):
    # given
    client = backend(key_for(org))
    authenticate(client, {"email": "a@shop.test", "user_id": "u1"})
    before = Contact.objects.get()

    # when
    response = authenticate(client, {"email": "a@shop.test", "user_id": "u2"})

    # then
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "identity_conflict"
    assert Contact.objects.count() == 1
    assert Device.objects.count() == 1
    assert Contact.objects.get().user_id == before.user_id


def test_a_contact_known_only_by_email_is_claimed_by_the_first_user_id(org):
    # given: the customer's backend first sent no ids (decisions.md)
    client = backend(key_for(org))
    first = authenticate(client, {"email": "a@shop.test"}).json()

    # when: it starts sending them
    second = authenticate(client, {"email": "a@shop.test", "user_id": "u1"})

    # then: the same contact, now with the id; another id is then a conflict
    assert second.status_code == 201
    assert second.json()["contact"] == first["contact"]
    assert Contact.objects.get().user_id == "u1"
    assert authenticate(client, {"email": "a@shop.test", "user_id": "u2"}).status_code == 409


def test_a_user_ids_move_onto_an_email_another_contact_holds_is_a_409_and_writes_nothing(org):
    # given: one customer known by id, another only by email
    client = backend(key_for(org))
    authenticate(client, {"email": "one@shop.test", "user_id": "u1"})
    authenticate(client, {"email": "two@shop.test"})
    before = list(Contact.objects.order_by("pk").values())

    # when: u1 claims the second customer's email
    response = authenticate(client, {"email": "two@shop.test", "user_id": "u1"})

    # then
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "identity_conflict"
    assert list(Contact.objects.order_by("pk").values()) == before
    assert Device.objects.count() == 2


def test_a_custom_data_key_sent_as_null_is_removed(org):
    client = backend(key_for(org))
    authenticate(client, {"email": "a@shop.test", "customData": {"a": 1, "b": 1}})

    authenticate(client, {"email": "a@shop.test", "customData": {"a": None}})

    assert Contact.objects.get().custom_data == {"b": 1}


def test_http_action_overrides_with_an_unknown_key_are_a_400_and_keep_the_stored_ones(org):
    # given: overrides stored by an earlier sign-in
    client = backend(key_for(org))
    stored = {"query_params": {"shop": "eu"}}
    authenticate(client, {"email": "a@shop.test", "http_action_overrides": stored})

    # when: a typo, which would have replaced them with an empty object
    response = authenticate(
        client, {"email": "a@shop.test", "http_action_overrides": {"query_param": {"shop": "us"}}}
    )

    # then
    assert response.status_code == 400
    assert "query_param" in response.json()["error"]["fields"]["http_action_overrides"][0]
    assert Contact.objects.get().http_action_overrides == stored


def test_an_unverified_visitor_with_the_same_email_is_never_merged(org):
    # given: a visitor typed the email first
    visitor = mint(widget_client(org), {"email": "vip@shop.test"}).json()

    # when: the backend vouches for the real owner
    verified = authenticate(backend(key_for(org)), {"email": "vip@shop.test", "user_id": "v"})

    # then
    assert verified.status_code == 201
    assert verified.json()["contact"]["id"] != visitor["contact"]["id"]
    assert Contact.objects.get(pk=visitor["contact"]["id"]).trust == "non_verified"


def test_each_authentication_gets_its_own_device(org):
    client = backend(key_for(org))
    first = authenticate(client, {"email": "a@shop.test", "user_id": "u1"}).json()
    second = authenticate(client, {"email": "a@shop.test", "user_id": "u1"}).json()

    widget_client(org, first["token"]).post("/widget/logout")

    assert widget_client(org, first["token"]).get("/widget/me").status_code == 401
    assert widget_client(org, second["token"]).get("/widget/me").status_code == 200


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "email"),
        ({"email": "not-an-email"}, "email"),
        ({"email": 5}, "email"),
        ({"email": "a@b.test", "user_id": 12}, "user_id"),
        ({"email": "a@b.test", "user_id": "x" * 256}, "user_id"),
        ({"email": "a@b.test", "name": "x" * 201}, "name"),
        ({"email": "a@b.test", "customData": [1]}, "customData"),
        ({"email": "a@b.test", "customData": {"a": {"b": {"c": {"d": {"e": {}}}}}}}, "customData"),
        ({"email": "a@b.test", "customData": {"a": "x" * 17000}}, "customData"),
        ({"email": "a@b.test", "avatar_url": 3}, "avatar_url"),
        (
            {"email": "a@b.test", "http_action_overrides": {"headers": "x"}},
            "http_action_overrides.headers",
        ),
    ],
)
def test_authenticate_user_rejects_bad_input_and_writes_nothing(org, body, field):
    response = authenticate(backend(key_for(org)), body)

    assert response.status_code == 400
    assert field in response.json()["error"]["fields"]
    assert Contact.objects.count() == 0


@pytest.mark.parametrize(
    "kind", ["missing", "malformed", "unknown", "wrong secret", "revoked", "contact token"]
)
def test_unusable_keys_get_the_same_401_and_write_nothing(org, kind):
    # given
    good = key_for(org)
    if kind == "revoked":
        from identity.models import ApiKey

        api_key_revoke(org=org, api_key_id=ApiKey.objects.get().pk, revoked_by=None)
    raw = {
        "missing": None,
        "malformed": "csk_nope",
        "unknown": "csk_0123456789abcdef_" + "A" * 40,
        "wrong secret": good[:-4] + "AAAA",
        "revoked": good,
        "contact token": mint(widget_client(org)).json()["token"],
    }[kind]
    client = backend(raw) if raw else APIClient()
    before = Contact.objects.count()

    # when
    response = authenticate(client, {"email": "a@shop.test"})

    # then
    assert response.status_code == 401
    assert response.json() == UNAUTHENTICATED
    assert Contact.objects.count() == before


def test_a_key_without_the_scope_is_403(org):
    response = authenticate(backend(key_for(org, scopes=["contacts:read"])), {"email": "a@b.test"})

    assert response.status_code == 403
    assert Contact.objects.count() == 0


@pytest.mark.parametrize(
    ("body", "content_type"), [("{oops", "application/json"), ("hi", "text/plain")]
)
@pytest.mark.parametrize(
    ("credentials", "status"),
    [(None, 401), ("agent token", 401), ("key without the scope", 403)],
)
def test_a_caller_who_may_not_authenticate_users_hears_nothing_about_the_body(
    org, agent_user, body, content_type, credentials, status
):
    # given (docs/api.md: credentials, then role and scope, then throttles, then the body)
    client = APIClient()
    if credentials == "agent token":
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {agent_access_token(client, agent_user)}")
    elif credentials == "key without the scope":
        client = backend(key_for(org, scopes=("contacts:read",)))

    # when
    response = post_raw(client, "/widget/authenticate-user", body, content_type=content_type)

    # then
    assert response.status_code == status
    assert Contact.objects.count() == 0


def test_authenticate_user_query_budget(org, django_assert_num_queries):
    client = backend(key_for(org))
    # the key and its last_used_at stamp, a savepoint (the test runs in a transaction), the match
    # (unlocked on PostgreSQL, locked on SQLite), the new contact and its device (one INSERT
    # statement on PostgreSQL; two in a savepoint of their own on SQLite), the release
    expected = 6 if connection.vendor == "postgresql" else 9

    with django_assert_num_queries(expected):
        assert authenticate(client, {"email": "a@b.test", "user_id": "u"}).status_code == 201


def test_a_returning_user_is_one_match_query_and_a_narrow_update(org, django_assert_num_queries):
    client = backend(key_for(org))
    authenticate(client, {"email": "a@b.test", "user_id": "u"})  # first sign-in, key stamped

    # the key, both identity keys in one match (unlocked on PostgreSQL, where the write checks
    # the row version; locked on SQLite), the device INSERT and the contact's UPDATE (one
    # statement on PostgreSQL); plus a savepoint (the test runs in a transaction) and its release
    postgresql = connection.vendor == "postgresql"
    with django_assert_num_queries(5 if postgresql else 6) as captured:
        response = authenticate(client, {"email": "a@b.test", "user_id": "u", "name": "A"})

    assert response.status_code == 201
    sql = [q["sql"] for q in captured.captured_queries]
    assert [q.split()[0].upper() for q in sql].count("SELECT") == 2
    (update,) = [q for q in sql if q.upper().startswith("WITH" if postgresql else "UPDATE")]
    update = update[update.upper().index("UPDATE") :]
    assert '"name" = ' in update
    assert "non_verified_custom_data" not in update and '"trust"' not in update


def test_a_sign_in_moves_last_seen_at_at_most_once_a_minute(org):
    # given: a customer signed in, and signed in again within the minute with a new name
    client = backend(key_for(org))
    authenticate(client, {"email": "a@b.test", "user_id": "u"})
    seen = Contact.objects.get(org=org).last_seen_at

    authenticate(client, {"email": "a@b.test", "user_id": "u", "name": "B"})

    contact = Contact.objects.get(org=org)
    assert (contact.name, contact.last_seen_at) == ("B", seen)
    assert contact.verified_at > seen

    # when: a sign-in a minute after the last recorded visit
    Contact.objects.filter(pk=contact.pk).update(last_seen_at=seen - LAST_SEEN_RESOLUTION)
    authenticate(client, {"email": "a@b.test", "user_id": "u"})

    # then
    assert Contact.objects.get(org=org).last_seen_at > seen


def test_users_without_an_email_are_not_matched_to_each_other(org):
    proof = VerifiedProof(method=AuthMethod.CUSTOM_JWT, key_id="k1", token_claims={})

    first = contact_verified_sign_in(
        org=org, profile=VerifiedProfile(email="", user_id="a"), proof=proof
    )
    second = contact_verified_sign_in(
        org=org, profile=VerifiedProfile(email="", user_id="b"), proof=proof
    )

    assert first.contact.pk != second.contact.pk
    assert Contact.objects.filter(org=org, trust="verified").count() == 2


def test_verified_token_cannot_mint_browser_details(org):
    token = authenticate(backend(key_for(org)), {"email": "a@b.test"}).json()["token"]

    response = mint(widget_client(org), {"name": "x"}, token=token)

    assert response.status_code == 409


@pytest.mark.postgres_only(reason="real concurrency needs PostgreSQL")
@pytest.mark.django_db(transaction=True)
def test_twenty_parallel_first_sign_ins_give_exactly_one_contact():
    # given
    org = OrganizationFactory()
    key = key_for(org)
    statuses: list[int] = []

    def sign_in(n: int) -> None:
        response = authenticate(backend(key), {"email": "race@shop.test", "user_id": "r1"})
        statuses.append(response.status_code)

    # when
    in_parallel(sign_in, 20)

    # then
    assert statuses == [201] * 20
    assert Contact.objects.filter(org=org).count() == 1
    assert Device.objects.filter(org=org).count() == 20


@pytest.mark.postgres_only(reason="real concurrency needs PostgreSQL")
@pytest.mark.django_db(transaction=True)
def test_twenty_parallel_sign_ins_of_a_known_user_lose_none_of_their_custom_data():
    # Each sign-in merges its own key into the stored custom data: a write that ignored a
    # sign-in landing between its read and its write would drop that one's key.
    # given
    org = OrganizationFactory()
    key = key_for(org)
    authenticate(backend(key), {"email": "known@shop.test", "user_id": "k1"})
    statuses: list[int] = []

    def sign_in(n: int) -> None:
        body = {"email": "known@shop.test", "user_id": "k1", "customData": {f"k{n}": n}}
        statuses.append(authenticate(backend(key), body).status_code)

    # when
    in_parallel(sign_in, 20)

    # then
    assert statuses == [201] * 20
    (contact,) = Contact.objects.filter(org=org)
    assert contact.custom_data == {f"k{n}": n for n in range(20)}
    assert Device.objects.filter(org=org).count() == 21


@pytest.mark.postgres_only(reason="the unlocked path needs PostgreSQL's row versions")
@pytest.mark.django_db(transaction=True)
def test_a_known_users_sign_in_opens_no_transaction_on_postgresql():
    # given: a known user, and the key's last_used_at already stamped
    org = OrganizationFactory()
    client = backend(key_for(org))
    authenticate(client, {"email": "a@b.test", "user_id": "u"})
    statements: list[tuple[str, bool]] = []

    def record(execute, sql, params, many, context):
        statements.append((sql.split()[0].upper(), connection.in_atomic_block))
        return execute(sql, params, many, context)

    # when
    with connection.execute_wrapper(record):
        response = authenticate(client, {"email": "a@b.test", "user_id": "u", "name": "B"})

    # then: the key, the unlocked match, the guarded write; each in autocommit
    assert response.status_code == 201
    assert statements == [("SELECT", False), ("SELECT", False), ("WITH", False)]
    assert Contact.objects.get(org=org).name == "B"


@pytest.mark.postgres_only(reason="the unlocked path needs PostgreSQL's row versions")
@pytest.mark.django_db(transaction=True)
def test_a_contact_changed_between_read_and_write_is_signed_in_on_the_locked_row(monkeypatch):
    # given: a known user; an agent's edit lands just after the sign-in's unlocked read
    from contacts import services

    org = OrganizationFactory()
    client = backend(key_for(org))
    authenticate(client, {"email": "a@b.test", "user_id": "u", "customData": {"a": 1}})
    contact = Contact.objects.get(org=org)
    match, reads = services._verified_match, []

    def match_then_edit(*, lock, **arguments):
        reads.append(lock)
        found = match(lock=lock, **arguments)
        if not lock:
            committed_elsewhere(
                'UPDATE "contacts_contact" SET "phone" = %s WHERE "id" = %s', ["+1 555", contact.pk]
            )
        return found

    monkeypatch.setattr(services, "_verified_match", match_then_edit)

    # when
    response = authenticate(client, {"email": "a@b.test", "user_id": "u", "customData": {"b": 2}})

    # then: the stale write was dropped, and the locked retry kept the edit and merged the data
    assert response.status_code == 201
    assert reads == [False, True]
    stored = Contact.objects.get(pk=contact.pk)
    assert stored.phone == "+1 555"
    assert stored.custom_data == {"a": 1, "b": 2}
    assert Device.objects.filter(contact=contact).count() == 2


# --- signinWithCustomToken ---------------------------------------------------------------


def custom_token(org, secret: str, kid: str, **overrides) -> str:
    now = int(time.time())
    claims = {
        "_id": "cust-42",
        "email": "Cust@Shop.test",
        "firstname": "Cu",
        "lastname": "Stomer",
        "attributes": {"tier": "gold"},
        "aud": f"{settings.PUBLIC_URL}/projects/{org.id}",
        "iss": "https://shop.test",
        "sub": "cust-42",
        "iat": now,
        "exp": now + 300,
        "jti": uuid.uuid4().hex,
        **overrides,
    }
    claims = {k: v for k, v in claims.items() if v is not None}
    return jwt.encode(claims, secret, algorithm="HS256", headers={"kid": kid})


def exchange(token: str, prefix: str = "JWT"):
    return APIClient().post(
        "/v3/auth/signinWithCustomToken", HTTP_AUTHORIZATION=f"{prefix} {token}"
    )


@pytest.fixture
def shared_secret(org):
    issued = signing_secret_create_shared(org=org, created_by=None)
    return issued.secret, issued.signing_secret.kid


def test_custom_token_gives_our_own_verified_token(org, shared_secret):
    # given
    secret, kid = shared_secret
    token = custom_token(org, secret, kid, role="owner")

    # when
    response = exchange(token)

    # then
    body = response.json()
    contact = Contact.objects.get()
    assert response.status_code == 200
    assert body["success"] is True
    assert body["token"].startswith("JWT ")
    ours = body["token"].removeprefix("JWT ")
    assert ours != token
    assert jwt.get_unverified_header(ours)["typ"] == "contact+jwt"
    assert body["contact"] == {"id": str(contact.id), "trust": "verified"}
    assert body["user"] == {
        "_id": "cust-42",
        "firstname": "Cu",
        "lastname": "Stomer",
        "email": "cust@shop.test",
        "attributes": {"tier": "gold"},
        "emailverified": True,
    }
    assert contact.trust == "verified"
    assert contact.user_id == "cust-42"
    assert contact.custom_data == {"tier": "gold"}
    info = contact.sender_auth_info
    assert info["method"] == "custom_jwt"
    assert info["authVar"]["keyId"] == kid
    assert set(info["authVar"]["token"]) == {"iss", "sub", "aud", "iat", "exp", "jti"}
    assert secret not in str(info)
    assert token.split(".")[2] not in str(info)
    from identity.models import User

    assert not User.objects.filter(email="cust@shop.test").exists()
    assert widget_client(org, ours).get("/widget/me").status_code == 200


def test_a_custom_token_without_a_jti_is_accepted_once_by_its_own_hash(org, shared_secret):
    # given a token in Tiledesk's own form, which carries no jti
    token = custom_token(org, *shared_secret, jti=None)
    # when it is exchanged, then replayed
    first, replay = exchange(token), exchange(token)
    # then the first signs in, the identical replay is refused, and nothing more is written
    assert first.status_code == 200, first.content
    assert replay.status_code == 401
    assert replay.json() == {**UNAUTHENTICATED, "success": False}
    assert Device.objects.count() == 1
    assert Contact.objects.get().sender_auth_info["authVar"]["token"]["jti"] is None
    # and the backend's next token for the same user (another iat) is a new token
    later = custom_token(org, *shared_secret, jti=None, iat=int(time.time()) - 1)
    assert exchange(later).status_code == 200
    assert Device.objects.count() == 2


def resign_es256_with_the_other_s(token: str) -> str:
    """The same claims under the other valid ES256 signature: (r, s) as (r, n - s)."""
    signed, _, signature = token.rpartition(".")
    raw = base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4))
    r, s = int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")
    order = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551  # P-256's n
    flipped = r.to_bytes(32, "big") + (order - s).to_bytes(32, "big")
    return f"{signed}.{base64.urlsafe_b64encode(flipped).rstrip(b'=').decode()}"


def test_a_jti_less_es256_token_is_not_accepted_again_under_its_other_signature(org):
    # given an uploaded P-256 public key and a token without a jti, exchanged once
    private_key = ec.generate_private_key(ec.SECP256R1())
    public_pem = private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    kid = signing_secret_create_public_key(
        org=org, created_by=None, algorithm="ES256", public_key=public_pem.decode()
    ).kid
    now = int(time.time())
    claims = {"_id": "cust-7", "aud": f"{settings.PUBLIC_URL}/projects/{org.id}"}
    token = jwt.encode(
        {**claims, "iat": now, "exp": now + 300},
        private_key,
        algorithm="ES256",
        headers={"kid": kid},
    )
    assert exchange(token).status_code == 200
    malleated = resign_es256_with_the_other_s(token)
    assert malleated != token
    assert jwt.decode(
        malleated, private_key.public_key(), algorithms=["ES256"], audience=claims["aud"]
    )

    # when the other signature of the same claims is sent
    replay = exchange(malleated)

    # then it is the replay it is
    assert replay.status_code == 401
    assert replay.json() == {**UNAUTHENTICATED, "success": False}
    assert Device.objects.count() == 1


def test_a_replayed_custom_token_is_refused(org, shared_secret):
    token = custom_token(org, *shared_secret)
    assert exchange(token).status_code == 200

    replay = exchange(token)

    assert replay.status_code == 401
    assert replay.json() == {**UNAUTHENTICATED, "success": False}
    assert Device.objects.count() == 1


@pytest.mark.parametrize(
    "kind",
    ["wrong key", "other org aud", "expired", "lifetime over ten minutes", "no _id", "none alg"],
)
def test_hostile_custom_tokens_get_the_same_401_and_write_nothing(org, shared_secret, kind):
    secret, kid = shared_secret
    other = OrganizationFactory()
    now = int(time.time())
    token = {
        "wrong key": lambda: custom_token(org, "another-secret-that-is-long-enough!!", kid),
        "other org aud": lambda: custom_token(
            org, secret, kid, aud=f"{settings.PUBLIC_URL}/projects/{other.id}"
        ),
        "expired": lambda: custom_token(org, secret, kid, iat=now - 400, exp=now - 100),
        "lifetime over ten minutes": lambda: custom_token(org, secret, kid, exp=now + 1200),
        "no _id": lambda: custom_token(org, secret, kid, _id=None),
        "none alg": lambda: jwt.encode(
            {"_id": "x", "aud": f"{settings.PUBLIC_URL}/projects/{org.id}"}, None, "none"
        ),
    }[kind]()

    response = exchange(token)

    assert response.status_code == 401
    assert response.json() == {**UNAUTHENTICATED, "success": False}
    assert Contact.objects.count() == 0


def test_custom_token_without_header_is_401(org):
    response = APIClient().post("/v3/auth/signinWithCustomToken")

    assert response.status_code == 401
    assert response.json()["success"] is False


def test_custom_token_email_conflict_is_409(org, shared_secret):
    authenticate(backend(key_for(org)), {"email": "cust@shop.test", "user_id": "someone-else"})

    response = exchange(custom_token(org, *shared_secret))

    assert response.status_code == 409
    assert response.json()["success"] is False
    assert Contact.objects.count() == 1


def test_a_custom_token_refused_with_a_409_is_not_spent(org, shared_secret):
    # given: the token's email held by another verified user_id, so its exchange is a 409
    other = authenticate(backend(key_for(org)), {"email": "cust@shop.test", "user_id": "other"})
    token = custom_token(org, *shared_secret)
    assert exchange(token).status_code == 409

    # when: the customer's backend moves the other user to another address, and the same token
    # is exchanged again
    authenticate(backend(key_for(org)), {"email": "other@shop.test", "user_id": "other"})
    response = exchange(token)

    # then: the token signs its user in, once
    assert response.status_code == 200
    assert Contact.objects.get(user_id="cust-42").email == "cust@shop.test"
    assert Contact.objects.get(pk=other.json()["contact"]["id"]).email == "other@shop.test"
    assert exchange(token).status_code == 401


def test_a_custom_token_whose_data_would_overflow_once_merged_is_a_400_and_is_not_spent(
    org, shared_secret
):
    # given: a customer whose stored custom data and the token's attributes together pass 16 KiB
    authenticate(
        backend(key_for(org)),
        {"email": "cust@shop.test", "user_id": "cust-42", "customData": {"a": "x" * 12000}},
    )
    token = custom_token(org, *shared_secret, attributes={"b": "y" * 5000})

    # when
    response = exchange(token)

    # then: a 400 that writes nothing, and the token is still good for one exchange
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "custom_data_too_large"
    assert response.json()["success"] is False
    assert Contact.objects.get().custom_data == {"a": "x" * 12000}
    assert Device.objects.count() == 1
    authenticate(
        backend(key_for(org)),
        {"email": "cust@shop.test", "user_id": "cust-42", "customData": {"a": None}},
    )
    assert exchange(token).status_code == 200
    assert exchange(token).status_code == 401


def test_a_custom_token_without_email_keeps_the_known_verified_email(org, shared_secret):
    # given a customer its backend signed in with a user_id and an email
    created = authenticate(backend(key_for(org)), {"email": "ada@shop.test", "user_id": "cust-42"})
    # when a custom token for the same user_id leaves the optional email out
    response = exchange(custom_token(org, *shared_secret, email=None))
    # then the same contact signs in and keeps its email
    assert response.status_code == 200, response.content
    contact = Contact.objects.get(org=org, user_id="cust-42")
    assert str(contact.pk) == created.json()["contact"]["id"]
    assert contact.email == "ada@shop.test"


def test_a_custom_tokens_answer_holds_its_own_attributes_not_the_stored_custom_data(
    org, shared_secret
):
    # given a customer for whom the backend stored data server to server
    authenticate(
        backend(key_for(org)),
        {"email": "cust@shop.test", "user_id": "cust-42", "customData": {"risk_score": 97}},
    )
    # when the browser exchanges a custom token whose attributes are {"tier": "gold"}
    response = exchange(custom_token(org, *shared_secret))
    # then the browser reads its token's attributes; the contact keeps both
    assert response.status_code == 200
    assert response.json()["user"]["attributes"] == {"tier": "gold"}
    assert Contact.objects.get().custom_data == {"risk_score": 97, "tier": "gold"}


@pytest.mark.parametrize(
    ("claims", "field"),
    [
        ({"firstname": "Ada\ud800"}, "firstname"),
        ({"lastname": "Love\x00lace"}, "lastname"),
        ({"email": "ada\x00@shop.test"}, "email"),
        ({"attributes": {"tier": "go\ud800ld"}}, "attributes"),
        ({"attributes": {"ti\x00er": "gold"}}, "attributes"),
        ({"attributes": {"tier": [1, "1e400"]}}, "attributes"),
    ],
    ids=["surrogate-firstname", "nul-lastname", "nul-email", "surrogate-value", "nul-key", "inf"],
)
def test_a_custom_tokens_profile_with_text_spec_refuses_is_a_400_and_keeps_its_jti(
    org, shared_secret, claims, field
):
    # given a correctly signed token whose profile holds what SPEC §5 refuses in a body
    token = custom_token(org, *shared_secret, **claims)
    if "1e400" in str(claims):  # a literal Python reads as infinity, signed as it is
        payload = jwt.decode(token, options={"verify_signature": False})
        raw = json.dumps(payload).replace('"1e400"', "1e400").encode()
        token = jwt.api_jws.encode(raw, shared_secret[0], headers={"kid": shared_secret[1]})
    # when it is exchanged
    response = exchange(token)
    # then the field is named, nothing is written, and the jti is not used up
    assert response.status_code == 400
    assert list(response.json()["error"]["fields"]) == [field]
    assert response.json()["success"] is False
    assert Contact.objects.count() == 0
    jti = jwt.decode(token, options={"verify_signature": False})["jti"]
    assert exchange(custom_token(org, *shared_secret, jti=jti)).status_code == 200


def test_a_custom_tokens_two_names_longer_than_a_name_together_are_a_400(org, shared_secret):
    # given two names at their own limit of 100, which joined would be 201 characters
    token = custom_token(org, *shared_secret, firstname="f" * 100, lastname="l" * 100)
    # when
    response = exchange(token)
    # then the claim is named, nothing is written and the jti is not used up
    assert response.status_code == 400
    assert list(response.json()["error"]["fields"]) == ["lastname"]
    assert Contact.objects.count() == 0
    jti = jwt.decode(token, options={"verify_signature": False})["jti"]
    again = custom_token(org, *shared_secret, firstname="f" * 100, lastname="l" * 99, jti=jti)
    assert exchange(again).status_code == 200
    assert len(Contact.objects.get().name) == 200


@pytest.mark.parametrize(
    "claims",
    [
        {"_id": "cust\ud800"},
        {"_id": "cust\x0042"},
        {"sub": "cust\x00"},
        {"iss": "https://shop.test/\ud800"},
        {"jti": "j\x00ti"},
        {"aud": [f"{settings.PUBLIC_URL}/projects/{{org}}", "other\x00"]},
    ],
    ids=["surrogate-_id", "nul-_id", "nul-sub", "surrogate-iss", "nul-jti", "nul-in-aud-list"],
)
def test_a_custom_token_whose_stored_claims_hold_such_text_is_a_401(org, shared_secret, claims):
    # given a correctly signed token whose identifying claims hold NUL or a lone surrogate
    claims = {
        name: [a.replace("{org}", str(org.id)) for a in value] if name == "aud" else value
        for name, value in claims.items()
    }
    # when it is exchanged
    response = exchange(custom_token(org, *shared_secret, **claims))
    # then it is malformed: the uniform 401, and nothing is written
    assert response.status_code == 401
    assert response.json() == {**UNAUTHENTICATED, "success": False}
    assert Contact.objects.count() == 0


# --- identity keys: one spelling per user --------------------------------------------------


@pytest.mark.parametrize(
    "user_id", ["acct-1\u3000", " acct-1", "acct-1\x1f", "acct-1\n", "   "], ids=repr
)
def test_a_padded_user_id_is_a_400_not_another_spelling_of_a_customer(org, user_id):
    # given: a customer whose backend signed them in as acct-1
    client = backend(key_for(org))
    authenticate(client, {"email": "alice@shop.test", "user_id": "acct-1"})

    # when: another user's user_id differs only by whitespace around it
    response = authenticate(client, {"email": "bob@shop.test", "user_id": user_id})

    # then: refused, not trimmed into alice's contact
    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {
        "user_id": ["Must not start or end with whitespace."]
    }
    assert list(Contact.objects.values_list("email", flat=True)) == ["alice@shop.test"]


def test_an_empty_user_id_still_means_identify_by_email(org):
    client = backend(key_for(org))
    first = authenticate(client, {"email": "a@shop.test", "user_id": ""})

    second = authenticate(client, {"email": "a@shop.test"})

    assert first.status_code == second.status_code == 201
    assert first.json()["contact"] == second.json()["contact"]


@pytest.mark.parametrize("user_id", ["cust-42 ", "\tcust-42", "cust-42\u3000"], ids=repr)
def test_a_custom_tokens_padded_id_is_malformed_as_on_authenticate_user(
    org, shared_secret, user_id
):
    # when
    response = exchange(custom_token(org, *shared_secret, _id=user_id, email=None))

    # then: the uniform 401, and no second contact beside cust-42's
    assert response.status_code == 401
    assert response.json() == {**UNAUTHENTICATED, "success": False}
    assert Contact.objects.count() == 0


@pytest.mark.parametrize(
    "spelling",
    [
        "carol@bu\u0308cher.de",  # NFD
        "carol@xn--bcher-kva.de",  # the domain's ASCII form
        "carol@b\u00fccher.d\uff45",  # a full-width e
        "Carol@B\u00dcCHER.DE",
        "carol@\uff42\u00fccher.de",  # a full-width b
    ],
)
def test_spellings_of_one_mailbox_are_one_verified_identity(org, spelling):
    # given: a verified customer with an internationalised domain
    client = backend(key_for(org))
    first = authenticate(client, {"email": "carol@b\u00fccher.de", "user_id": "carol"})

    # when: another spelling of the same address arrives, for another user_id and for her
    conflict = authenticate(client, {"email": spelling, "user_id": "somebody-else"})
    same = authenticate(client, {"email": spelling, "user_id": "carol"})

    # then: the same contact, and the 409 is not dodged
    assert same.status_code == 201
    assert same.json()["contact"] == first.json()["contact"]
    assert conflict.status_code == 409
    assert list(Contact.objects.values_list("email", flat=True)) == ["carol@b\u00fccher.de"]


def test_a_custom_tokens_email_is_one_spelling_with_authenticate_users(org, shared_secret):
    # given: a customer signed in by the backend under user_id somebody-else
    authenticate(backend(key_for(org)), {"email": "cust@b\u00fccher.de", "user_id": "other"})

    # when: a custom token for another user carries another spelling of that email
    response = exchange(custom_token(org, *shared_secret, email="CUST@xn--bcher-kva.de"))

    # then: the same mailbox, so the conflict it is
    assert response.status_code == 409
    assert Contact.objects.count() == 1


def test_ss_and_sharp_s_domains_stay_two_mailboxes(org):
    # IDNA 2008 keeps ß (IDNA 2003 mapped it to ss): two registrable domains, two people.
    client = backend(key_for(org))
    first = authenticate(client, {"email": "ann@stra\u00dfe.de", "user_id": "a"})
    second = authenticate(client, {"email": "ann@strasse.de", "user_id": "b"})

    assert first.status_code == second.status_code == 201
    assert sorted(Contact.objects.values_list("email", flat=True)) == [
        "ann@strasse.de",
        "ann@stra\u00dfe.de",
    ]


def test_a_custom_tokens_email_over_254_once_lower_cased_is_a_400_and_keeps_its_jti(
    org, shared_secret
):
    # given: 250 characters that lower-case to 270 (each İ becomes i and a combining dot)
    labels = ["\u0130" * 20 + "a" * 30, "b" * 60, "c" * 60, "d" * 60, "de"]
    email = "a@" + ".".join(labels)
    assert len(email) <= 254 < len(email.lower())
    token = custom_token(org, *shared_secret, email=email)

    # when
    response = exchange(token)

    # then: named and refused, as on every other route, where PostgreSQL used to raise (a 500)
    assert response.status_code == 400
    assert list(response.json()["error"]["fields"]) == ["email"]
    assert Contact.objects.count() == 0
    jti = jwt.decode(token, options={"verify_signature": False})["jti"]
    assert exchange(custom_token(org, *shared_secret, jti=jti)).status_code == 200


@pytest.mark.parametrize("email", ["\u017fam@shop.test", "\u0131an@shop.test"], ids=repr)
def test_a_local_part_that_only_case_insensitive_matching_lets_through_is_a_400(org, email):
    # Django's pattern matches ignoring case, so it takes a long s or a dotless i for s and i;
    # no lower-casing turns them into the ASCII letters, so they would be other mailboxes.
    response = authenticate(backend(key_for(org)), {"email": email, "user_id": "u"})

    assert response.status_code == 400
    assert list(response.json()["error"]["fields"]) == ["email"]
    assert Contact.objects.count() == 0


@pytest.mark.parametrize("spelling", ["dee@xn--g6h.de", "dee@\u2665.\uff44\uff45"], ids=repr)
def test_spellings_of_a_domain_idna_refuses_still_meet(org, spelling):
    # given: an address Django accepts and IDNA 2008 refuses (a symbol in the domain)
    client = backend(key_for(org))
    authenticate(client, {"email": "dee@\u2665.de", "user_id": "dee"})

    # when
    conflict = authenticate(client, {"email": spelling, "user_id": "somebody-else"})

    # then
    assert conflict.status_code == 409
    assert list(Contact.objects.values_list("email", flat=True)) == ["dee@\u2665.de"]
