"""Security headers with DEBUG off: nosniff, referrer policy, framing, HSTS, CSRF and CORS."""

import pytest
from django.test import Client

from tests.contacts.conftest import widget_client

pytestmark = pytest.mark.django_db

ORIGIN = "https://shop.example.com"
CSRF_FAILED = {
    "error": {"code": "csrf_failed", "message": "CSRF verification failed. Reload the page."}
}


@pytest.fixture(autouse=True)
def _production_mode(settings):
    settings.DEBUG = False


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/healthz"),
        ("get", "/widget/config"),
        ("post", "/api/v1/auth/token"),
        ("get", "/admin/login/"),
        ("get", "/no/such/route"),
    ],
)
def test_every_response_carries_nosniff_referrer_policy_and_deny_framing(method, path):
    # when
    response = getattr(Client(), method)(path)

    # then
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["X-Frame-Options"] == "DENY"


def test_hsts_is_sent_over_https(settings):
    # given
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_HSTS_SECONDS = 31536000
    settings.SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    settings.SECURE_HSTS_PRELOAD = True

    # when
    response = Client().get("/healthz", secure=True)

    # then
    assert response.status_code == 200
    assert response["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains; preload"


def test_plain_http_is_redirected_to_https_without_hsts(settings):
    # given
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_HSTS_SECONDS = 31536000

    # when
    response = Client().get("/api/v1/orgs")

    # then
    assert response.status_code == 301
    assert response["Location"] == "https://testserver/api/v1/orgs"
    assert "Strict-Transport-Security" not in response


def test_admin_login_refuses_a_post_without_a_csrf_token(operator_user):
    # given
    client = Client(enforce_csrf_checks=True)

    # when
    response = client.post(
        "/admin/login/", {"username": operator_user.email, "password": "anything"}
    )

    # then
    assert response.status_code == 403
    assert response.json() == CSRF_FAILED
    assert "_auth_user_id" not in client.session


def test_admin_login_accepts_a_post_with_its_csrf_token(operator_user):
    # given
    client = Client(enforce_csrf_checks=True)
    client.get("/admin/login/")
    token = client.cookies["csrftoken"].value

    # when
    response = client.post(
        "/admin/login/",
        {"username": operator_user.email, "password": "wrong", "csrfmiddlewaretoken": token},
    )

    # then: past CSRF, the form itself answers
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("method", "path"),
    [("post", "/api/v1/auth/token"), ("get", "/healthz"), ("post", "/v3/auth/signin")],
)
def test_non_widget_routes_never_answer_cors(method, path):
    # when
    response = getattr(Client(), method)(path, HTTP_ORIGIN=ORIGIN)

    # then
    assert "Access-Control-Allow-Origin" not in response


def test_a_preflight_on_an_api_route_gets_no_cors_headers():
    # when
    response = Client().options(
        "/api/v1/auth/token", HTTP_ORIGIN=ORIGIN, HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST"
    )

    # then
    assert "Access-Control-Allow-Origin" not in response
    assert "Access-Control-Allow-Headers" not in response


def test_authenticate_user_is_server_to_server_and_gets_no_cors_headers():
    # when
    response = Client().post("/widget/authenticate-user", HTTP_ORIGIN=ORIGIN)

    # then
    assert "Access-Control-Allow-Origin" not in response


def test_a_preflight_on_widget_config_is_answered_204_with_the_allowed_headers():
    # when
    response = Client().options(
        "/widget/config",
        HTTP_ORIGIN=ORIGIN,
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="GET",
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS="x-widget-token",
    )

    # then
    assert response.status_code == 204
    assert response.content == b""
    assert response["Access-Control-Allow-Origin"] == ORIGIN
    assert response["Access-Control-Allow-Headers"] == "Authorization, Content-Type, X-Widget-Token"
    assert response["Access-Control-Allow-Methods"] == "GET, POST, OPTIONS"
    assert response["Vary"] == "Origin"


def test_a_widget_route_answers_cors_for_an_allowed_origin(org):
    # when
    response = widget_client(org).get("/widget/config", HTTP_ORIGIN=ORIGIN)

    # then
    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == ORIGIN
    assert response["X-Content-Type-Options"] == "nosniff"
