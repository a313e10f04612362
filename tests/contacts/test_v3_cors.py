"""CORS on Tiledesk's visitor sign-ins, which its browser clients call from customers' pages."""

import uuid

import pytest
from rest_framework.test import APIClient

from contacts.api.throttles import AnonymousMintIpThrottle
from contacts.models import Contact

pytestmark = pytest.mark.django_db

SHOP = "https://shop.example.com"
ELSEWHERE = "https://elsewhere.example.com"


def sign_in_anonymously(org_id, origin: str):
    return APIClient().post(
        "/v3/auth/signinAnonymously", {"id_project": str(org_id)}, format="json", HTTP_ORIGIN=origin
    )


@pytest.mark.parametrize("path", ["/v3/auth/signinAnonymously", "/v3/auth/signinWithCustomToken"])
def test_a_preflight_is_answered_for_any_origin_and_spends_no_budget(org, monkeypatch, path):
    # given: one mint a minute per client
    monkeypatch.setattr(AnonymousMintIpThrottle, "rate", "1/min", raising=False)

    # when
    preflights = [
        APIClient().options(
            path,
            HTTP_ORIGIN=SHOP,
            HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
            HTTP_ACCESS_CONTROL_REQUEST_HEADERS="authorization, content-type",
        )
        for _ in range(3)
    ]

    # then
    for response in preflights:
        assert response.status_code == 204
        assert response["Access-Control-Allow-Origin"] == SHOP
        assert response["Access-Control-Allow-Methods"] == "POST, OPTIONS"
        assert response["Access-Control-Allow-Headers"] == (
            "Authorization, Content-Type, X-Widget-Token"
        )
        assert response["Vary"] == "Origin"
    assert sign_in_anonymously(org.pk, SHOP).status_code == 200


def test_the_page_reads_a_sign_in_only_from_an_origin_the_org_allows(org):
    # given
    org.allowed_origins = [SHOP]
    org.save(update_fields=["allowed_origins"])

    # when
    allowed = sign_in_anonymously(org.pk, SHOP)
    refused = sign_in_anonymously(org.pk, ELSEWHERE)

    # then: the browser may read the first only
    assert allowed.status_code == 200
    assert allowed["Access-Control-Allow-Origin"] == SHOP
    assert "Access-Control-Allow-Origin" not in refused
    assert refused["Vary"] == "Origin"


def test_an_org_without_allowed_origins_lets_any_page_read(org):
    response = sign_in_anonymously(org.pk, ELSEWHERE)

    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == ELSEWHERE


def test_an_unknown_project_is_an_error_the_page_can_read(org):
    response = sign_in_anonymously(uuid.uuid4(), SHOP)

    assert response.status_code == 404
    assert response["Access-Control-Allow-Origin"] == SHOP
    assert Contact.objects.count() == 0


def test_a_resumed_session_is_read_only_from_an_allowed_origin(org):
    # given
    org.allowed_origins = [SHOP]
    org.save(update_fields=["allowed_origins"])
    token = sign_in_anonymously(org.pk, SHOP).json()["token"]

    def resume(origin: str):
        return APIClient().post(
            "/v3/auth/signinWithCustomToken", HTTP_AUTHORIZATION=token, HTTP_ORIGIN=origin
        )

    # when
    allowed, refused = resume(SHOP), resume(ELSEWHERE)

    # then
    assert allowed.status_code == refused.status_code == 200
    assert allowed["Access-Control-Allow-Origin"] == SHOP
    assert "Access-Control-Allow-Origin" not in refused


def test_agent_sign_in_answers_no_cors():
    # when
    preflight = APIClient().options(
        "/v3/auth/signin", HTTP_ORIGIN=SHOP, HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST"
    )
    post = APIClient().post("/v3/auth/signin", {}, format="json", HTTP_ORIGIN=SHOP)

    # then
    assert preflight.status_code == 405
    assert "Access-Control-Allow-Origin" not in preflight
    assert "Access-Control-Allow-Origin" not in post
