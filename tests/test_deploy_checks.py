"""Deploy checks for unsafe production settings, and settings refused at startup."""

import json

import pytest
from django.core.checks import ERROR, WARNING
from rest_framework.throttling import SimpleRateThrottle

from config import checks
from config.settings import is_throttle_rate
from tests.test_settings_and_seed import PRODUCTION_ENV, run_manage, run_settings

# The README's "Production environment" block, every line of it.
DOCUMENTED_PRODUCTION_ENV = {**PRODUCTION_ENV, "DEMO_MODE": "false"}
ENVIRONMENT_DOCS = 'docs/deploy.md, "Environment"'


def test_demo_mode_on_is_a_deploy_error(settings):
    # given
    settings.DEMO_MODE = True

    # when
    messages = checks.check_demo_mode(None)

    # then
    assert [(m.level, m.id) for m in messages] == [(ERROR, "chatshield.E001")]
    assert "DEMO_MODE" in messages[0].hint
    assert ENVIRONMENT_DOCS in messages[0].hint


def test_demo_mode_off_passes_the_deploy_checks(settings):
    # given
    settings.DEMO_MODE = False

    # when
    messages = checks.check_demo_mode(None)

    # then
    assert messages == []


@pytest.mark.parametrize(
    "public_url", ["https://chat.example.com", "https://chat.example.com:8443/chat"]
)
def test_an_https_public_url_passes_the_deploy_checks(settings, public_url):
    # given
    settings.PUBLIC_URL = public_url

    # when
    messages = checks.check_public_url(None)

    # then
    assert messages == []


def test_a_plain_http_public_url_is_a_deploy_warning(settings):
    # given
    settings.PUBLIC_URL = "http://chat.example.com"

    # when
    messages = checks.check_public_url(None)

    # then
    assert [(m.level, m.id) for m in messages] == [(WARNING, "chatshield.W001")]
    assert "PUBLIC_URL" in messages[0].hint
    assert ENVIRONMENT_DOCS in messages[0].hint


@pytest.mark.parametrize(
    "public_url",
    [
        "chat.example.com",
        "chat.example.com:8443",
        "https://",
        "HTTPS://chat.example.com",
        "ftp://chat.example.com",
        "https://[::1",
    ],
)
def test_a_public_url_without_an_http_scheme_or_a_host_is_a_deploy_error(settings, public_url):
    # given
    settings.PUBLIC_URL = public_url

    # when
    messages = checks.check_public_url(None)

    # then
    assert [(m.level, m.id) for m in messages] == [(ERROR, "chatshield.E002")]
    assert "PUBLIC_URL" in messages[0].hint
    assert ENVIRONMENT_DOCS in messages[0].hint


def test_no_redis_url_is_a_deploy_warning(settings):
    # given
    settings.REDIS_URL = ""

    # when
    messages = checks.check_redis_url(None)

    # then
    assert [(m.level, m.id) for m in messages] == [(WARNING, "chatshield.W002")]
    assert "REDIS_URL" in messages[0].hint
    assert ENVIRONMENT_DOCS in messages[0].hint


def test_a_redis_url_passes_the_deploy_checks(settings):
    # given
    settings.REDIS_URL = "redis://redis:6379/0"

    # when
    messages = checks.check_redis_url(None)

    # then
    assert messages == []


def test_check_deploy_reports_the_chatshield_checks():
    # given
    env = {
        **DOCUMENTED_PRODUCTION_ENV,
        "DEMO_MODE": "true",
        "PUBLIC_URL": "chat.example.com",
        "DATABASE_URL": "sqlite:///db.sqlite3",
        "REDIS_URL": "",
    }

    # when
    result = run_manage("check", "--deploy", env=env)

    # then
    assert result.returncode == 1
    assert "(chatshield.E001) DEMO_MODE is on" in result.stderr
    assert "(chatshield.E002) PUBLIC_URL is not an http(s):// URL" in result.stderr
    assert "(chatshield.W002) REDIS_URL is unset" in result.stderr
    assert "(chatshield.W003) The 'default' database is SQLite" in result.stderr
    assert "4 issues" in result.stderr


def test_the_chatshield_checks_run_under_check_deploy_only():
    # given
    env = {**DOCUMENTED_PRODUCTION_ENV, "DEMO_MODE": "true", "PUBLIC_URL": "chat.example.com"}

    # when
    result = run_manage("check", env=env)

    # then
    assert result.returncode == 0, result.stderr
    assert result.stdout == "System check identified no issues (0 silenced).\n"


def test_check_deploy_is_clean_under_every_line_of_the_documented_production_env():
    # when
    result = run_manage(
        "check", "--deploy", "--fail-level", "WARNING", env=DOCUMENTED_PRODUCTION_ENV
    )

    # then
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == "System check identified no issues (0 silenced).\n"


def refused(env: dict) -> str:
    """The ImproperlyConfigured message settings stop on under `env`, with a valid secret key."""
    result = run_settings({"DJANGO_SECRET_KEY": "k" * 50, **env})
    assert result.returncode == 1, result.stdout
    last = result.stderr.strip().splitlines()[-1]
    prefix = "django.core.exceptions.ImproperlyConfigured: "
    assert last.startswith(prefix), result.stderr
    return last.removeprefix(prefix)


def test_a_negative_trusted_proxy_count_is_refused_at_startup():
    # when
    message = refused({"TRUSTED_PROXY_COUNT": "-1"})

    # then
    assert message == "TRUSTED_PROXY_COUNT must be at least 0: it is -1."


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("LOCKOUT_MAX_FAILURES", "0"),
        ("LOCKOUT_MAX_FAILURES", "-5"),
        ("LOCKOUT_IP_MAX_FAILURES", "0"),
        ("LOCKOUT_WINDOW_SECONDS", "0"),
        ("LOCKOUT_WINDOW_SECONDS", "-900"),
    ],
)
def test_a_lockout_limit_or_window_below_one_is_refused_at_startup(variable, value):
    # when
    message = refused({variable: value})

    # then
    assert message == f"{variable} must be at least 1: it is {value}."


@pytest.mark.parametrize("value", ["59", "0", "-43200"])
def test_a_session_shorter_than_a_minute_is_refused_at_startup(value):
    # when
    message = refused({"SESSION_COOKIE_AGE": value})

    # then
    assert message == f"SESSION_COOKIE_AGE must be at least 60: it is {value}."


THROTTLE_VARIABLES = [
    "THROTTLE_AGENT_SIGNIN_IP",
    "THROTTLE_ANONYMOUS_MINT_IP",
    "THROTTLE_ANONYMOUS_MINT_WIDGET",
    "THROTTLE_AUTHENTICATE_USER_KEY",
    "THROTTLE_CUSTOM_TOKEN_IP",
]


@pytest.mark.parametrize("variable", THROTTLE_VARIABLES)
@pytest.mark.parametrize("value", ["abc", "0/min", "-1/hour", "30/Min", "30/", "30/min/x", ""])
def test_a_throttle_rate_drf_cannot_read_is_refused_at_startup(variable, value):
    # when
    message = refused({variable: value})

    # then
    assert message == (
        f"{variable} must be a rate N/sec, N/min, N/hour or N/day with N at least 1: "
        f"it is {value!r}."
    )


def test_every_rate_form_drf_reads_is_accepted_unchanged():
    # given
    rates = ["1/s", "+7/hour", " 9/minute", "1_000/mango", "2/d"]
    code = (
        "import django, json; from django.conf import settings; django.setup(); "
        "print(json.dumps(settings.REST_FRAMEWORK['DEFAULT_THROTTLE_RATES']))"
    )

    # when
    result = run_settings(
        {"DJANGO_SECRET_KEY": "k" * 50, **dict(zip(THROTTLE_VARIABLES, rates, strict=True))},
        code,
    )

    # then
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "agent_signin_ip": "1/s",
        "anonymous_mint_ip": "+7/hour",
        "anonymous_mint_widget": " 9/minute",
        "authenticate_user_key": "1_000/mango",
        "custom_token": "2/d",
    }


class ProbeThrottle(SimpleRateThrottle):
    rate = "1/s"


def drf_reads(rate: str) -> bool:
    try:
        num_requests, _ = ProbeThrottle().parse_rate(rate)
    except (ValueError, KeyError, IndexError):
        return False
    return num_requests >= 1


@pytest.mark.parametrize(
    "rate",
    [
        "30/min",
        "1/s",
        "0/min",
        "-1/min",
        "+7/hour",
        " 9/minute",
        "9 /m",
        "1_000/mango",
        "\u0663/s",
        "30/Min",
        "30/ min",
        "30/",
        "/min",
        "30",
        "",
        "30/min/x",
        "30//min",
        "3.5/min",
        "1e3/min",
        "0x10/min",
        "abc",
    ],
)
def test_the_settings_accept_exactly_the_rates_drf_reads(rate):
    assert is_throttle_rate(rate) is drf_reads(rate)


@pytest.mark.parametrize(
    "redis_url",
    ["foo", "localhost:6379", "http://redis:6379/0", "REDIS://redis:6379/0", "redis://a/0,b/0"],
)
def test_a_redis_url_redis_py_cannot_read_is_refused_at_startup(redis_url):
    # when
    message = refused({"REDIS_URL": redis_url})

    # then
    assert message == (
        "REDIS_URL must start with redis://, rediss:// or unix:// (each URL, when it lists "
        "several)."
    )


def test_every_redis_url_scheme_redis_py_reads_is_accepted():
    # given
    redis_url = "redis://a:6379/0,rediss://b:6380/1,unix:///run/redis.sock?db=2"
    code = (
        "import django, json; from django.conf import settings; django.setup(); "
        "print(json.dumps(settings.CACHES['default']['LOCATION']))"
    )

    # when
    result = run_settings({"DJANGO_SECRET_KEY": "k" * 50, "REDIS_URL": redis_url}, code)

    # then
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == redis_url


@pytest.mark.parametrize("database_url", ["foo", "://chatshield:hunter2@db:5432/chatshield"])
def test_a_database_url_django_environ_cannot_read_is_refused_without_echoing_it(database_url):
    # when
    result = run_settings({"DJANGO_SECRET_KEY": "k" * 50, "DATABASE_URL": database_url})

    # then
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "django.core.exceptions.ImproperlyConfigured: DATABASE_URL is not a database URL "
        "django-environ can read: postgres://user:password@host:5432/name or sqlite:///path."
    )
    assert "hunter2" not in result.stderr


def test_a_database_url_with_a_port_that_is_not_a_number_is_refused_at_startup():
    # when
    message = refused({"DATABASE_URL": "postgres://u@127.0.0.1:port/x"})

    # then
    assert message.startswith("DATABASE_URL is not a database URL: Port could not be cast")


@pytest.mark.parametrize(
    "database_url", ["postgres://", "postgres://u@127.0.0.1:5432", "postgresql://u@db:5432/"]
)
def test_a_postgres_url_without_a_database_name_is_refused_at_startup(database_url):
    # when
    message = refused({"DATABASE_URL": database_url})

    # then
    assert message == "DATABASE_URL names no database: postgres://user:password@host:5432/name."


@pytest.mark.parametrize(
    ("database_url", "host"),
    [
        ("postgres://chatshield@%2Frun%2Fpostgresql/chatshield", "/run/postgresql"),
        ("postgres://chatshield@%2frun%2fpostgresql:5433/chatshield", "/run/postgresql"),
        ("postgres://chatshield@db.internal:5432/chatshield", "db.internal"),
    ],
)
def test_a_percent_encoded_socket_directory_is_read_as_libpq_reads_it(database_url, host):
    # given
    code = (
        "import django, json; from django.conf import settings; django.setup(); "
        "d = settings.DATABASES['default']; print(json.dumps([d['HOST'], d['NAME']]))"
    )

    # when
    result = run_settings({"DJANGO_SECRET_KEY": "k" * 50, "DATABASE_URL": database_url}, code)

    # then
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [host, "chatshield"]


def test_a_postgres_url_naming_a_service_instead_of_a_database_is_accepted():
    # given
    code = (
        "import django, json; from django.conf import settings; django.setup(); "
        "d = settings.DATABASES['default']; print(json.dumps([d['NAME'], d['OPTIONS']]))"
    )

    # when
    result = run_settings(
        {"DJANGO_SECRET_KEY": "k" * 50, "DATABASE_URL": "postgres:///?service=chatshield"}, code
    )

    # then
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [
        "",
        {"service": "chatshield", "connect_timeout": 5, "server_side_binding": True},
    ]
