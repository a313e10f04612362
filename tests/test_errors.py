"""The SPEC §5 error envelope, for every status the framework and the services produce."""

import json

import pytest
from django.db import connection
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.recorder import MigrationRecorder
from django.test import RequestFactory
from django.test.utils import CaptureQueriesContext
from django_redis.exceptions import ConnectionInterrupted
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import OutOfMemoryError, ReadOnlyError
from rest_framework.exceptions import PermissionDenied

from config.exceptions import exception_handler
from config.parsers import json_loads_strict
from config.views import HealthzView, ReadyzView

pytestmark = pytest.mark.django_db


def post_raw(client, path, body: bytes | str, content_type="application/json"):
    return client.generic("POST", path, body, content_type=content_type)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("{", "truncated"),
        ('{"email": NaN}', "NaN"),
        ('{"email": Infinity}', "Infinity"),
        ('{"email": -Infinity}', "-Infinity"),
        ('{"email": 1e400}', "a number Python reads as infinity"),
        ('{"email": {"k": [-1E999]}}', "such a number nested"),
        ('{"email": "a", "email": "b"}', "duplicate key"),
        ('{"email": "a\\u0000b"}', "NUL"),
        ('{"email": "\\ud800"}', "lone surrogate"),
        ('{"a\\u0000": 1}', "NUL in a key"),
        ("[" * 100_000 + "]" * 100_000, "deep nesting"),
    ],
)
def test_malformed_json_is_400_with_the_envelope(client, body, reason):
    response = post_raw(client, "/api/v1/auth/token", body)

    assert response.status_code == 400, reason
    assert response.json()["error"]["code"] == "parse_error"
    assert response.json()["error"]["message"].startswith("Malformed JSON")


def test_a_huge_duplicate_key_is_not_echoed_whole(client):
    key = "k" * 50_000
    body = f'{{"{key}": 1, "{key}": 2}}'

    response = post_raw(client, "/api/v1/auth/token", body)

    assert response.status_code == 400
    assert len(response.content) < 500
    assert "duplicate key" in response.json()["error"]["message"]


def test_invalid_utf8_is_400(client):
    response = post_raw(client, "/api/v1/auth/token", b'{"email": "\xff"}')

    assert response.status_code == 400


def test_body_over_one_mebibyte_is_413(client):
    body = json.dumps({"email": "x" * (1024 * 1024)})

    response = post_raw(client, "/api/v1/auth/token", body)

    assert response.status_code == 413
    assert response.json() == {
        "error": {"code": "payload_too_large", "message": "The request body is larger than 1 MiB."}
    }


def test_non_json_content_type_is_415(client):
    response = post_raw(
        client, "/api/v1/auth/token", "email=a", "application/x-www-form-urlencoded"
    )

    assert response.status_code == 415
    assert response.json()["error"]["code"] == "unsupported_media_type"


def test_a_number_with_too_many_digits_is_400_in_the_clients_words(client):
    response = post_raw(client, "/api/v1/auth/token", '{"email": ' + "7" * 5_000 + "}")

    assert response.status_code == 400
    assert response.json()["error"]["message"] == "Malformed JSON: a number has too many digits"


@pytest.mark.parametrize("coding", ["gzip", "br", "deflate, gzip"])
def test_a_compressed_body_is_415_not_a_charset_error(client, coding):
    # given: a body the client compressed (here its bytes do not matter: nothing reads them)
    body = b"\x1f\x8b\x08\x00garbled"

    # when
    response = client.generic(
        "POST",
        "/api/v1/auth/token",
        body,
        content_type="application/json",
        headers={"Content-Encoding": coding},
    )

    # then
    assert response.status_code == 415
    assert response.json()["error"]["code"] == "unsupported_media_type"
    assert "Content-Encoding" in response.json()["error"]["message"]


def test_an_identity_content_encoding_is_plain_json(client):
    response = client.generic(
        "POST",
        "/api/v1/auth/token",
        '{"email": "nobody@example.com", "password": "x"}',
        content_type="application/json",
        headers={"Content-Encoding": "identity"},
    )

    assert response.status_code == 401


@pytest.mark.parametrize(
    ("content_type", "status"),
    [
        ("application/json; charset=latin-1", 415),
        ("application/json; charset=windows-1252", 415),
        ("application/json; charset=UTF-8", 401),
        ('application/json;charset="utf-8"', 401),
        ("application/json; charset=utf-16", 401),
    ],
)
def test_json_labelled_with_another_charset_than_jsons_own_is_415(client, content_type, status):
    # given: an ASCII body, valid in every one of these charsets
    body = b'{"email": "nobody@example.com", "password": "x"}'

    # when
    response = post_raw(client, "/api/v1/auth/token", body, content_type)

    # then: JSON's own encodings are read (json.loads tells them apart); others are refused
    assert response.status_code == status
    if status == 415:
        assert response.json()["error"]["message"] == "JSON must be sent as UTF-8, -16 or -32."


def test_the_middlewares_errors_are_written_as_compactly_as_drfs(client):
    body = json.dumps({"email": "x" * (1024 * 1024)})

    too_large = post_raw(client, "/api/v1/auth/token", body)
    not_found = client.get("/no/such/route")

    assert b": " not in too_large.content and b", " not in too_large.content
    assert not_found.content == b'{"error":{"code":"not_found","message":"Not found."}}'


def test_wrong_method_is_405(client):
    response = client.get("/api/v1/auth/token")

    assert response.status_code == 405
    assert response.json() == {
        "error": {"code": "method_not_allowed", "message": 'Method "GET" not allowed.'}
    }


def test_unknown_route_is_404_json(client):
    response = client.get("/no/such/route")

    assert response.status_code == 404
    assert response.json() == {"error": {"code": "not_found", "message": "Not found."}}


def test_unknown_v3_route_adds_success_false(client):
    response = client.get("/v3/no/such/route")

    assert response.json() == {
        "success": False,
        "error": {"code": "not_found", "message": "Not found."},
    }


def test_missing_credentials_is_401_with_www_authenticate(client):
    response = client.get("/api/v1/orgs")

    assert response.status_code == 401
    assert response["WWW-Authenticate"]
    assert response.json()["error"]["code"] == "not_authenticated"


def test_permission_denied_renders_403_envelope():
    response = exception_handler(PermissionDenied(), {"request": None})

    assert response.status_code == 403
    assert response.data == {
        "error": {
            "code": "permission_denied",
            "message": "You do not have permission to perform this action.",
        }
    }


def test_unexpected_error_is_a_json_500_without_a_trace(client, monkeypatch):
    # given: the database breaks in the middle of a request
    def explode(*args, **kwargs):
        raise RuntimeError("secret internals")

    monkeypatch.setattr("identity.services.agent_sign_in", explode)
    client.raise_request_exception = False

    # when
    response = client.post(
        "/api/v1/auth/token",
        {"email": "a@b.test", "password": "x"},
        content_type="application/json",
    )

    # then
    assert response.status_code == 500
    assert response.json() == {
        "error": {"code": "server_error", "message": "An unexpected error occurred."}
    }
    assert b"secret internals" not in response.content


def test_strict_json_accepts_ordinary_documents():
    assert json_loads_strict('{"a": [1, 2.5, "é", null, true]}') == {"a": [1, 2.5, "é", None, True]}


def test_healthz_and_readyz_answer_ok(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"status": "ok"}


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
def test_the_probes_answer_head_as_load_balancers_send_it(client, path):
    response = client.head(path)

    assert response.status_code == 200
    assert response.content == b""


@pytest.fixture
def readyz_fresh(monkeypatch):
    """A process that has not yet found its schema current."""
    monkeypatch.setattr(ReadyzView, "schema_current", False)


def test_readyz_is_503_while_a_migration_is_not_applied_and_says_so(client, readyz_fresh, caplog):
    # given: the database answers, but this code's newest migration of an app is not applied
    [newest] = [n for n in MigrationLoader(connection).graph.leaf_nodes() if n[0] == "contacts"]
    MigrationRecorder(connection).migration_qs.filter(app=newest[0], name=newest[1]).delete()

    # when
    response = client.get("/readyz")

    # then
    assert response.status_code == 503
    assert response.json() == {"status": "database not migrated"}
    assert "1 migrations not applied" in caplog.text


def test_readyz_looks_at_the_migrations_until_it_finds_them_applied_then_only_selects(
    client, readyz_fresh
):
    with CaptureQueriesContext(connection) as first:
        assert client.get("/readyz").status_code == 200
    with CaptureQueriesContext(connection) as second:
        assert client.get("/readyz").status_code == 200

    assert any("django_migrations" in q["sql"] for q in first.captured_queries)
    assert [q["sql"] for q in second.captured_queries] == ["SELECT 1"]


def test_readyz_logs_why_the_database_is_unavailable(client, monkeypatch, caplog):
    from django.db import DatabaseError

    def broken_cursor(*args, **kwargs):
        raise DatabaseError("down")

    monkeypatch.setattr(connection, "cursor", broken_cursor)

    assert client.get("/readyz").status_code == 503
    assert "not ready: database unavailable: DatabaseError: down" in caplog.text


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
@pytest.mark.parametrize("accept", ["text/plain", "text/html", "application/xml"])
def test_the_probes_answer_json_whatever_the_probe_accepts(client, path, accept):
    response = client.get(path, HTTP_ACCEPT=accept)

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_other_routes_refuse_an_accept_they_cannot_serve_with_406(client):
    response = client.get("/widget/config", HTTP_ACCEPT="application/xml")

    assert response.status_code == 406
    assert response.json()["error"]["code"] == "not_acceptable"


@pytest.mark.parametrize("view", [HealthzView, ReadyzView])
def test_the_probes_send_no_body_to_head_themselves(view):
    # Django's test client drops a HEAD's body itself; gunicorn warns for every one it is sent
    response = view.as_view()(RequestFactory().head("/probe"))
    response.render()

    assert response.status_code == 200
    assert response.content == b""


def test_readyz_answers_head_with_its_503(client, monkeypatch):
    from django.db import DatabaseError

    def broken_cursor(*args, **kwargs):
        raise DatabaseError("down")

    monkeypatch.setattr(connection, "cursor", broken_cursor)

    assert client.head("/readyz").status_code == 503


def test_readyz_is_503_when_the_database_fails(client, monkeypatch):
    from django.db import DatabaseError

    def broken_cursor(*args, **kwargs):
        raise DatabaseError("down")

    monkeypatch.setattr(connection, "cursor", broken_cursor)

    response = client.get("/readyz")

    assert response.status_code == 503
    assert response.json() == {"status": "database unavailable"}


@pytest.mark.parametrize(
    "error", [RedisConnectionError, ConnectionInterrupted, OutOfMemoryError, ReadOnlyError]
)
def test_readyz_is_503_when_the_shared_cache_fails(client, monkeypatch, error):
    # given: a cache that cannot be reached, or (full, read-only) still reads but refuses writes
    def refuse(*args, **kwargs):
        raise error("Connection refused")

    monkeypatch.setattr("config.views.cache.set", refuse)

    response = client.get("/readyz")

    assert response.status_code == 503
    assert response.json() == {"status": "cache unavailable"}


def test_readyz_is_503_when_redis_refuses_connections(client, settings):
    # given: the cache is a real django-redis client pointed at a port nobody listens on
    settings.CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",
            "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 1, "SOCKET_TIMEOUT": 1},
        }
    }

    # when
    response = client.get("/readyz")

    # then
    assert response.status_code == 503
    assert response.json() == {"status": "cache unavailable"}


def test_openapi_schema_is_served(client):
    response = client.get("/api/schema/", HTTP_ACCEPT="application/json")

    assert response.status_code == 200
    assert b"/api/v1/auth/token" in response.content


@pytest.mark.parametrize(
    "version",
    ["%00", "%01", "%7F", "%0A", "%0D%0AX-Injected:%201", "a%22%3B%20x%3Dy", "2.0"],
    ids=["nul", "soh", "del", "newline", "header-injection", "quote", "plausible"],
)
def test_the_schema_reads_no_version_from_the_query(client, version):
    # when: anyone asks for the schema with a ?version= of their choosing
    response = client.get(f"/api/schema/?version={version}")

    # then: the one schema there is, under its own name; nothing of the query in a header
    assert response.status_code == 200
    assert response["Content-Disposition"] == 'inline; filename="chatshield API.yaml"'
    assert "X-Injected" not in response
    assert b"\n  version: 0.1.0\n" in response.content


@pytest.mark.parametrize("path", ["/api/schema/", "/api/docs/"])
@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
def test_the_schema_and_its_docs_refuse_other_methods_in_the_json_envelope(client, path, method):
    # when
    response = client.generic(method, path, b'{"a": 1}', content_type="application/json")

    # then
    assert response.status_code == 405
    assert response["Content-Type"] == "application/json"
    assert response.json() == {
        "error": {"code": "method_not_allowed", "message": f'Method "{method}" not allowed.'}
    }


def test_the_schema_in_a_format_it_cannot_serve_is_a_406_in_the_json_envelope(client):
    # when
    response = client.get("/api/schema/", HTTP_ACCEPT="text/csv")

    # then
    assert response.status_code == 406
    assert response["Content-Type"] == "application/json"
    assert response.json()["error"]["code"] == "not_acceptable"


def test_swagger_ui_uses_no_cdn(client):
    response = client.get("/api/docs/")

    assert response.status_code == 200
    assert b"cdn." not in response.content
    assert b"/static/drf_spectacular_sidecar/" in response.content
