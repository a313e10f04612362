"""Request ids and JSON logs: every response carries an id, and no log record carries a secret."""

import json
import logging
import runpy
import time
import uuid
from datetime import timedelta
from pathlib import Path

import jwt
import pytest
from django.conf import settings
from django.test import override_settings
from django.urls import path
from gunicorn.config import Config
from rest_framework.test import APIClient

from config.gunicorn_logging import RedactingLogger, redact
from config.logging import JsonFormatter, RequestIdFilter
from config.request_id import request_id_var
from identity.tokens import contact_token_mint
from tests.conftest import PASSWORD, agent_access_token
from tests.conversations.conftest import visitor_for
from tests.factories import ContactFactory, DeviceFactory

pytestmark = pytest.mark.django_db

WRONG_PASSWORD = "Tr0ub4dor&3-not-the-password"


def access_records(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "chatshield.request"]


def rendered(record: logging.LogRecord) -> list[str]:
    """Every way a record's content can reach a log sink."""
    texts = [
        str(record.msg),
        record.getMessage(),
        repr(record.args),
        JsonFormatter().format(record),
    ]
    standard = vars(logging.LogRecord("", 0, "", 0, "", (), None))
    for key, value in vars(record).items():
        # Django's HttpRequest extra is dropped by JsonFormatter (tested below), never rendered.
        if key not in standard and key != "request":
            texts.append(f"{key}={value!r}")
    return texts


def custom_token(org, secret: str, kid: str) -> str:
    now = int(time.time())
    claims = {
        "_id": "cust-42",
        "email": "cust@shop.test",
        "aud": f"{settings.PUBLIC_URL}/projects/{org.id}",
        "iat": now,
        "exp": now + 300,
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode(claims, secret, algorithm="HS256", headers={"kid": kid})


def test_no_secret_reaches_any_log_record(caplog, org, operator_user, agent_user):
    # given: everything logged, Django's request warnings included
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="django.request")
    secrets: list[str] = [PASSWORD, WRONG_PASSWORD]
    operator = APIClient()
    access = agent_access_token(operator, operator_user)
    secrets.append(access)
    operator.credentials(HTTP_AUTHORIZATION=f"Bearer {access}")
    orgs = f"/api/v1/orgs/{org.id}"

    # when: an operator creates and lists API keys and creates a signing secret
    created = operator.post(
        f"{orgs}/api-keys",
        {"name": "backend", "scopes": ["widget:authenticate", "contacts:read"]},
        format="json",
    )
    key = created.json()["key"]
    secrets.append(key)
    assert operator.get(f"{orgs}/api-keys").status_code == 200
    signing = operator.post(f"{orgs}/signing-secrets", {"algorithm": "HS256"}, format="json")
    secret, kid = signing.json()["secret"], signing.json()["kid"]
    secrets.append(secret)

    # and: wrong passwords at both sign-in routes, until the account locks
    for route in ("/api/v1/auth/token", "/v3/auth/signin") * 3:
        response = APIClient().post(
            route, {"email": agent_user.email, "password": WRONG_PASSWORD}, format="json"
        )
        assert response.status_code in (401, 429)
    pair = APIClient().post(
        "/api/v1/auth/token", {"email": operator_user.email, "password": PASSWORD}, format="json"
    )
    secrets += [pair.json()["access"], pair.json()["refresh"]]

    # and: bad API keys, and a good one in the query string
    wrong_key = key[:-6] + "XXXXXX"
    secrets.append(wrong_key)
    for header in (f"Bearer {wrong_key}", "Bearer csk_0123456789abcdef_" + "A" * 40):
        response = APIClient().post(
            "/widget/authenticate-user",
            {"email": "ada@shop.test"},
            format="json",
            HTTP_AUTHORIZATION=header,
        )
        assert response.status_code == 401
    assert APIClient().get(f"{orgs}/contacts?api_key={key}&x=1").status_code == 401
    verified = APIClient().post(
        "/widget/authenticate-user",
        {"email": "ada@shop.test"},
        format="json",
        HTTP_AUTHORIZATION=f"Bearer {key}",
    )
    secrets.append(verified.json()["token"])

    # and: forged and expired contact tokens
    device = DeviceFactory(contact=ContactFactory(org=org))
    claims = {
        "issuer": settings.PUBLIC_URL,
        "org_id": str(org.pk),
        "contact_id": str(device.contact_id),
        "device_id": str(device.pk),
        "trust": "anonymous",
    }
    forged, _ = contact_token_mint(key="not-our-key-" * 4, lifetime=timedelta(days=1), **claims)
    expired, _ = contact_token_mint(
        key=settings.CONTACT_TOKEN_KEY, lifetime=timedelta(seconds=-60), **claims
    )
    secrets += [forged, expired]
    for token in (forged, expired):
        response = APIClient(HTTP_X_WIDGET_TOKEN=org.widget_token).get(
            "/widget/me", HTTP_AUTHORIZATION=f"Bearer {token}"
        )
        assert response.status_code == 401
    good_visitor = visitor_for(ContactFactory(org=org))
    secrets.append(good_visitor.token)
    assert good_visitor.client.get("/widget/me").status_code == 200

    # and: customer-signed tokens with a wrong key, and a good one
    wrong_signed = custom_token(org, "a-wrong-shared-secret-of-good-length", kid)
    good_signed = custom_token(org, secret, kid)
    secrets += [wrong_signed, good_signed]
    refused = APIClient().post(
        "/v3/auth/signinWithCustomToken", HTTP_AUTHORIZATION=f"JWT {wrong_signed}"
    )
    assert refused.status_code == 401
    accepted = APIClient().post(
        "/v3/auth/signinWithCustomToken", HTTP_AUTHORIZATION=f"JWT {good_signed}"
    )
    assert accepted.status_code == 200
    secrets.append(accepted.json()["token"].removeprefix("JWT "))

    # then: no record holds any of them, nor a signature or a query string
    assert all(len(s) >= 20 for s in secrets)
    leaks = [
        (record.name, secret[:12])
        for record in caplog.records
        for text in rendered(record)
        for secret in secrets
        if secret in text or secret.split(".")[-1] in text
    ]
    assert leaks == []
    assert not [r for r in caplog.records if any("api_key=" in t for t in rendered(r))]
    # and: the scenario did log (the check above is not vacuous)
    assert len(access_records(caplog)) >= 20
    assert any(r.name == "django.request" for r in caplog.records)


def test_every_request_gets_one_access_record(caplog, org, operator_client):
    # given
    caplog.set_level(logging.INFO)

    # when
    response = operator_client.get(
        f"/api/v1/orgs/{org.id}/api-keys?token=sensitive-value", REMOTE_ADDR="198.51.100.7"
    )

    # then
    [record] = access_records(caplog)
    fields = {
        key: getattr(record, key)
        for key in ("method", "path", "status", "client_ip", "org_id", "request_id")
    }
    assert fields == {
        "method": "GET",
        "path": f"/api/v1/orgs/{org.id}/api-keys",
        "status": 200,
        "client_ip": "198.51.100.7",
        "org_id": str(org.id),
        "request_id": response["X-Request-ID"],
    }
    assert isinstance(record.duration_ms, float)
    assert record.levelno == logging.INFO
    assert "sensitive-value" not in JsonFormatter().format(record)


def test_an_org_asked_for_but_refused_is_not_logged_as_the_callers(caplog, org, agent_client):
    caplog.set_level(logging.INFO)

    agent_client.get(f"/api/v1/orgs/{org.id}/api-keys")

    [record] = access_records(caplog)
    assert (record.status, record.org_id) == (403, None)


@pytest.mark.parametrize(
    "query", ["/contacts/00000000-0000-0000-0000-000000000000", "/contacts?trust=bad"]
)
def test_a_refusal_after_access_was_granted_is_logged_with_the_org(
    caplog, org, agent_client, query
):
    # given: a member of the org, whose request the action then refuses (docs audit: these were
    # logged with a null org, so filtering by org hid the failed requests)
    caplog.set_level(logging.INFO)

    # when
    response = agent_client.get(f"/api/v1/orgs/{org.id}{query}")

    # then
    [record] = access_records(caplog)
    assert response.status_code in (400, 404)
    assert (record.status, record.org_id) == (response.status_code, str(org.id))


def test_a_widget_request_is_logged_with_the_widget_org(caplog, org):
    caplog.set_level(logging.INFO)

    APIClient(HTTP_X_WIDGET_TOKEN=org.widget_token).get("/widget/config")

    [record] = access_records(caplog)
    assert (record.status, record.org_id) == (200, str(org.id))


@pytest.mark.parametrize(
    "incoming", ["abc-123", "lb.7f3a_9", "A" * 64, "0123456789abcdef0123456789abcdef"]
)
def test_a_sane_request_id_is_echoed(api_client, incoming, caplog):
    caplog.set_level(logging.INFO)

    response = api_client.get("/healthz", HTTP_X_REQUEST_ID=incoming)

    assert response["X-Request-ID"] == incoming
    assert access_records(caplog)[0].request_id == incoming


@pytest.mark.parametrize(
    "incoming", ["", "A" * 65, "has space", 'quote"d', "new\nline", "semi;colon", "ünï"]
)
def test_an_unsafe_request_id_is_replaced(api_client, incoming):
    response = api_client.get("/healthz", HTTP_X_REQUEST_ID=incoming)

    assert response["X-Request-ID"] != incoming
    assert len(response["X-Request-ID"]) == 32
    int(response["X-Request-ID"], 16)


def test_each_request_gets_its_own_id(api_client):
    first = api_client.get("/healthz")["X-Request-ID"]
    second = api_client.get("/healthz")["X-Request-ID"]

    assert first != second


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status"),
    [
        ("get", "/api/v1/orgs/00000000-0000-0000-0000-000000000000/api-keys", {}, 401),
        ("get", "/no/such/route", {}, 404),
        ("post", "/api/v1/auth/token", {"data": "{", "content_type": "application/json"}, 400),
        ("post", "/api/v1/auth/token", {"data": "x", "content_type": "text/plain"}, 415),
        ("post", "/widget/contacts/unverified", {"CONTENT_LENGTH": str(2 * 1024 * 1024)}, 413),
    ],
)
def test_error_envelopes_carry_the_request_id(api_client, method, path, kwargs, status):
    response = getattr(api_client, method)(path, HTTP_X_REQUEST_ID="trace-42", **kwargs)

    assert response.status_code == status
    assert response["X-Request-ID"] == "trace-42"
    assert "error" in response.json()


def crash(request):
    raise RuntimeError("boom")


urlpatterns = [path("boom", crash), path("boom/<str:anything>", crash)]


@pytest.mark.urls("tests.test_logging")
def test_a_server_error_carries_the_request_id_and_logs_at_error(caplog):
    # given
    caplog.set_level(logging.INFO)
    client = APIClient(raise_request_exception=False)

    # when
    response = client.get("/boom", HTTP_X_REQUEST_ID="trace-500")

    # then
    assert response.status_code == 500
    assert response["X-Request-ID"] == "trace-500"
    assert [r.levelno for r in access_records(caplog)] == [logging.ERROR]


PATH_KEY = "csk_4357306433524851_6AqYxz4IYpQWqa27UHmHZUjaLseu0VwsQKRZgVWC"
PATH_JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl"


@pytest.mark.parametrize("credential", [PATH_KEY, PATH_JWT, f"token={PATH_KEY}"])
def test_a_credential_in_the_path_never_reaches_a_record(caplog, org, credential):
    # given: careless clients put keys and tokens in the path, not only the query
    caplog.set_level(logging.INFO)
    client = APIClient(raise_request_exception=False, HTTP_X_WIDGET_TOKEN=org.widget_token)

    # when: a 404 (the access record) and a 500 (Django's own record too)
    client.post("/widget/authenticate-user/" + credential)
    client.get("/widget/me/" + credential)
    with override_settings(ROOT_URLCONF="tests.test_logging"):
        client.get("/boom/" + credential)

    # then
    formatted = [JsonFormatter().format(r) for r in caplog.records]
    assert len(access_records(caplog)) == 3
    assert any("[redacted]" in line for line in formatted)
    assert not [line for line in formatted if PATH_KEY in line or PATH_JWT in line]


def test_a_path_without_a_credential_is_logged_as_it_is(caplog):
    caplog.set_level(logging.INFO)

    APIClient().get("/widget/sessions/0b6f4c1e-1234-4a5b-8c9d-0123456789ab/messages")

    [record] = access_records(caplog)
    assert record.path == "/widget/sessions/0b6f4c1e-1234-4a5b-8c9d-0123456789ab/messages"


def test_djangos_own_response_records_carry_the_request_id(caplog, api_client):
    # given: Django logs 4xx responses after the middleware chain returned
    caplog.set_level(logging.WARNING, logger="django.request")

    # when
    api_client.get("/api/v1/orgs/not-a-uuid/api-keys", HTTP_X_REQUEST_ID="trace-404")

    # then
    [record] = [r for r in caplog.records if r.name == "django.request"]
    RequestIdFilter().filter(record)
    payload = json.loads(JsonFormatter().format(record))
    assert (record.request_id, payload["request_id"]) == ("trace-404", "trace-404")
    assert (payload["message"], payload["status_code"]) == (
        "Not Found: /api/v1/orgs/not-a-uuid/api-keys",
        404,
    )
    assert "request" not in payload


def test_the_json_formatter_writes_one_object_per_record():
    # given
    record = logging.LogRecord(
        "chatshield.test", logging.WARNING, __file__, 1, "hello %s", ("world",), None
    )
    record.org_id = "org-1"
    record.request = object()  # Django's HttpRequest extra: its repr holds the query string
    reset = request_id_var.set("rid-1")
    try:
        assert RequestIdFilter().filter(record) is True
    finally:
        request_id_var.reset(reset)

    # when
    line = JsonFormatter().format(record)

    # then
    assert "\n" not in line
    payload = json.loads(line)
    assert payload.pop("timestamp").endswith("Z")
    assert payload == {
        "level": "WARNING",
        "logger": "chatshield.test",
        "message": "hello world",
        "request_id": "rid-1",
        "org_id": "org-1",
    }


def test_records_outside_a_request_have_no_request_id():
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "m", (), None)

    RequestIdFilter().filter(record)

    assert record.request_id is None
    assert json.loads(JsonFormatter().format(record))["request_id"] is None


# --- gunicorn's own error log ------------------------------------------------------------------

KEY = "csk_4357306433524851_6AqYxz4IYpQWqa27UHmHZUjaLseu0VwsQKRZgVWC"
A_JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl"


@pytest.mark.parametrize(
    ("line", "logged"),
    [
        (
            f"Invalid HTTP Header: 'Authorization Bearer {KEY}'",
            "Invalid HTTP Header: 'Authorization Bearer [redacted]'",
        ),
        (f"Invalid HTTP Header: 'X-Key {KEY}'", "Invalid HTTP Header: 'X-Key [redacted]'"),
        (
            f"Invalid HTTP request line: 'GET /widget/me?token={A_JWT}&page=2 HTTP/1.1'",
            "Invalid HTTP request line: 'GET /widget/me?token=[redacted]&page=2 HTTP/1.1'",
        ),
        (f"Error handling request POST /x?{A_JWT}", "Error handling request POST /x?[redacted]"),
        ("Worker exiting (pid: 12)", "Worker exiting (pid: 12)"),
    ],
)
def test_gunicorns_error_log_never_quotes_a_credential(line, logged):
    assert redact(line) == logged


def test_gunicorn_loads_the_redacting_logger_from_its_config_file(capfd):
    # given: gunicorn's settings as it reads them from ./gunicorn.conf.py
    config = Config()
    namespace = runpy.run_path(str(Path(settings.BASE_DIR) / "gunicorn.conf.py"))
    config.set("logger_class", namespace["logger_class"])

    # when
    logger = config.logger_class(config)
    logger.warning("Invalid request from ip=%s: %s", "127.0.0.1", f"Bearer {KEY}")

    # then
    assert isinstance(logger, RedactingLogger)
    written = capfd.readouterr().err
    assert "Invalid request from ip=127.0.0.1: Bearer [redacted]" in written
    assert KEY not in written


@pytest.mark.parametrize(
    ("msg", "args", "written"),
    [
        ("%(worker)s booted", ({"worker": 7},), "7 booted"),
        ("%s and %s", ("one",), "%s and %s ('one',)"),
        ("100% done", (), "100% done"),
        (b"raw bytes", (), "b'raw bytes'"),
    ],
)
def test_the_redacting_logger_writes_what_logging_would_and_never_raises(capfd, msg, args, written):
    # given
    config = Config()
    config.set("logger_class", "config.gunicorn_logging.RedactingLogger")
    logger = config.logger_class(config)

    # when
    logger.info(msg, *args)

    # then
    assert written in capfd.readouterr().err
