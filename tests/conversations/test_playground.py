"""The playground page and its demo backend (no browser: tests/e2e drives the page itself)."""

import pytest
from rest_framework.test import APIClient

from contacts.models import Contact, Device
from identity import services as identity_services
from identity.demo import demo_api_key_public_id, seed_identity
from identity.models import ApiKey, AuditEvent
from tests.factories import OrganizationFactory, VerifiedContactFactory

pytestmark = pytest.mark.django_db

BACKEND = "/playground/demo-backend/authenticate"
NOT_FOUND = {"error": {"code": "not_found", "message": "Not found."}}
NO_KEY = {
    "error": {
        "code": "demo_backend_unavailable",
        "message": "demo backend has no API key; run seed_demo",
    }
}


@pytest.fixture
def demo_org():
    return OrganizationFactory(slug="demo", name="Demo Shop")


def demo_key(org) -> ApiKey:
    """Seed `org` as `seed_demo` does; its demo API key."""
    seed_identity(slug=org.slug)
    return ApiKey.objects.get(org=org, public_id=demo_api_key_public_id(org.slug))


def operator_key(org, scopes=("widget:authenticate",)) -> ApiKey:
    """A key the org's operators made for their own backend."""
    return identity_services.api_key_create(
        org=org, created_by=None, name="our backend", scopes=list(scopes), expires_at=None
    ).api_key


def nothing_written() -> bool:
    return not Contact.objects.exists() and not Device.objects.exists()


def test_page_renders_the_orgs_widget_token_and_embed_snippet(client, demo_org):
    # when
    response = client.get("/playground/")

    # then
    assert response.status_code == 200
    html = response.content.decode()
    assert demo_org.widget_token in html
    assert (
        "&lt;script src=&quot;http://testserver/static/widget/chatshield.js&quot;&gt;"
        "&lt;/script&gt;\n&lt;script&gt;\n  ChatShield.init({\n"
        f"    widgetToken: &quot;{demo_org.widget_token}&quot;,\n"
        "    collectUserData: false,\n  });\n&lt;/script&gt;"
    ) in html
    assert '<script src="/static/widget/chatshield.js"></script>' in html
    assert '<script src="/static/playground/playground.js"></script>' in html


def test_page_shows_the_org_named_by_the_org_parameter(client, demo_org):
    # given
    other = OrganizationFactory(slug="acme", name="Acme")

    # when
    response = client.get("/playground/?org=acme")

    # then
    assert response.status_code == 200
    assert other.widget_token in response.content.decode()
    assert demo_org.widget_token not in response.content.decode()


def test_page_for_an_unknown_org_is_404(client, demo_org):
    # when
    response = client.get("/playground/?org=nope")

    # then
    assert response.status_code == 404
    assert response.json() == NOT_FOUND


@pytest.mark.parametrize(
    "org", ["%00", "demo%00", "x" * 65, "a" * 10_000, "de%20mo", "%C3%A9t%C3%A9", "demo%2F.."]
)
def test_page_for_a_value_that_is_no_known_slug_is_404(client, demo_org, org):
    # when
    response = client.get(f"/playground/?org={org}")

    # then
    assert response.status_code == 404
    assert response.json() == NOT_FOUND


def test_page_says_the_verified_model_needs_demo_mode(client, settings, demo_org):
    # given
    settings.DEMO_MODE = False

    # when
    response = client.get("/playground/")

    # then
    assert 'data-testid="pg-demo-off"' in response.content.decode()


def test_demo_backend_is_404_outside_demo_mode(settings, demo_org):
    # given
    settings.DEMO_MODE = False
    demo_key(demo_org)

    # when
    response = APIClient().post(BACKEND, {"email": "ada@example.com"}, format="json")

    # then
    assert response.status_code == 404
    assert response.json() == NOT_FOUND
    assert nothing_written()


def test_demo_backend_signs_in_a_verified_contact_whose_token_works(settings, demo_org):
    # given
    settings.DEMO_MODE = True
    key = demo_key(demo_org)

    # when
    response = APIClient().post(
        BACKEND,
        {"email": "Ada@Example.com", "name": "Ada Lovelace", "user_id": "cust-1"},
        format="json",
    )

    # then
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"token", "contact", "expires_at"}
    contact = Contact.objects.get()
    assert body["contact"] == {"id": str(contact.pk)}
    assert (contact.trust, contact.email, contact.name, contact.user_id) == (
        Contact.Trust.VERIFIED,
        "ada@example.com",
        "Ada Lovelace",
        "cust-1",
    )
    assert contact.sender_auth_info["method"] == "api_key"
    assert contact.sender_auth_info["authVar"]["keyId"] == key.prefix
    me = APIClient().get(
        "/widget/me",
        HTTP_X_WIDGET_TOKEN=demo_org.widget_token,
        HTTP_AUTHORIZATION=f"Bearer {body['token']}",
    )
    assert me.status_code == 200
    assert me.json() == {
        "id": str(contact.pk),
        "trust": "verified",
        "name": "Ada Lovelace",
        "email": "ada@example.com",
    }


def test_demo_backend_gives_the_same_user_a_second_token_and_device(settings, demo_org):
    # given
    settings.DEMO_MODE = True
    demo_key(demo_org)
    body = {"email": "ada@example.com", "user_id": "cust-1"}
    first = APIClient().post(BACKEND, body, format="json").json()

    # when
    second = APIClient().post(BACKEND, body, format="json").json()

    # then
    assert second["token"] != first["token"]
    assert second["contact"] == first["contact"]
    assert Contact.objects.count() == 1
    assert Device.objects.count() == 2


def test_demo_backend_refuses_a_padded_user_id_as_authenticate_user_does(settings, demo_org):
    settings.DEMO_MODE = True
    demo_key(demo_org)

    body = {"email": "ada@example.com", "user_id": "cust-1\u3000"}
    response = APIClient().post(BACKEND, body, format="json")

    assert response.status_code == 400
    assert list(response.json()["error"]["fields"]) == ["user_id"]
    assert Contact.objects.count() == 0


def test_demo_backend_acts_for_the_org_named_by_the_org_parameter(settings, demo_org):
    # given
    settings.DEMO_MODE = True
    acme = OrganizationFactory(slug="acme")
    demo_key(acme)

    # when
    response = APIClient().post(f"{BACKEND}?org=acme", {"email": "ada@example.com"}, format="json")

    # then
    assert response.status_code == 201
    assert Contact.objects.get().org == acme


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({}, {"email": ["This field is required."]}),
        ({"email": "not-an-email"}, {"email": ["Enter a valid email address."]}),
        (
            {"email": "ada@example.com", "name": "x" * 201},
            {"name": ["Ensure this field has no more than 200 characters."]},
        ),
    ],
)
def test_demo_backend_refuses_invalid_input_and_writes_nothing(settings, demo_org, body, fields):
    # given
    settings.DEMO_MODE = True
    demo_key(demo_org)

    # when
    response = APIClient().post(BACKEND, body, format="json")

    # then
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid"
    assert response.json()["error"]["fields"] == fields
    assert nothing_written()


def test_demo_backend_refuses_a_body_that_is_not_json(settings, demo_org):
    # given
    settings.DEMO_MODE = True
    demo_key(demo_org)

    # when
    response = APIClient().post(BACKEND, "email=ada@example.com", content_type="text/plain")

    # then
    assert response.status_code == 415
    assert response.json()["error"]["code"] == "unsupported_media_type"
    assert nothing_written()


def test_demo_backend_with_the_demo_key_revoked_is_503_and_writes_nothing(settings, demo_org):
    # given: the operators' own keys, usable or not, never stand in for the demo key
    settings.DEMO_MODE = True
    revoked = demo_key(demo_org)
    identity_services.api_key_revoke(org=demo_org, api_key_id=revoked.pk, revoked_by=None)
    operator_key(demo_org)
    operator_key(demo_org, scopes=("contacts:read",))
    audit_events = AuditEvent.objects.count()

    # when
    response = APIClient().post(BACKEND, {"email": "ada@example.com"}, format="json")

    # then
    assert response.status_code == 503
    assert response.json() == NO_KEY
    assert nothing_written()
    assert AuditEvent.objects.count() == audit_events


def test_demo_backend_refuses_an_org_seed_demo_never_seeded_and_writes_nothing(settings, demo_org):
    # given: a real org whose backend signs its customers in with its own key
    settings.DEMO_MODE = True
    demo_key(demo_org)
    shop = OrganizationFactory(slug="shop")
    operator_key(shop)
    customer = VerifiedContactFactory(org=shop, email="dana@customer.example", user_id="c-1")
    devices = Device.objects.count()

    # when
    response = APIClient().post(
        f"{BACKEND}?org=shop",
        {"email": "dana@customer.example", "user_id": "c-1"},
        format="json",
    )

    # then
    assert response.status_code == 503
    assert response.json() == NO_KEY
    assert list(Contact.objects.filter(org=shop)) == [customer]
    assert Device.objects.count() == devices


def test_demo_backend_for_an_unknown_org_is_404(settings, demo_org):
    # given
    settings.DEMO_MODE = True
    demo_key(demo_org)

    # when
    response = APIClient().post(f"{BACKEND}?org=nope", {"email": "ada@example.com"}, format="json")

    # then
    assert response.status_code == 404
    assert response.json() == NOT_FOUND
    assert nothing_written()


def test_demo_backend_is_throttled_per_ip(settings, demo_org):
    # given
    settings.DEMO_MODE = True
    demo_key(demo_org)
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"playground_demo_backend": "2/min"},
    }
    client = APIClient()
    for n in range(2):
        client.post(BACKEND, {"email": f"user{n}@example.com"}, format="json")

    # when
    response = client.post(BACKEND, {"email": "third@example.com"}, format="json")

    # then
    assert response.status_code == 429
    assert response.json()["error"]["code"] == "throttled"
    assert "Retry-After" in response
    assert Contact.objects.count() == 2
    assert ApiKey.objects.count() == 1


def test_demo_backend_refuses_another_users_email_with_409_and_writes_nothing(settings, demo_org):
    # given
    settings.DEMO_MODE = True
    demo_key(demo_org)
    APIClient().post(BACKEND, {"email": "ada@example.com", "user_id": "cust-1"}, format="json")
    ada = Contact.objects.get()

    # when
    response = APIClient().post(
        BACKEND, {"email": "ada@example.com", "user_id": "cust-2"}, format="json"
    )

    # then
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "identity_conflict"
    assert list(Contact.objects.values_list("pk", "user_id")) == [(ada.pk, "cust-1")]
    assert Device.objects.count() == 1


def test_the_page_answers_head_as_it_answers_get(client, demo_org):
    # when
    head = client.head("/playground/")

    # then
    assert (head.status_code, head.content) == (200, b"")
    assert head["Content-Security-Policy"].startswith("default-src 'self'")
    assert client.post("/playground/").status_code == 405
