"""Two gunicorn servers on one PostgreSQL and one Redis: what one refuses, the other refuses too.

Each test acts on server A and checks server B right after, with no waiting: logouts, key
revocations, sign-in lockouts and spent `jti`s live in the shared database or the shared cache,
never in one process. The one deliberate exception is the public widget token, whose org each
server memoises for a few seconds: its rotation reaches B within that TTL. Runs only where both
are shared (PostgreSQL and REDIS_URL); CI runs it with `-m two_servers`.
"""

import http.client
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import jwt
import pytest
from django.conf import settings
from django.contrib.auth.hashers import PBKDF2PasswordHasher
from django.db import connection
from rest_framework_simplejwt.token_blacklist.models import OutstandingToken

from bench.run import free_port, server_stop
from contacts.models import Contact, Device
from identity import services
from identity.models import ApiKey, Organization, User
from tests.factories import UserFactory

BASE_DIR = Path(settings.BASE_DIR)
GUNICORN = Path(sys.executable).parent / "gunicorn"
# The one public address both servers stand behind: token issuer and custom-token audience.
PUBLIC_URL = "http://chatshield-lb.test"
PASSWORD = "correct horse battery staple"
LOCKOUT_MAX_FAILURES = 5
START_TIMEOUT_SECONDS = 60
REQUEST_TIMEOUT_SECONDS = 15
# Each server memoises a widget token's org this long (docs/decisions.md, issue #9).
WIDGET_ORG_LOCAL_CACHE_SECONDS = 2

UNAUTHENTICATED = {
    "error": {
        "code": "not_authenticated",
        "message": "Authentication credentials were not provided or are not valid.",
    }
}


def _why_not_runnable() -> str | None:
    if connection.vendor != "postgresql":
        return "needs PostgreSQL, which both servers share (set DATABASE_URL=postgres://…)"
    if not settings.REDIS_URL:
        return "needs REDIS_URL: a Redis both servers share"
    if not GUNICORN.is_file():
        return f"needs gunicorn next to the interpreter ({GUNICORN})"
    return None


SKIP_REASON = _why_not_runnable()

pytestmark = [
    pytest.mark.two_servers,
    pytest.mark.redis,
    pytest.mark.django_db(transaction=True),  # the servers only see committed rows
    pytest.mark.skipif(SKIP_REASON is not None, reason=SKIP_REASON or ""),
]


# --- the servers ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    status: int
    body: dict | None
    headers: dict[str, str]


@dataclass(frozen=True)
class Server:
    """One gunicorn (one worker) on 127.0.0.1, in a process group of its own."""

    name: str
    port: int
    process: subprocess.Popen
    log: Path

    def request(
        self, method: str, path: str, body: dict | None = None, headers: dict | None = None
    ) -> Reply:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=REQUEST_TIMEOUT_SECONDS)
        try:
            sent_headers = {"Accept": "application/json", **(headers or {})}
            payload = None
            if body is not None:
                payload = json.dumps(body).encode()
                sent_headers["Content-Type"] = "application/json"
            conn.request(method, path, body=payload, headers=sent_headers)
            response = conn.getresponse()
            raw = response.read()
            return Reply(
                status=response.status,
                body=json.loads(raw) if raw else None,
                headers={k.lower(): v for k, v in response.getheaders()},
            )
        finally:
            conn.close()

    def log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self) -> str:
        return self.log_text()[-3000:]


def _database_url() -> str:
    db = connection.settings_dict  # pytest-django has renamed it to the test database by now
    user = quote(db["USER"] or "", safe="")
    password = quote(db["PASSWORD"] or "", safe="")
    auth = f"{user}:{password}@" if password else (f"{user}@" if user else "")
    host = db["HOST"] or "127.0.0.1"
    port = db["PORT"] or "5432"
    return f"postgres://{auth}{host}:{port}/{quote(db['NAME'], safe='')}"


def _server_env() -> dict[str, str]:
    """Production settings on plain HTTP; every key the same on both servers and in this process."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "C.UTF-8",
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DJANGO_DEBUG": "false",
        "DJANGO_SECRET_KEY": settings.SECRET_KEY,
        # Explicit, so an AGENT_TOKEN_KEY in some .env cannot make the servers disagree.
        "AGENT_TOKEN_KEY": settings.AGENT_TOKEN_KEY,
        "CONTACT_TOKEN_KEY": settings.CONTACT_TOKEN_KEY,
        # Signing secrets are written encrypted by this process and decrypted by the servers.
        "SIGNING_SECRET_ENCRYPTION_KEY": settings.SIGNING_SECRET_ENCRYPTION_KEY,
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
        "PUBLIC_URL": PUBLIC_URL,
        "DATABASE_URL": _database_url(),
        "REDIS_URL": settings.REDIS_URL,
        "CACHE_KEY_PREFIX": settings.CACHES["default"].get("KEY_PREFIX", "chatshield"),
        "SECURE_SSL_REDIRECT": "false",
        "SESSION_COOKIE_SECURE": "false",
        "CSRF_COOKIE_SECURE": "false",
        "SECURE_HSTS_SECONDS": "0",
        "TRUSTED_PROXY_COUNT": "0",
        "LOCKOUT_MAX_FAILURES": str(LOCKOUT_MAX_FAILURES),
        "LOCKOUT_IP_MAX_FAILURES": "20",
        "LOCKOUT_WINDOW_SECONDS": "900",
        "LOG_LEVEL": "WARNING",
        "WIDGET_ORG_LOCAL_CACHE_SECONDS": str(WIDGET_ORG_LOCAL_CACHE_SECONDS),
    }


def _start(name: str, log_dir: Path, env: dict[str, str]) -> Server:
    port = free_port()
    log = log_dir / f"gunicorn-{name}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(  # noqa: S603 - a fixed argv: our own venv's gunicorn
            [
                str(GUNICORN),
                "config.wsgi",
                f"--bind=127.0.0.1:{port}",
                "--workers=1",
                "--worker-class=gthread",
                "--threads=2",
                "--timeout=30",
                "--graceful-timeout=5",
            ],
            cwd=BASE_DIR,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so teardown reaches the worker too
        )
    return Server(name=name, port=port, process=process, log=log)


def _wait_ready(server: Server, deadline: float) -> None:
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            pytest.fail(f"gunicorn {server.name} exited at start-up:\n{server.log_tail()}")
        try:
            if server.request("GET", "/readyz").status == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    pytest.fail(
        f"gunicorn {server.name} not ready in {START_TIMEOUT_SECONDS}s:\n{server.log_tail()}"
    )


@pytest.fixture(scope="module")
def servers(django_db_setup) -> Iterator[tuple[Server, Server]]:
    """Servers A and B on the test database and the test Redis; both always stopped afterwards.

    A server that logged a traceback fails the module at teardown, even if every status matched.
    """
    env = _server_env()
    started: list[Server] = []
    with tempfile.TemporaryDirectory(prefix="chatshield-two-servers-") as log_dir:
        try:
            for name in ("A", "B"):
                started.append(_start(name, Path(log_dir), env))
            deadline = time.monotonic() + START_TIMEOUT_SECONDS
            for server in started:
                _wait_ready(server, deadline)
            yield started[0], started[1]
        finally:
            for server in started:
                server_stop(server.process)
        for server in started:
            if "Traceback" in server.log_text():
                pytest.fail(f"gunicorn {server.name} logged a traceback:\n{server.log_tail()}")


# --- seeded data (committed, so both servers see it) ------------------------------------------


@pytest.fixture(scope="module")
def password_hash() -> str:
    """PASSWORD hashed as the servers hash (the tests' own MD5 hasher is not one they accept)."""
    hasher = PBKDF2PasswordHasher()
    return hasher.encode(PASSWORD, hasher.salt())


@pytest.fixture
def org() -> Organization:
    return services.organization_create(name="Scale-out Shop", slug=f"scale-{uuid.uuid4().hex[:8]}")


@pytest.fixture
def member(org, password_hash):
    def make(role: str) -> User:
        user = UserFactory()
        User.objects.filter(pk=user.pk).update(password=password_hash)
        services.membership_set(user=user, org=org, role=role)
        return user

    return make


def sign_in(server: Server, email: str, password: str = PASSWORD) -> Reply:
    return server.request("POST", "/api/v1/auth/token", {"email": email, "password": password})


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# --- the tests -------------------------------------------------------------------------------


def test_a_widget_logout_on_one_server_is_refused_on_the_other_at_once(servers, org):
    # given: a contact minted on A, whose token B accepts
    a, b = servers
    widget = {"X-Widget-Token": org.widget_token}
    minted = a.request("POST", "/widget/contacts/unverified", {"name": "Jo"}, widget)
    assert minted.status == 201, minted.body
    contact_headers = {**widget, **bearer(minted.body["token"])}
    assert b.request("GET", "/widget/me", headers=contact_headers).status == 200

    # when
    logout = a.request("POST", "/widget/logout", headers=contact_headers)

    # then
    assert logout.status == 204
    refused = b.request("GET", "/widget/me", headers=contact_headers)
    assert refused.status == 401
    assert refused.body == UNAUTHENTICATED
    assert Device.objects.get(contact_id=minted.body["contact"]["id"]).revoked_at is not None


def test_an_agent_logout_on_one_server_blacklists_the_refresh_token_on_the_other(servers, member):
    # given: an agent signed in on A, whose access token B accepts
    a, b = servers
    agent = member("agent")
    tokens = sign_in(a, agent.email)
    assert tokens.status == 200, tokens.body
    assert b.request("GET", "/api/v1/orgs", headers=bearer(tokens.body["access"])).status == 200

    # when
    logout = a.request("POST", "/api/v1/auth/logout", {"refresh": tokens.body["refresh"]})

    # then: B refuses the refresh token and mints nothing
    assert logout.status == 204
    refreshed = b.request("POST", "/api/v1/auth/refresh", {"refresh": tokens.body["refresh"]})
    assert refreshed.status == 401
    assert refreshed.body == UNAUTHENTICATED
    assert OutstandingToken.objects.filter(user=agent).count() == 1


def test_an_api_key_revoked_on_one_server_is_refused_on_the_other_at_once(servers, org, member):
    # given: an owner signed in on A, and a key that B accepts
    a, b = servers
    owner = member("owner")
    issued = services.api_key_create(
        org=org,
        created_by=owner,
        name="Shop backend",
        scopes=[ApiKey.Scope.WIDGET_AUTHENTICATE],
        expires_at=None,
    )
    customer = {"email": "ada@shop.test", "user_id": "customer-42"}
    assert (
        b.request("POST", "/widget/authenticate-user", customer, bearer(issued.key)).status == 201
    )
    owner_tokens = sign_in(a, owner.email)
    assert owner_tokens.status == 200, owner_tokens.body

    # when
    revoked = a.request(
        "DELETE",
        f"/api/v1/orgs/{org.id}/api-keys/{issued.api_key.pk}",
        headers=bearer(owner_tokens.body["access"]),
    )

    # then
    assert revoked.status == 204
    refused = b.request("POST", "/widget/authenticate-user", customer, bearer(issued.key))
    assert refused.status == 401
    assert refused.body == UNAUTHENTICATED
    assert Device.objects.filter(org=org).count() == 1


def test_a_sign_in_lockout_on_one_server_holds_on_the_other(servers, member):
    # given: an agent whose password B accepts
    a, b = servers
    agent = member("agent")
    assert sign_in(b, agent.email).status == 200

    # when: the failures all land on A
    for _ in range(LOCKOUT_MAX_FAILURES):
        assert sign_in(a, agent.email, "wrong password").status == 401

    # then: B refuses the right password too, and issues nothing
    locked = sign_in(b, agent.email)
    assert locked.status == 429
    assert locked.body["error"]["code"] == "throttled"
    assert locked.body["error"]["message"].startswith("Too many failed sign-ins.")
    assert 0 < int(locked.headers["retry-after"]) <= 900
    assert OutstandingToken.objects.filter(user=agent).count() == 1


def test_a_custom_token_used_on_one_server_is_refused_as_a_replay_on_the_other(servers, org):
    # given: a customer-signed token, good for one sign-in
    a, b = servers
    shared = services.signing_secret_create_shared(org=org, created_by=None)
    now = int(time.time())
    token = jwt.encode(
        {
            "_id": "customer-42",
            "email": "ada@shop.test",
            "aud": f"{PUBLIC_URL}/projects/{org.id}",
            "iat": now,
            "exp": now + 300,
            "jti": uuid.uuid4().hex,
        },
        shared.secret,
        algorithm="HS256",
        headers={"kid": shared.signing_secret.kid},
    )
    custom = {"Authorization": f"JWT {token}"}

    # when
    first = a.request("POST", "/v3/auth/signinWithCustomToken", headers=custom)
    replay = b.request("POST", "/v3/auth/signinWithCustomToken", headers=custom)

    # then: one verified contact on one device, from A's sign-in only
    assert first.status == 200, first.body
    assert first.body["success"] is True
    assert replay.status == 401
    assert replay.body == {**UNAUTHENTICATED, "success": False}
    assert Contact.objects.filter(org=org, trust=Contact.Trust.VERIFIED).count() == 1
    assert Device.objects.filter(org=org).count() == 1


def test_a_rotated_widget_token_is_refused_on_the_other_server_within_its_memo_ttl(
    servers, org, member
):
    # given: both servers serve the widget under its current token
    a, b = servers
    old = {"X-Widget-Token": org.widget_token}
    assert a.request("GET", "/widget/config", headers=old).status == 200
    assert b.request("GET", "/widget/config", headers=old).status == 200
    owner_tokens = sign_in(a, member("owner").email)
    assert owner_tokens.status == 200, owner_tokens.body

    # when: the owner rotates the token on A
    rotated = a.request(
        "POST",
        f"/api/v1/orgs/{org.id}/widget-settings/rotate-token",
        headers=bearer(owner_tokens.body["access"]),
    )
    rotated_at = time.monotonic()

    # then: A refuses the old token at once, B once its memo of the org has expired
    assert rotated.status == 200, rotated.body
    assert a.request("GET", "/widget/config", headers=old).status == 401
    while b.request("GET", "/widget/config", headers=old).status != 401:
        assert time.monotonic() - rotated_at < WIDGET_ORG_LOCAL_CACHE_SECONDS + 1, (
            "B still accepts the rotated-away widget token after its memo TTL"
        )
        time.sleep(0.1)
    new = {"X-Widget-Token": rotated.body["widgetToken"]}
    assert a.request("GET", "/widget/config", headers=new).status == 200
    assert b.request("GET", "/widget/config", headers=new).status == 200


# --- what gunicorn itself hands the app (one server is enough) --------------------------------


def post_chunked(server: Server, path: str, parts: list[bytes], headers: dict) -> Reply:
    """POST `parts` as a chunked body: no Content-Length, as some HTTP clients send."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=REQUEST_TIMEOUT_SECONDS)
    try:
        conn.request(
            "POST",
            path,
            body=iter(parts),
            headers={**headers, "Content-Type": "application/json"},
            encode_chunked=True,
        )
        response = conn.getresponse()
        raw = response.read()
        return Reply(status=response.status, body=json.loads(raw) if raw else None, headers={})
    finally:
        conn.close()


def test_a_chunked_body_reaches_the_app_and_keeps_its_limits(servers, org):
    a, _ = servers
    widget = {"X-Widget-Token": org.widget_token}

    # a chunked body is read, not taken for an empty one
    minted = post_chunked(
        a,
        "/widget/contacts/unverified",
        [b'{"name": "Chunk", ', b'"email": "c@shop.test"}'],
        widget,
    )
    assert minted.status == 201, minted.body
    assert minted.body["contact"]["trust"] == "non_verified"
    # and validated
    invalid = post_chunked(a, "/widget/contacts/unverified", [b'{"name": ', b"5}"], widget)
    assert invalid.status == 400, invalid.body
    # and held to the size limit though it declares no length
    chunk = b" " * (64 * 1024)
    parts = [b'{"name": "x"', *[chunk] * (settings.MAX_REQUEST_BODY_BYTES // len(chunk)), b"}"]
    too_large = post_chunked(a, "/widget/contacts/unverified", parts, widget)
    assert too_large.status == 413, too_large.body
    assert too_large.body["error"]["code"] == "payload_too_large"
    assert Contact.objects.filter(org=org).count() == 1


def test_gunicorns_own_log_of_a_malformed_request_quotes_no_credential(servers):
    a, _ = servers
    key = "csk_4357306433524851_6AqYxz4IYpQWqa27UHmHZUjaLseu0VwsQKRZgVWC"

    # when: a header line without its colon, which gunicorn refuses and logs itself
    with socket.create_connection(("127.0.0.1", a.port), timeout=REQUEST_TIMEOUT_SECONDS) as raw:
        raw.sendall(
            b"POST /widget/authenticate-user HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Authorization Bearer " + key.encode() + b"\r\n\r\n"
        )
        answer = raw.recv(4096)

    # then
    assert answer.startswith(b"HTTP/1.1 400")
    deadline = time.monotonic() + 5
    while "Invalid request from" not in a.log_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "Authorization Bearer [redacted]" in a.log_text()
    assert key not in a.log_text()
