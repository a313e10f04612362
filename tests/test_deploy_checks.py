"""Deploy checks for unsafe production settings, and settings refused at startup."""

import json
import re

import pytest
from django.core.checks import ERROR, WARNING
from rest_framework.throttling import SimpleRateThrottle

from config import checks
from config.settings import is_throttle_rate
from tests.test_settings_and_seed import (
    PRODUCTION_ENV,
    ROOT,
    VALID_SECRET_KEY,
    run_manage,
    run_settings,
)

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
    result = run_settings({"DJANGO_SECRET_KEY": VALID_SECRET_KEY, **env})
    assert result.returncode == 1, result.stdout
    last = result.stderr.strip().splitlines()[-1]
    prefix = "django.core.exceptions.ImproperlyConfigured: "
    assert last.startswith(prefix), result.stderr
    return last.removeprefix(prefix)


def read_settings(env: dict, expression: str) -> object:
    """The value of `expression` (on `settings`) under `env`, with a valid secret key."""
    code = f"import json; from django.conf import settings; print(json.dumps({expression}))"
    result = run_settings({"DJANGO_SECRET_KEY": VALID_SECRET_KEY, **env}, code)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


POSTGRES = {"DATABASE_URL": "postgres://u@127.0.0.1:5432/x"}
# Every integer the settings read: its range, how to read it back, and what else it needs.
INTEGER_SETTINGS = [
    ("TRUSTED_PROXY_COUNT", 0, 10, "settings.TRUSTED_PROXY_COUNT", {}),
    ("SESSION_COOKIE_AGE", 60, 31536000, "settings.SESSION_COOKIE_AGE", {}),
    ("SECURE_HSTS_SECONDS", 0, 63072000, "settings.SECURE_HSTS_SECONDS", {}),
    ("LOCKOUT_MAX_FAILURES", 1, 1000000, "settings.LOCKOUT_MAX_FAILURES", {}),
    ("LOCKOUT_IP_MAX_FAILURES", 1, 1000000, "settings.LOCKOUT_IP_MAX_FAILURES", {}),
    ("LOCKOUT_WINDOW_SECONDS", 1, 86400, "settings.LOCKOUT_WINDOW_SECONDS", {}),
    (
        "AGENT_ACCESS_TOKEN_MINUTES",
        1,
        1440,
        "settings.SIMPLE_JWT['ACCESS_TOKEN_LIFETIME'].total_seconds() // 60",
        {},
    ),
    (
        "AGENT_REFRESH_TOKEN_DAYS",
        1,
        365,
        "settings.SIMPLE_JWT['REFRESH_TOKEN_LIFETIME'].days",
        {},
    ),
    ("WIDGET_ORG_LOCAL_CACHE_SECONDS", 0, 300, "settings.WIDGET_ORG_LOCAL_CACHE_SECONDS", {}),
    (
        "DATABASE_CONN_MAX_AGE",
        0,
        86400,
        "settings.DATABASES['default']['CONN_MAX_AGE']",
        POSTGRES,
    ),
]


@pytest.mark.parametrize(
    ("variable", "minimum", "maximum", "expression", "needs"),
    INTEGER_SETTINGS,
    ids=[row[0] for row in INTEGER_SETTINGS],
)
def test_an_integer_setting_takes_its_range_and_is_refused_at_startup_past_it(
    variable, minimum, maximum, expression, needs
):
    # when
    lowest = read_settings({**needs, variable: str(minimum)}, expression)
    highest = read_settings({**needs, variable: str(maximum)}, expression)
    below = refused({**needs, variable: str(minimum - 1)})
    above = refused({**needs, variable: str(maximum + 1)})

    # then
    assert [lowest, highest] == [minimum, maximum]
    rule = f"{variable} must be a whole number from {minimum} to {maximum}"
    assert below == f"{rule}: it is '{minimum - 1}'."
    assert above == f"{rule}: it is '{maximum + 1}'."


@pytest.mark.parametrize(
    ("variable", "value", "rule"),
    [
        ("TRUSTED_PROXY_COUNT", "", "from 0 to 10"),
        ("TRUSTED_PROXY_COUNT", "1 # nginx", "from 0 to 10"),
        ("SESSION_COOKIE_AGE", "abc", "from 60 to 31536000"),
        ("SESSION_COOKIE_AGE", "1000000000000", "from 60 to 31536000"),
        ("LOCKOUT_MAX_FAILURES", "abc", "from 1 to 1000000"),
        ("LOCKOUT_WINDOW_SECONDS", "100000000000000000000", "from 1 to 86400"),
        ("AGENT_ACCESS_TOKEN_MINUTES", "100000000000000", "from 1 to 1440"),
        ("AGENT_ACCESS_TOKEN_MINUTES", "1.5", "from 1 to 1440"),
        ("AGENT_REFRESH_TOKEN_DAYS", "5000000", "from 1 to 365"),
        ("SECURE_HSTS_SECONDS", "1y", "from 0 to 63072000"),
        ("WIDGET_ORG_LOCAL_CACHE_SECONDS", "-1", "from 0 to 300"),
    ],
)
def test_an_integer_setting_that_is_empty_or_not_a_number_is_refused_naming_it(
    variable, value, rule
):
    # when
    message = refused({variable: value})

    # then
    assert message == f"{variable} must be a whole number {rule}: it is {value!r}."


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
        {
            "DJANGO_SECRET_KEY": VALID_SECRET_KEY,
            **dict(zip(THROTTLE_VARIABLES, rates, strict=True)),
        },
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
    result = run_settings({"DJANGO_SECRET_KEY": VALID_SECRET_KEY, "REDIS_URL": redis_url}, code)

    # then
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == redis_url


@pytest.mark.parametrize("database_url", ["foo", "://chatshield:hunter2@db:5432/chatshield"])
def test_a_database_url_django_environ_cannot_read_is_refused_without_echoing_it(database_url):
    # when
    result = run_settings({"DJANGO_SECRET_KEY": VALID_SECRET_KEY, "DATABASE_URL": database_url})

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
    result = run_settings(
        {"DJANGO_SECRET_KEY": VALID_SECRET_KEY, "DATABASE_URL": database_url}, code
    )

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
        {"DJANGO_SECRET_KEY": VALID_SECRET_KEY, "DATABASE_URL": "postgres:///?service=chatshield"},
        code,
    )

    # then
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [
        "",
        {"service": "chatshield", "connect_timeout": 5, "server_side_binding": True},
    ]


@pytest.mark.parametrize(("value", "level"), [("debug", "DEBUG"), (" Warning ", "WARNING")])
def test_a_log_level_is_read_in_any_case(value, level):
    # when
    root_level = read_settings({"LOG_LEVEL": value}, "settings.LOGGING['root']['level']")

    # then
    assert root_level == level


@pytest.mark.parametrize("value", ["LOUD", "", "INFO # or DEBUG", "10"])
def test_a_log_level_logging_does_not_know_is_refused_at_startup(value):
    # when
    message = refused({"LOG_LEVEL": value})

    # then
    assert message == (
        f"LOG_LEVEL must be DEBUG, INFO, WARNING, ERROR or CRITICAL (in any case): it is {value!r}."
    )


def test_allowed_hosts_and_trusted_origins_are_trimmed_and_empty_entries_dropped():
    # given
    env = {
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1, localhost ,,[::1], .Example.com,*,",
        "CSRF_TRUSTED_ORIGINS": " https://chat.example.com , https://*.example.com:8443,",
    }

    # when
    read = read_settings(env, "[settings.ALLOWED_HOSTS, settings.CSRF_TRUSTED_ORIGINS]")

    # then
    assert read == [
        ["127.0.0.1", "localhost", "[::1]", ".Example.com", "*"],
        ["https://chat.example.com", "https://*.example.com:8443"],
    ]


@pytest.mark.parametrize(
    "host",
    [
        "http://127.0.0.1",
        "127.0.0.1:8223",
        "[::1]:8000",
        "::1",
        "chat.example.com/chat",
        "*.example.com",
        "chat.example.com # ours",
    ],
)
def test_an_allowed_host_with_a_scheme_port_or_path_is_refused_at_startup(host):
    # when
    message = refused({"DJANGO_ALLOWED_HOSTS": f"localhost,{host}"})

    # then
    assert message == (
        "DJANGO_ALLOWED_HOSTS lists host names only (chat.example.com, .example.com for it and "
        "its subdomains, 127.0.0.1, [::1] or *), without a scheme, port or path: "
        f"{host!r} is not one."
    )


@pytest.mark.parametrize("hosts", ["", " , "])
def test_no_allowed_host_is_refused_at_startup_unless_debug_is_on(hosts):
    # when
    message = refused({"DJANGO_ALLOWED_HOSTS": hosts})
    debug = read_settings(
        {"DJANGO_ALLOWED_HOSTS": hosts, "DJANGO_DEBUG": "true"}, "settings.ALLOWED_HOSTS"
    )

    # then
    assert message == (
        "DJANGO_ALLOWED_HOSTS lists no host: with DJANGO_DEBUG off every request would be a 400."
    )
    assert debug == []


@pytest.mark.parametrize("origin", ["chat.example.com", "https://", "//chat.example.com"])
def test_a_trusted_origin_without_a_scheme_is_refused_at_startup(origin):
    # when
    message = refused({"CSRF_TRUSTED_ORIGINS": f"https://ok.example.com,{origin}"})

    # then
    assert message == (
        "CSRF_TRUSTED_ORIGINS lists origins with their scheme (https://chat.example.com): "
        f"{origin!r} is not one."
    )


BOOLEAN_VARIABLES = [
    "DJANGO_DEBUG",
    "DEMO_MODE",
    "CHATSHIELD_BENCH_BASELINE",
    "DATABASE_PREPARED_STATEMENTS",
    "DATABASE_ASYNCHRONOUS_COMMIT",
    "WHITENOISE_USE_FINDERS",
    "SECURE_SSL_REDIRECT",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS",
    "SECURE_HSTS_PRELOAD",
    "SESSION_COOKIE_SECURE",
    "CSRF_COOKIE_SECURE",
]


@pytest.mark.parametrize("variable", BOOLEAN_VARIABLES)
@pytest.mark.parametrize("value", ["ture", "true  # redirect http to https"])
def test_a_boolean_that_is_not_true_or_false_is_refused_at_startup(variable, value):
    # when
    message = refused({**POSTGRES, variable: value})

    # then
    assert message == f"{variable} must be true or false (or 1/0, yes/no, on/off): it is {value!r}."


def test_a_boolean_is_read_in_any_case_and_empty_is_its_default():
    # given
    env = {
        "SECURE_SSL_REDIRECT": "",
        "SESSION_COOKIE_SECURE": " ",
        "CSRF_COOKIE_SECURE": " Off ",
        "SECURE_HSTS_PRELOAD": "NO",
        "SECURE_HSTS_INCLUDE_SUBDOMAINS": "0",
        "DEMO_MODE": "Yes",
        "CHATSHIELD_BENCH_BASELINE": "on",
        "DATABASE_ASYNCHRONOUS_COMMIT": "TRUE",
    }
    expression = (
        "[settings.SECURE_SSL_REDIRECT, settings.SESSION_COOKIE_SECURE,"
        " settings.CSRF_COOKIE_SECURE, settings.SECURE_HSTS_PRELOAD,"
        " settings.SECURE_HSTS_INCLUDE_SUBDOMAINS, settings.DEMO_MODE,"
        " settings.BENCH_BASELINE, settings.DATABASE_ASYNCHRONOUS_COMMIT]"
    )

    # when
    read = read_settings(env, expression)

    # then
    assert read == [True, True, False, False, False, True, True, True]


def test_the_settings_read_no_variable_with_django_environs_lenient_readers():
    # given: env.int names no variable on a non-number, env.bool reads a typo as false and
    # env.list keeps the spaces around entries
    source = (ROOT / "config" / "settings.py").read_text()

    # when
    lenient = re.findall(r"\benv\.(?:int|bool|list|float|tuple|dict)\(", source)

    # then
    assert lenient == []


REDIS_DB = (
    "REDIS_URL names a database that is not a number from 0: "
    "redis://host:6379/0 (unix:///path?db=0)."
)


@pytest.mark.parametrize(
    ("redis_url", "message"),
    [
        (
            "redis://127.0.0.1:abc/13",
            "REDIS_URL is not a Redis URL: Port could not be cast to integer value as 'abc'",
        ),
        (
            "redis://:hunter2@redis:99999/0",
            "REDIS_URL is not a Redis URL: Port out of range 0-65535",
        ),
        (
            "unix:///run/redis.sock?db=x",
            "REDIS_URL is not a Redis URL: Invalid value for 'db' in connection URL.",
        ),
        ("redis://redis:6379/x", REDIS_DB),
        ("redis://redis:6379/1/2", REDIS_DB),
        ("redis://redis:6379/?db=-1", REDIS_DB),
        ("redis://a:6379/0,redis://b:6379/x", REDIS_DB),
    ],
)
def test_a_redis_url_port_or_database_redis_py_cannot_use_is_refused_without_connecting(
    redis_url, message
):
    # when
    refusal = refused({"REDIS_URL": redis_url})

    # then
    assert refusal == message
    assert "hunter2" not in refusal


@pytest.mark.parametrize(
    "secret_key",
    [
        "a",
        "k" * 50,
        "abcd" * 13,
        VALID_SECRET_KEY[:49],
        "django-insecure-" + VALID_SECRET_KEY,
    ],
)
def test_a_weak_secret_key_is_refused_at_startup_unless_debug_is_on(secret_key):
    # when
    message = refused({"DJANGO_SECRET_KEY": secret_key})
    debug = read_settings({"DJANGO_SECRET_KEY": secret_key, "DJANGO_DEBUG": "true"}, "True")

    # then
    assert message == (
        "DJANGO_SECRET_KEY must be at least 50 characters, at least 5 of them different, and not "
        "start with 'django-insecure-' when DJANGO_DEBUG is off: set it to a random value "
        "(secrets.token_urlsafe(50))."
    )
    assert debug is True


@pytest.mark.parametrize(
    "variable",
    [
        "AGENT_TOKEN_KEY",
        "CONTACT_TOKEN_KEY",
        "CONTACT_TOKEN_PREVIOUS_KEY",
        "SIGNING_SECRET_ENCRYPTION_KEY",
    ],
)
def test_a_purpose_key_equal_to_the_secret_key_is_refused_at_startup(variable):
    # when
    message = refused({variable: VALID_SECRET_KEY})

    # then
    assert message == (
        "DJANGO_SECRET_KEY, AGENT_TOKEN_KEY, CONTACT_TOKEN_KEY (and CONTACT_TOKEN_PREVIOUS_KEY) "
        "and SIGNING_SECRET_ENCRYPTION_KEY must differ: each key has one purpose."
    )


def test_a_short_previous_contact_key_is_refused_without_promising_a_derived_one():
    # when
    message = refused({"CONTACT_TOKEN_PREVIOUS_KEY": "short"})

    # then
    assert message == (
        "CONTACT_TOKEN_PREVIOUS_KEY must be at least 32 characters: set it to the contact-token "
        "key being rotated out (docs/deploy.md, Key rotation) or leave it unset."
    )
