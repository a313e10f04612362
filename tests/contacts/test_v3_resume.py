"""POST /v3/auth/signinWithCustomToken with a token we issued: how Tiledesk clients resume.

Tiledesk's widget and chat21 clients keep the token of their last sign-in and send it back to
signinWithCustomToken on the next page load; Tiledesk answers with the same token and its user.
"""

import base64
import json
import time
import uuid

import jwt
import pytest
from django.conf import settings
from rest_framework.test import APIClient

from contacts.api.throttles import CustomTokenIpThrottle
from contacts.models import Contact, Device
from identity.services import api_key_create, signing_secret_create_shared
from tests.contacts.conftest import widget_client
from tests.factories import OrganizationFactory

pytestmark = pytest.mark.django_db

UNAUTHENTICATED_V3 = {
    "error": {
        "code": "not_authenticated",
        "message": "Authentication credentials were not provided or are not valid.",
    },
    "success": False,
}


def resume(token: str, prefix: str = "JWT"):
    return APIClient().post(
        "/v3/auth/signinWithCustomToken", HTTP_AUTHORIZATION=f"{prefix} {token}"
    )


def anonymous_sign_in(org, **details) -> dict:
    response = APIClient().post(
        "/v3/auth/signinAnonymously", {"id_project": str(org.id), **details}, format="json"
    )
    assert response.status_code == 200
    return response.json()


def rows() -> tuple[int, int]:
    return Contact.objects.count(), Device.objects.count()


def test_an_anonymous_token_is_answered_with_itself_and_its_contact(org):
    # given
    signed_in = anonymous_sign_in(org)
    token = signed_in["token"].removeprefix("JWT ")
    before = rows()

    # when
    response = resume(token)

    # then
    body = response.json()
    contact = Contact.objects.get()
    assert response.status_code == 200
    assert body == {
        "success": True,
        "token": f"JWT {token}",
        "expires_at": body["expires_at"],
        "contact": {"id": str(contact.pk), "trust": "anonymous"},
        "user": signed_in["user"],
    }
    assert jwt.decode(token, options={"verify_signature": False})["exp"] == int(
        contact.devices.get().created_at.timestamp()
    ) + int(org.anonymous_token_lifetime.total_seconds())
    assert rows() == before


def test_a_non_verified_token_gets_its_own_browser_data_back(org):
    # given
    signed_in = anonymous_sign_in(
        org, firstname="Nina", lastname="Visitor", email="nina@visitor.test", attributes={"a": 1}
    )

    # when
    response = resume(signed_in["token"].removeprefix("JWT "), prefix="Bearer")

    # then
    assert response.status_code == 200
    assert response.json()["contact"]["trust"] == "non_verified"
    assert response.json()["user"] == {
        "_id": signed_in["user"]["_id"],
        "firstname": "Nina Visitor",
        "lastname": "",
        "email": "nina@visitor.test",
        "attributes": {"a": 1},
        "emailverified": False,
    }


def custom_token(org, secret: str, kid: str, **claims) -> str:
    now = int(time.time())
    payload = {
        "_id": "cust-42",
        "email": "cust@shop.test",
        "firstname": "Cu",
        "attributes": {"tier": "gold"},
        "aud": f"{settings.PUBLIC_URL}/projects/{org.id}",
        "iat": now,
        "exp": now + 300,
        "jti": uuid.uuid4().hex,
        **claims,
    }
    return jwt.encode(payload, secret, algorithm="HS256", headers={"kid": kid})


def test_a_verified_token_is_answered_with_itself_and_no_trusted_data(org):
    # given a verified sign-in by a customer-signed token, and its token kept by the client
    issued = signing_secret_create_shared(org=org, created_by=None)
    first = resume(custom_token(org, issued.secret, issued.signing_secret.kid))
    assert first.status_code == 200
    ours = first.json()["token"].removeprefix("JWT ")
    before = rows()

    # when the client sends our token back on its next page load
    response = resume(ours)

    # then: the same token, the customer's id, and none of the backend's custom data
    body = response.json()
    assert response.status_code == 200
    assert body["token"] == f"JWT {ours}"
    assert body["expires_at"] == first.json()["expires_at"]
    assert body["user"] == {
        "_id": "cust-42",
        "firstname": "Cu",
        "lastname": "",
        "email": "cust@shop.test",
        "attributes": {},
        "emailverified": True,
    }
    assert Contact.objects.get().custom_data == {"tier": "gold"}
    assert rows() == before


def test_a_verified_token_without_a_user_id_names_the_contact(org):
    # given a customer verified by authenticate-user with an email only
    key = api_key_create(
        org=org, created_by=None, name="b", scopes=["widget:authenticate"], expires_at=None
    ).key
    backend = APIClient(HTTP_AUTHORIZATION=f"Bearer {key}")
    signed = backend.post(
        "/widget/authenticate-user", {"email": "ada@shop.test"}, format="json"
    ).json()

    # when
    response = resume(signed["token"])

    # then
    assert response.status_code == 200
    assert response.json()["user"]["_id"] == signed["contact"]["id"]
    assert response.json()["user"]["emailverified"] is True


def forged_aud(token: str, org_id: str) -> str:
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["aud"] = org_id
    encoded = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{header}.{encoded}.{signature}"


@pytest.mark.parametrize(
    "kind",
    ["logged out", "another org's aud", "unknown org", "not an org id", "expired", "agent token"],
)
def test_tokens_of_ours_that_fail_get_the_uniform_401_and_write_nothing(org, kind, agent_user):
    # given
    token = anonymous_sign_in(org)["token"].removeprefix("JWT ")
    if kind == "logged out":
        assert widget_client(org, token).post("/widget/logout").status_code == 204
    elif kind == "another org's aud":
        token = forged_aud(token, str(OrganizationFactory().pk))
    elif kind == "unknown org":
        token = forged_aud(token, str(uuid.uuid4()))
    elif kind == "not an org id":
        token = forged_aud(token, "x\u0000y")
    elif kind == "expired":
        now = int(time.time())
        claims = jwt.decode(token, options={"verify_signature": False})
        token = jwt.encode(
            {**claims, "iat": now - 100, "exp": now - 10},
            settings.CONTACT_TOKEN_KEY,
            algorithm="HS256",
            headers=jwt.get_unverified_header(token),
        )
    else:
        signed_in = APIClient().post(
            "/v3/auth/signin",
            {"email": agent_user.email, "password": "correct horse battery staple"},
            format="json",
        )
        assert signed_in.status_code == 200
        token = signed_in.json()["token"].removeprefix("JWT ")
    before = rows()

    # when
    response = resume(token)

    # then
    assert response.status_code == 401
    assert response.json() == UNAUTHENTICATED_V3
    assert rows() == before


@pytest.fixture
def custom_token_rate(monkeypatch):
    monkeypatch.setattr(CustomTokenIpThrottle, "rate", "2/min", raising=False)


def test_resumes_are_not_counted_against_the_custom_token_rate(org, custom_token_rate):
    # given: Tiledesk's widget resumes on every page load
    token = anonymous_sign_in(org)["token"].removeprefix("JWT ")

    # when
    statuses = [resume(token).status_code for _ in range(5)]

    # then
    assert statuses == [200] * 5


def test_exchanges_and_failed_tokens_are_limited_per_ip_and_the_refused_one_writes_nothing(
    org, custom_token_rate
):
    # given: a resumed session in between does not count
    issued = signing_secret_create_shared(org=org, created_by=None)
    token = anonymous_sign_in(org)["token"].removeprefix("JWT ")

    def exchange():
        return resume(custom_token(org, issued.secret, issued.signing_secret.kid))

    assert exchange().status_code == 200
    assert resume("not.a.token").status_code == 401
    assert resume(token).status_code == 200
    before = rows()

    # when
    response = exchange()

    # then
    assert response.status_code == 429
    assert response.json()["error"]["code"] == "throttled"
    assert response.json()["success"] is False
    assert "Retry-After" in response
    assert rows() == before
    assert resume(token).status_code == 200
