"""Security headers with DEBUG off: nosniff, referrer policy, framing, HSTS, CSRF, CORS and the
HTML pages' Content-Security-Policy."""

import re
from pathlib import Path

import pytest
from django.http import HttpResponse
from django.test import Client, RequestFactory
from rest_framework.test import APIClient

from contacts.api.throttles import AnonymousMintIpThrottle
from contacts.middleware import WidgetCorsMiddleware
from tests.contacts.conftest import widget_client
from tests.factories import OrganizationFactory

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


@pytest.mark.redis
def test_a_throttled_widget_response_lets_the_page_read_retry_after(org, monkeypatch):
    # given: the widget's minting rate, spent from an allowed origin
    monkeypatch.setattr(AnonymousMintIpThrottle, "rate", "1/min", raising=False)
    client = widget_client(org)
    first = client.post("/widget/contacts/unverified", {}, format="json", HTTP_ORIGIN=ORIGIN)
    assert "Access-Control-Expose-Headers" not in first

    # when
    response = client.post("/widget/contacts/unverified", {}, format="json", HTTP_ORIGIN=ORIGIN)

    # then: a cross-origin fetch may read Retry-After only when the response exposes it
    assert response.status_code == 429
    assert response["Access-Control-Allow-Origin"] == ORIGIN
    assert response["Access-Control-Expose-Headers"] == "Retry-After"
    assert 0 < int(response["Retry-After"]) <= 60


def vary(response) -> list[str]:
    return [value.strip() for value in response.get("Vary", "").split(",") if value.strip()]


@pytest.mark.parametrize(
    ("method", "origin", "status"),
    [
        ("get", ORIGIN, 200),
        ("get", None, 200),
        ("get", "https://evil.example", 403),
        ("options", ORIGIN, 204),
        ("options", "https://evil.example", 204),
        ("options", None, 405),
    ],
)
def test_every_widget_response_varies_on_origin(org, method, origin, status):
    # given: an org that lets only its own site use the widget
    org.allowed_origins = [ORIGIN]
    org.save()
    headers = {"HTTP_ORIGIN": origin} if origin else {}

    # when: allowed, without Origin, refused, or a preflight (an OPTIONS without Origin is none)
    response = getattr(widget_client(org), method)("/widget/config", **headers)

    # then: a shared cache is told the answer depends on Origin
    assert response.status_code == status
    assert vary(response) == ["Origin"]


@pytest.mark.parametrize("origin", [ORIGIN, None])
def test_vary_origin_is_added_to_the_vary_a_widget_response_already_has(org, origin):
    # given: a view whose answer also varies on language and cookies
    def view(request):
        response = HttpResponse("{}", content_type="application/json")
        response["Vary"] = "Accept-Language, Cookie"
        return response

    headers = {"HTTP_ORIGIN": origin} if origin else {}
    request = RequestFactory().get(
        "/widget/config", HTTP_X_WIDGET_TOKEN=org.widget_token, **headers
    )

    # when
    response = WidgetCorsMiddleware(view)(request)

    # then
    assert vary(response) == ["Accept-Language", "Cookie", "Origin"]


DEFAULT_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self'; connect-src 'self'; object-src 'none'; "
    "base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)


@pytest.mark.parametrize("path", ["/admin/login/", "/console/login", "/api/docs/"])
def test_html_pages_carry_the_content_security_policy(path):
    # when
    response = Client().get(path)

    # then
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    assert response["Content-Security-Policy"] == DEFAULT_CSP


def test_the_playground_carries_the_content_security_policy(client):
    # given
    OrganizationFactory(slug="demo", name="Demo Shop")

    # when
    response = client.get("/playground/")

    # then
    assert response.status_code == 200
    assert response["Content-Security-Policy"] == DEFAULT_CSP


@pytest.mark.parametrize(
    ("method", "path"),
    [("get", "/healthz"), ("get", "/widget/config"), ("post", "/api/v1/auth/token")],
)
def test_json_responses_carry_no_content_security_policy(method, path):
    # when
    response = getattr(Client(), method)(path)

    # then
    assert response["Content-Type"] == "application/json"
    assert "Content-Security-Policy" not in response


def test_the_content_security_policy_comes_from_the_setting(settings):
    # given
    settings.CONTENT_SECURITY_POLICY = "default-src 'none'"

    # when
    response = Client().get("/admin/login/")

    # then
    assert response["Content-Security-Policy"] == "default-src 'none'"


def test_the_swagger_ui_loads_its_start_script_from_this_origin():
    # when
    page = Client().get("/api/docs/")
    script = Client().get("/api/docs/?script=")

    # then: the page has no inline script, which the policy would block
    assert b'<script src="/api/docs/?script="></script>' in page.content
    assert b"<script>" not in page.content
    assert script.status_code == 200
    assert script["Content-Type"].startswith("application/javascript")
    assert b"SwaggerUIBundle" in script.content


def test_no_template_carries_an_inline_script():
    # given: the pages' policy allows scripts from files of this origin only
    templates = Path(__file__).resolve().parent.parent / "templates"

    # when
    inline = [
        str(path)
        for path in templates.rglob("*.html")
        for tag in re.findall(r"<script\b[^>]*>", path.read_text())
        if "src=" not in tag
    ]

    # then
    assert inline == []


def test_an_unknown_widget_token_is_a_401_the_page_can_read(org):
    # when
    response = APIClient(HTTP_X_WIDGET_TOKEN="wgt_unknown").get(
        "/widget/config", HTTP_ORIGIN=ORIGIN
    )

    # then: the widget can tell a wrong token from a network failure, and stop
    assert response.status_code == 401
    assert response["Access-Control-Allow-Origin"] == ORIGIN
    assert response.json()["error"]["code"] == "not_authenticated"
