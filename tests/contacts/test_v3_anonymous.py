"""POST /v3/auth/signinAnonymously (SPEC §3.3): Tiledesk's browser sign-in, never a proof."""

import re

import pytest
from rest_framework.test import APIClient

from contacts.models import Contact
from tests.contacts.conftest import widget_client

pytestmark = pytest.mark.django_db


def sign_in(body: dict):
    return APIClient().post("/v3/auth/signinAnonymously", body, format="json")


def test_without_details_it_is_an_anonymous_contact_named_guest(org):
    # when
    response = sign_in({"id_project": str(org.id)})

    # then
    body = response.json()
    contact = Contact.objects.get()
    assert response.status_code == 200
    assert body["success"] is True
    assert body["token"].startswith("JWT ")
    assert re.fullmatch(r"guest#[0-9a-f]{4}", body["user"]["firstname"])
    assert body["user"] == {
        "_id": str(contact.pk),
        "firstname": body["user"]["firstname"],
        "lastname": "",
        "email": "",
        "attributes": {},
        "emailverified": False,
    }
    assert contact.trust == "anonymous"
    token = body["token"].removeprefix("JWT ")
    assert widget_client(org, token).get("/widget/me").json()["trust"] == "anonymous"


def test_with_details_it_is_non_verified_and_attributes_stay_untrusted(org):
    # when
    response = sign_in(
        {
            "id_project": str(org.id),
            "firstname": "Nina",
            "lastname": "Visitor",
            "email": "Nina@Visitor.test",
            "attributes": {"plan": "gold"},
        }
    )

    # then
    contact = Contact.objects.get()
    assert response.status_code == 200
    assert response.json()["user"]["emailverified"] is False
    assert (contact.trust, contact.name, contact.email) == (
        "non_verified",
        "Nina Visitor",
        "nina@visitor.test",
    )
    assert contact.non_verified_custom_data == {"plan": "gold"}
    assert contact.custom_data == {}


@pytest.mark.parametrize("id_project", ["5f0c6f5e-8d5b-4a7e-9c61-0d1f2a3b4c5d", "not-a-uuid"])
def test_an_unknown_org_is_404(id_project):
    response = sign_in({"id_project": id_project})

    assert response.status_code == 404
    assert response.json()["success"] is False
    assert not Contact.objects.exists()


def test_two_names_longer_than_a_name_together_are_a_400_and_write_nothing(org):
    # given two names at their own limit of 100, which joined would be 201 characters
    body = {"id_project": str(org.id), "firstname": "f" * 100, "lastname": "l" * 100}

    # when
    response = sign_in(body)

    # then
    assert response.status_code == 400
    assert list(response.json()["error"]["fields"]) == ["lastname"]
    assert response.json()["success"] is False
    assert not Contact.objects.exists()
    # and one character fewer fits
    assert sign_in({**body, "lastname": "l" * 99}).status_code == 200
    assert len(Contact.objects.get().name) == 200


@pytest.mark.redis
def test_it_spends_the_orgs_widget_budget_whatever_the_address(org, monkeypatch):
    # given the per-widget minting budget at 2 a minute, spent through this route from two
    # addresses
    from contacts.api.throttles import AnonymousMintWidgetThrottle

    monkeypatch.setattr(AnonymousMintWidgetThrottle, "rate", "2/min", raising=False)
    body = {"id_project": str(org.id)}
    for address in ("198.51.100.1", "198.51.100.2"):
        response = APIClient(REMOTE_ADDR=address).post(
            "/v3/auth/signinAnonymously", body, format="json"
        )
        assert response.status_code == 200

    # when a third address asks, through either route
    v3 = APIClient(REMOTE_ADDR="198.51.100.3").post(
        "/v3/auth/signinAnonymously", body, format="json"
    )
    widget = widget_client(org).post("/widget/contacts/unverified", {}, format="json")

    # then both are refused: the budget is the org's widget's, shared by the two routes
    assert v3.status_code == 429
    assert v3.json()["success"] is False
    assert int(v3["Retry-After"]) > 0
    assert widget.status_code == 429
    assert Contact.objects.count() == 2
