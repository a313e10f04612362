"""Settings parsing, key separation and the idempotent demo seed."""

import json
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import connection

from contacts.models import Contact
from contacts.selectors import _PRINCIPAL_ROW
from identity.models import Membership, Organization, User
from identity.tokens import derive_key
from tests.factories import DeviceFactory

ROOT = Path(__file__).resolve().parent.parent
# What a DEBUG-off server accepts: 50 characters or more, at least 5 of them different.
VALID_SECRET_KEY = "settings-test-secret-key-not-for-production-0123456789"


def run_settings(env: dict, code: str | None = None) -> subprocess.CompletedProcess:
    code = code or (
        "import django, json; from django.conf import settings; django.setup(); "
        "print(json.dumps({'debug': settings.DEBUG, 'db': settings.DATABASES['default']['ENGINE'],"
        " 'cache': settings.CACHES['default']['BACKEND'], 'ssl': settings.SECURE_SSL_REDIRECT,"
        " 'hsts': settings.SECURE_HSTS_SECONDS, 'proxies': settings.TRUSTED_PROXY_COUNT}))"
    )
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DJANGO_", "DATABASE", "REDIS", "SECURE_"))
    }
    clean.update({"DJANGO_SETTINGS_MODULE": "config.settings", **env})
    return subprocess.run(  # noqa: S603
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=clean,
        capture_output=True,
        text=True,
        check=False,
    )


def test_secret_key_is_required_when_debug_is_off():
    result = run_settings({})

    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY is required" in result.stderr


def test_defaults_are_sqlite_locmem_and_secure():
    result = run_settings({"DJANGO_SECRET_KEY": VALID_SECRET_KEY})

    assert json.loads(result.stdout) == {
        "debug": False,
        "db": "django.db.backends.sqlite3",
        "cache": "django.core.cache.backends.locmem.LocMemCache",
        "ssl": True,
        "hsts": 31536000,
        "proxies": 0,
    }


def test_database_and_redis_urls_switch_backends():
    result = run_settings(
        {
            "DJANGO_SECRET_KEY": VALID_SECRET_KEY,
            "DATABASE_URL": "postgres://u@127.0.0.1:5432/x",
            "REDIS_URL": "redis://127.0.0.1:6379/0",
            "TRUSTED_PROXY_COUNT": "2",
        }
    )

    parsed = json.loads(result.stdout)
    assert parsed["db"] == "config.postgresql"
    assert parsed["cache"] == "django_redis.cache.RedisCache"
    assert parsed["proxies"] == 2


def test_postgresql_binds_server_side_unless_switched_off():
    code = (
        "import django, json; from django.conf import settings; django.setup(); "
        "print(json.dumps(settings.DATABASES['default']['OPTIONS'].get('server_side_binding')))"
    )
    postgres = {
        "DJANGO_SECRET_KEY": VALID_SECRET_KEY,
        "DATABASE_URL": "postgres://u@127.0.0.1:5432/x",
    }

    on = run_settings(postgres, code=code)
    off = run_settings({**postgres, "DATABASE_PREPARED_STATEMENTS": "false"}, code=code)

    assert json.loads(on.stdout) is True
    assert json.loads(off.stdout) is None


@pytest.mark.prepared_statements
@pytest.mark.django_db(transaction=True)
def test_the_precompiled_lookups_are_prepared_and_orm_queries_are_not():
    device = DeviceFactory()
    for _ in range(6):
        _PRINCIPAL_ROW.fetch(device.pk, device.org_id, device.contact_id)
        Organization.objects.filter(pk=uuid.uuid4()).exists()

    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        prepared = [row[0] for row in cursor.fetchall()]

    assert any('FROM "contacts_device" d JOIN' in statement for statement in prepared)
    assert not any('"identity_organization"' in statement for statement in prepared)


def test_env_example_lists_every_variable_the_settings_read():
    settings_source = (ROOT / "config" / "settings.py").read_text()
    read = set(re.findall(r'(?:env(?:\.\w+)?|_key_value)\(\s*"([A-Z0-9_]+)"', settings_source))
    listed = set(re.findall(r"^#?\s*([A-Z0-9_]+)=", (ROOT / ".env.example").read_text(), re.M))

    assert len(read) > 30  # the pattern still finds the settings' env calls
    assert read - listed == set()


def test_a_copy_of_env_example_leaves_every_key_derived():
    # given .env.example read as an env file is read (comments on their own lines are ignored)
    code = (
        "import environ, json; environ.Env.read_env('.env.example'); import django;"
        " from django.conf import settings; django.setup(); from identity.tokens import derive_key;"
        " k = settings.SECRET_KEY; print(json.dumps([settings.AGENT_TOKEN_KEY == derive_key(k,"
        " 'agent-token'), settings.CONTACT_TOKEN_KEY == derive_key(k, 'contact-token'),"
        " settings.CONTACT_TOKEN_PREVIOUS_KEY, settings.SIGNING_SECRET_ENCRYPTION_KEY =="
        " derive_key(k, 'signing-secret-encryption'), settings.DATABASES['default']['ENGINE']]))"
    )

    # when
    result = run_settings({"DJANGO_SECRET_KEY": VALID_SECRET_KEY}, code)

    # then
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [True, True, "", True, "django.db.backends.sqlite3"]


WHITESPACE = "must contain no whitespace"


@pytest.mark.parametrize(
    ("variable", "value", "problem"),
    [
        ("CONTACT_TOKEN_KEY", "            # signs contact tokens", WHITESPACE),
        ("AGENT_TOKEN_KEY", "short-key", "must be at least 32 characters"),
        ("SIGNING_SECRET_ENCRYPTION_KEY", "a" * 40 + " # encrypts stored secrets", WHITESPACE),
        ("CONTACT_TOKEN_PREVIOUS_KEY", "   # still accepted during a key rotation", WHITESPACE),
        ("DJANGO_SECRET_KEY", VALID_SECRET_KEY + "   # the master secret", WHITESPACE),
    ],
)
def test_a_key_an_env_file_comment_or_a_typo_made_is_refused_at_startup(variable, value, problem):
    # when
    result = run_settings({"DJANGO_SECRET_KEY": VALID_SECRET_KEY, variable: value})

    # then
    assert result.returncode != 0
    assert f"{variable} {problem}" in result.stderr
    assert "ImproperlyConfigured" in result.stderr


def test_two_purposes_sharing_one_explicit_key_are_refused_at_startup():
    # when
    key = "x" * 40
    result = run_settings(
        {"DJANGO_SECRET_KEY": VALID_SECRET_KEY, "AGENT_TOKEN_KEY": key, "CONTACT_TOKEN_KEY": key}
    )

    # then
    assert result.returncode != 0
    assert "must differ: each key has one purpose" in result.stderr


def test_debug_alone_starts_without_a_secret_key():
    result = run_settings({"DJANGO_DEBUG": "true"})

    assert json.loads(result.stdout)["debug"] is True


def test_each_key_has_its_own_purpose():
    keys = {
        settings.SECRET_KEY,
        settings.AGENT_TOKEN_KEY,
        settings.CONTACT_TOKEN_KEY,
        settings.SIGNING_SECRET_ENCRYPTION_KEY,
    }
    assert len(keys) == 4
    assert derive_key(settings.SECRET_KEY, "agent-token") == settings.AGENT_TOKEN_KEY


@pytest.mark.django_db
def test_seed_demo_is_idempotent_and_writes_the_credentials(tmp_path):
    # given
    first, second = tmp_path / "first.json", tmp_path / "second.json"

    # when
    call_command("seed_demo", output=str(first))
    call_command("seed_demo", output=str(second))

    # then
    data = json.loads(first.read_text())
    assert data == json.loads(second.read_text())
    assert {
        "org_id",
        "widget_token",
        "admin_email",
        "admin_password",
        "agent_email",
        "agent_password",
    } <= set(data)
    assert Organization.objects.count() == 1
    assert User.objects.count() == 2
    assert {"api_key", "signing_secret", "signing_kid"} <= set(data)
    org = Organization.objects.get()
    assert str(org.id) == data["org_id"]
    roles = dict(Membership.objects.values_list("user__email", "role"))
    assert roles == {data["admin_email"]: "owner", data["agent_email"]: "agent"}
    assert User.objects.get(email=data["agent_email"]).check_password(data["agent_password"])
    assert all(User.objects.values_list("is_staff", flat=True))


@pytest.mark.django_db
def test_seed_demo_other_org_is_independent(tmp_path):
    call_command("seed_demo", output=str(tmp_path / "a.json"))
    call_command("seed_demo", org="second", output=str(tmp_path / "b.json"))

    a = json.loads((tmp_path / "a.json").read_text())
    b = json.loads((tmp_path / "b.json").read_text())
    assert a["org_id"] != b["org_id"]
    assert a["widget_token"] != b["widget_token"]
    assert a["admin_password"] != b["admin_password"]
    assert Organization.objects.count() == 2


PRODUCTION_ENV = {
    "DJANGO_SECRET_KEY": "p" * 20 + "rod-secret-key-with-enough-entropy-1234567890",
    "DJANGO_ALLOWED_HOSTS": "chat.example.com",
    "PUBLIC_URL": "https://chat.example.com",
    "DATABASE_URL": "postgres://chatshield:secret@db:5432/chatshield",
    "REDIS_URL": "redis://redis:6379/0",
    "TRUSTED_PROXY_COUNT": "1",
}


def run_manage(*args: str, env: dict) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "SECURE_"))}
    clean.update(env)
    return subprocess.run(  # noqa: S603
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=clean,
        capture_output=True,
        text=True,
        check=False,
    )


def test_check_deploy_is_clean_under_the_documented_production_env():
    result = run_manage("check", "--deploy", "--fail-level", "WARNING", env=PRODUCTION_ENV)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_openapi_schema_generates_without_warnings(tmp_path):
    result = run_manage(
        "spectacular", "--fail-on-warn", "--file", str(tmp_path / "s.yaml"), env=PRODUCTION_ENV
    )

    assert result.returncode == 0, result.stderr


@pytest.mark.django_db
def test_seeded_credentials_work_as_a_customer_backend_would(tmp_path):
    # given
    import time

    import jwt
    from rest_framework.test import APIClient

    out = tmp_path / "demo.json"
    call_command("seed_demo", output=str(out))
    data = json.loads(out.read_text())
    client = APIClient()

    # when: the backend authenticates a user with the API key
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {data['api_key']}")
    verified = client.post("/widget/authenticate-user", {"email": "x@y.test"}, format="json")
    # and signs a custom token with the signing secret
    now = int(time.time())
    custom = jwt.encode(
        {
            "_id": "demo-user",
            "aud": f"{settings.PUBLIC_URL}/projects/{data['org_id']}",
            "iat": now,
            "exp": now + 60,
            "jti": "seed-test",
        },
        data["signing_secret"],
        algorithm="HS256",
        headers={"kid": data["signing_kid"]},
    )
    exchanged = APIClient().post(
        "/v3/auth/signinWithCustomToken", HTTP_AUTHORIZATION=f"JWT {custom}"
    )

    # then
    assert verified.status_code == 201
    assert exchanged.status_code == 200
    assert len(set(data["signing_secret"][-8:])) > 1
    assert set(Contact.objects.values_list("trust", flat=True)) == {
        "anonymous",
        "non_verified",
        "verified",
    }
