"""chatshield settings: one file, every value read from the environment (see .env.example)."""

import logging
import re
import warnings
from datetime import timedelta
from pathlib import Path
from urllib.parse import unquote, urlsplit

import environ
from django.core.checks.security.base import (
    SECRET_KEY_INSECURE_PREFIX,
    SECRET_KEY_MIN_LENGTH,
    SECRET_KEY_MIN_UNIQUE_CHARACTERS,
)
from django.core.exceptions import ImproperlyConfigured

from identity.tokens import derive_key

BASE_DIR = Path(__file__).resolve().parent.parent


# What Django's request.get_host() can match an ALLOWED_HOSTS entry against: a host name or IPv4
# address (a leading dot: it and its subdomains) or a bracketed IPv6 address, lower-cased, never
# with a port (django.http.request.host_validation_re). An entry of any other shape matches no
# request, and a server whose every entry is such answers 400 to everything.
_ALLOWED_HOST = re.compile(r"\*|\.?[a-z0-9.-]+|\[[a-f0-9]*:[a-f0-9.:]+\]")
_TRUE_WORDS = frozenset({"true", "1", "yes", "on"})
_FALSE_WORDS = frozenset({"false", "0", "no", "off"})


class Env(environ.Env):
    """django-environ, plus readers that refuse at startup what would fail only on requests.

    Settings read through these only: django-environ's own `int` lets a non-number through as a
    ValueError that names no variable, its `bool` reads any unknown word (a typo, an env file's
    trailing comment) as false, and its `list` keeps the spaces around each entry.
    """

    def _given(self, var: str) -> str | None:
        """The variable's value, or None when it is unset."""
        return self.str(var) if var in self.ENVIRON else None

    def int_between(self, var: str, minimum: int, maximum: int, *, default: int) -> int:
        raw = self._given(var)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            value = None
        if value is None or not minimum <= value <= maximum:
            raise ImproperlyConfigured(
                f"{var} must be a whole number from {minimum} to {maximum}: it is {raw!r}."
            )
        return value

    def switch(self, var: str, *, default: bool) -> bool:
        """true/false, 1/0, yes/no or on/off, in any case; unset or empty: `default`."""
        raw = self._given(var)
        word = (raw or "").strip().lower()
        if not word:
            return default
        if word in _TRUE_WORDS or word in _FALSE_WORDS:
            return word in _TRUE_WORDS
        raise ImproperlyConfigured(
            f"{var} must be true or false (or 1/0, yes/no, on/off): it is {raw!r}."
        )

    def entries(self, var: str, *, default: list[str]) -> list[str]:
        """A comma-separated list, each entry trimmed, empty ones dropped."""
        raw = self._given(var)
        if raw is None:
            return default
        return [entry.strip() for entry in raw.split(",") if entry.strip()]

    def hosts(self, var: str, *, default: list[str]) -> list[str]:
        hosts = self.entries(var, default=default)
        for host in hosts:
            if not _ALLOWED_HOST.fullmatch(host.lower()):
                raise ImproperlyConfigured(
                    f"{var} lists host names only (chat.example.com, .example.com for it and its "
                    "subdomains, 127.0.0.1, [::1] or *), without a scheme, port or path: "
                    f"{host!r} is not one."
                )
        return hosts

    def origins(self, var: str, *, default: list[str]) -> list[str]:
        origins = self.entries(var, default=default)
        for origin in origins:
            scheme, separator, host = origin.partition("://")
            if not (scheme and separator and host):
                raise ImproperlyConfigured(
                    f"{var} lists origins with their scheme (https://chat.example.com): "
                    f"{origin!r} is not one."
                )
        return origins

    def log_level(self, var: str, *, default: str) -> str:
        raw = self.str(var, default=default)
        level = raw.strip().upper()
        if level not in logging.getLevelNamesMapping():
            raise ImproperlyConfigured(
                f"{var} must be DEBUG, INFO, WARNING, ERROR or CRITICAL (in any case): "
                f"it is {raw!r}."
            )
        return level

    def rate(self, var: str, *, default: str) -> str:
        value = self.str(var, default=default)
        if not is_throttle_rate(value):
            raise ImproperlyConfigured(
                f"{var} must be a rate N/sec, N/min, N/hour or N/day with N at least 1: "
                f"it is {value!r}."
            )
        return value

    def database(self, var: str, *, default: str) -> dict:
        """`env.db`, refusing what Django would only refuse at the first query."""
        with warnings.catch_warnings():
            # django-environ's warning for a URL it cannot read quotes it, password included.
            warnings.filterwarnings("ignore", message="Engine not recognized")
            try:
                config = self.db(var, default=default)
            except ValueError as error:  # e.g. a port that is not a number
                raise ImproperlyConfigured(f"{var} is not a database URL: {error}") from error
        if "ENGINE" not in config:
            raise ImproperlyConfigured(
                f"{var} is not a database URL django-environ can read: "
                "postgres://user:password@host:5432/name or sqlite:///path."
            )
        if config["ENGINE"] == "django.db.backends.postgresql" and "%" in config["HOST"]:
            # libpq's own URI form for a socket directory (postgres://%2Frun%2Fpostgresql/name),
            # which django-environ hands on still encoded, and psycopg would look up as a name.
            config["HOST"] = unquote(config["HOST"])
        if (
            config["ENGINE"] == "django.db.backends.postgresql"
            and not config["NAME"]
            and not config.get("OPTIONS", {}).get("service")
        ):
            raise ImproperlyConfigured(
                f"{var} names no database: postgres://user:password@host:5432/name."
            )
        return config

    def redis_url(self, var: str) -> str:
        """REDIS_URL as redis-py will read it at the first cache access; never connects (Redis
        may be down at start-up, which /readyz reports)."""
        value = self.str(var, default="")
        if not value:
            return value
        # Imported only here, so that servers without Redis do not pay for importing redis-py.
        from redis.connection import parse_url

        # django-redis splits the value on commas (a primary, then replicas).
        for url in value.split(","):
            if not url.startswith(("redis://", "rediss://", "unix://")):
                raise ImproperlyConfigured(
                    f"{var} must start with redis://, rediss:// or unix:// (each URL, when it "
                    "lists several)."
                )
            try:
                db = parse_url(url).get("db", 0)
            except ValueError as error:  # a port that is not a number, an unknown ?db=
                raise ImproperlyConfigured(f"{var} is not a Redis URL: {error}") from error
            # redis-py reads the path, slashes removed, as the database number and falls back to 0
            # when that is not a number: redis://host:6379/x was database 0, /1/2 database 12.
            path = unquote(urlsplit(url).path)
            if db < 0 or (not url.startswith("unix://") and not re.fullmatch(r"/?[0-9]*", path)):
                raise ImproperlyConfigured(
                    f"{var} names a database that is not a number from 0: "
                    "redis://host:6379/0 (unix:///path?db=0)."
                )
        return value


def is_throttle_rate(value: str) -> bool:
    """Whether DRF's SimpleRateThrottle.parse_rate reads `value`, as a rate of at least 1.

    parse_rate splits on "/" into exactly two parts, reads the first with int() and the period
    by its first letter (s, m, h or d); anything else raises at the first throttled request.
    """
    parts = value.split("/")
    if len(parts) != 2 or parts[1][:1] not in {"s", "m", "h", "d"}:
        return False
    try:
        return int(parts[0]) >= 1
    except ValueError:
        return False


env = Env()
if (BASE_DIR / ".env").is_file():
    environ.Env.read_env(BASE_DIR / ".env")


def _key_value(
    name: str,
    *,
    min_length: int = 0,
    remedy: str | None = None,
    then: str = "",
) -> str:
    """A key from the environment, refused when it cannot be what its operator meant.

    Whitespace is never part of a generated key, and it is what an env file's trailing comment
    (`KEY=   # signs …`) leaves in the value: django-environ, systemd and `docker --env-file`
    keep the comment, which would make a public string the key. `remedy` (what to do instead,
    when it is not to set a random value or derive the key) and `then` (what changing it costs)
    are for the message.
    """
    value = env.str(name, default="")
    if value and any(c.isspace() for c in value):
        problem = "must contain no whitespace (a comment on its line in an env file becomes part "
        problem += "of the value)"
    elif value and len(value) < min_length:
        problem = f"must be at least {min_length} characters"
    else:
        return value
    if remedy is None:
        remedy = "set it to a random value (secrets.token_urlsafe(50))"
        if min_length:
            remedy += " or leave it unset to derive it from DJANGO_SECRET_KEY"
    raise ImproperlyConfigured(f"{name} {problem}: {remedy}.{then}")


DEBUG = env.switch("DJANGO_DEBUG", default=False)
SECRET_KEY = _key_value("DJANGO_SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("DJANGO_SECRET_KEY is required unless DJANGO_DEBUG=true.")
    SECRET_KEY = "insecure-development-key-set-DJANGO_SECRET_KEY-in-production"  # noqa: S105
elif not DEBUG and (
    len(SECRET_KEY) < SECRET_KEY_MIN_LENGTH
    or len(set(SECRET_KEY)) < SECRET_KEY_MIN_UNIQUE_CHARACTERS
    or SECRET_KEY.startswith(SECRET_KEY_INSECURE_PREFIX)
):
    # Django's own rule (check --deploy's security.W009), enforced: every derived key, session
    # and password-reset token comes from this one value.
    raise ImproperlyConfigured(
        f"DJANGO_SECRET_KEY must be at least {SECRET_KEY_MIN_LENGTH} characters, at least "
        f"{SECRET_KEY_MIN_UNIQUE_CHARACTERS} of them different, and not start with "
        f"{SECRET_KEY_INSECURE_PREFIX!r} when DJANGO_DEBUG is off: set it to a random value "
        "(secrets.token_urlsafe(50))."
    )

ALLOWED_HOSTS = env.hosts("DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "testserver"])
if not ALLOWED_HOSTS and not DEBUG:
    raise ImproperlyConfigured(
        "DJANGO_ALLOWED_HOSTS lists no host: with DJANGO_DEBUG off every request would be a 400."
    )
PUBLIC_URL = env.str("PUBLIC_URL", default="http://127.0.0.1:8000").rstrip("/")
DEMO_MODE = env.switch("DEMO_MODE", default=False)
DEMO_ADMIN_PASSWORD = env.str("DEMO_ADMIN_PASSWORD", default="")
DEMO_AGENT_PASSWORD = env.str("DEMO_AGENT_PASSWORD", default="")
# Negative would trust X-Forwarded-Proto from direct clients (SECURE_PROXY_SSL_HEADER below).
TRUSTED_PROXY_COUNT = env.int_between("TRUSTED_PROXY_COUNT", 0, 10, default=0)
# bench/run.py only: a bare DRF route (bench/baseline) that the hot routes are measured against.
BENCH_BASELINE = env.switch("CHATSHIELD_BENCH_BASELINE", default=False)

# Each key has one purpose; unset ones are derived from SECRET_KEY for that purpose alone.
# Explicit keys are at least 32 characters (256 bits of HS256 key, written out), and no two
# purposes may share one, nor DJANGO_SECRET_KEY, which Django signs sessions with.
AGENT_TOKEN_KEY = _key_value("AGENT_TOKEN_KEY", min_length=32) or derive_key(
    SECRET_KEY, "agent-token"
)
CONTACT_TOKEN_KEY = _key_value("CONTACT_TOKEN_KEY", min_length=32) or derive_key(
    SECRET_KEY, "contact-token"
)
# Never derived: only set while a rotation is under way.
CONTACT_TOKEN_PREVIOUS_KEY = _key_value(
    "CONTACT_TOKEN_PREVIOUS_KEY",
    min_length=32,
    remedy="set it to the contact-token key being rotated out (docs/deploy.md, Key rotation) "
    "or leave it unset",
)
SIGNING_SECRET_ENCRYPTION_KEY = _key_value(
    "SIGNING_SECRET_ENCRYPTION_KEY",
    min_length=32,
    then=" HS256 signing secrets stored under the old key cannot be read under a new one: "
    "create new ones and retire the old (docs/deploy.md, Key rotation).",
) or derive_key(SECRET_KEY, "signing-secret-encryption")
if len({SECRET_KEY, AGENT_TOKEN_KEY, CONTACT_TOKEN_KEY, SIGNING_SECRET_ENCRYPTION_KEY}) < 4 or (
    CONTACT_TOKEN_PREVIOUS_KEY in (SECRET_KEY, AGENT_TOKEN_KEY, SIGNING_SECRET_ENCRYPTION_KEY)
):
    raise ImproperlyConfigured(
        "DJANGO_SECRET_KEY, AGENT_TOKEN_KEY, CONTACT_TOKEN_KEY (and CONTACT_TOKEN_PREVIOUS_KEY) "
        "and SIGNING_SECRET_ENCRYPTION_KEY must differ: each key has one purpose."
    )

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework_simplejwt.token_blacklist",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "identity",
    "contacts",
    "conversations",
]

MIDDLEWARE = [
    "config.request_id.RequestIdMiddleware",
    "config.middleware.BodySizeLimitMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "config.middleware.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "contacts.middleware.WidgetCorsMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "config.middleware.ServiceUnavailableMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
APPEND_SLASH = False

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": env.database("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # Django's backend, with a health check that asks the socket before the server
    # (config/postgresql/base.py).
    DATABASES["default"]["ENGINE"] = "config.postgresql"
    DATABASES["default"]["CONN_MAX_AGE"] = env.int_between(
        "DATABASE_CONN_MAX_AGE", 0, 24 * 60 * 60, default=60
    )
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    DATABASES["default"].setdefault("OPTIONS", {})["connect_timeout"] = 5
    # Server-side binding, so that the fixed statements of config.precompiled can be prepared
    # once per connection: PostgreSQL then stops parsing and planning the few lookups every
    # request makes. ORM queries are never prepared (their best plan can depend on the values,
    # e.g. a LIKE prefix). Behind pgbouncer in transaction mode older than 1.22 (or without
    # max_prepared_statements) set DATABASE_PREPARED_STATEMENTS=false (docs/deploy.md).
    if env.switch("DATABASE_PREPARED_STATEMENTS", default=True):
        DATABASES["default"]["OPTIONS"]["server_side_binding"] = True
# A sign-in's own write (a new contact and device, or a known customer's device) commits on
# PostgreSQL without waiting for the WAL flush: a database crash may lose the last fraction of a
# second of sign-ins, which signs those visitors out, never in (docs/decisions.md). Every other
# write waits for the flush as usual. false: sign-ins wait too.
DATABASE_ASYNCHRONOUS_COMMIT = env.switch("DATABASE_ASYNCHRONOUS_COMMIT", default=True)
# The test runner's database (default: "test_" + the name); set it so two runs can share a server.
if TEST_DATABASE_NAME := env.str("TEST_DATABASE_NAME", default=""):
    DATABASES["default"]["TEST"] = {"NAME": TEST_DATABASE_NAME}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env.redis_url("REDIS_URL")
if REDIS_URL:
    CACHES = {
        "default": {
            # django-redis keeps one client per server (Django's own backend builds a new client
            # object for every operation) and exposes it for the atomic counters.
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": env.str("CACHE_KEY_PREFIX", default="chatshield"),
            "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 2, "SOCKET_TIMEOUT": 2},
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# Seconds each process keeps the org behind a widget token before asking the shared cache again
# (identity.widget_cache). A settings change or token rotation reaches other processes within this.
# 0: not kept; at most the shared cache's own 300 s (identity.widget_cache.SHARED_SECONDS).
WIDGET_ORG_LOCAL_CACHE_SECONDS = env.int_between(
    "WIDGET_ORG_LOCAL_CACHE_SECONDS", 0, 300, default=5
)

AUTH_USER_MODEL = "identity.User"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "/console/login"
LOGIN_REDIRECT_URL = "/console/"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
# whitenoise serves what collectstatic wrote, with its pre-compressed variants. Its finders (the
# source folders) would take precedence over those files and serve them uncompressed: the widget
# script, which every page view of a customer's site loads, went out at 51 kB instead of 13 kB.
# They are for development and the test suite (tests/conftest.py), which never collect.
WHITENOISE_USE_FINDERS = env.switch("WHITENOISE_USE_FINDERS", default=DEBUG)

# SPEC §5: bodies over 1 MiB get 413 before anything reads them.
MAX_REQUEST_BODY_BYTES = 1024 * 1024
DATA_UPLOAD_MAX_MEMORY_SIZE = MAX_REQUEST_BODY_BYTES

# Security: secure by default when DEBUG is off; each switch can be turned off for plain-HTTP labs.
SECURE_SSL_REDIRECT = env.switch("SECURE_SSL_REDIRECT", default=not DEBUG)
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]
SECURE_HSTS_SECONDS = env.int_between(
    "SECURE_HSTS_SECONDS", 0, 2 * 365 * 24 * 60 * 60, default=0 if DEBUG else 365 * 24 * 60 * 60
)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.switch("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=not DEBUG)
SECURE_HSTS_PRELOAD = env.switch("SECURE_HSTS_PRELOAD", default=not DEBUG)
SESSION_COOKIE_SECURE = env.switch("SESSION_COOKIE_SECURE", default=not DEBUG)
CSRF_COOKIE_SECURE = env.switch("CSRF_COOKIE_SECURE", default=not DEBUG)
# Admin and console sign-ins (agents read customers' data there): a working day, not Django's
# two weeks, on a support desk's shared computers too. Seconds, from a minute to a year.
SESSION_COOKIE_AGE = env.int_between(
    "SESSION_COOKIE_AGE", 60, 365 * 24 * 60 * 60, default=12 * 60 * 60
)
CSRF_TRUSTED_ORIGINS = env.origins("CSRF_TRUSTED_ORIGINS", default=[])
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# The HTML pages' Content-Security-Policy (config.middleware): scripts, fonts, images and requests
# from this origin only, no plugins, no framing, forms posting only here. Our templates carry no
# inline script; inline styles are allowed because the API docs' Swagger UI sets them. Unset or
# empty: this default; there is no switch to send none.
CONTENT_SECURITY_POLICY = env.str("CONTENT_SECURITY_POLICY", default="") or (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self'; connect-src 'self'; object-src 'none'; "
    "base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)
if TRUSTED_PROXY_COUNT:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": [],
    "DEFAULT_PARSER_CLASSES": ["config.parsers.StrictJSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "EXCEPTION_HANDLER": "config.exceptions.exception_handler",
    # OPTIONS is a plain 405: DRF's metadata needs a serializer_class our viewsets do not have.
    "DEFAULT_METADATA_CLASS": None,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": None,
    "NUM_PROXIES": TRUSTED_PROXY_COUNT,
    "DEFAULT_THROTTLE_RATES": {
        "agent_signin_ip": env.rate("THROTTLE_AGENT_SIGNIN_IP", default="30/min"),
        "anonymous_mint_ip": env.rate("THROTTLE_ANONYMOUS_MINT_IP", default="60/min"),
        "anonymous_mint_widget": env.rate("THROTTLE_ANONYMOUS_MINT_WIDGET", default="600/min"),
        "authenticate_user_key": env.rate("THROTTLE_AUTHENTICATE_USER_KEY", default="1200/min"),
        "custom_token": env.rate("THROTTLE_CUSTOM_TOKEN_IP", default="120/min"),
    },
}

# Agent sign-in lockout (SPEC §5): failures counted per account and per client IP.
# Below 1, a limit refuses every sign-in (the right password included) and a window counts none;
# a window is at most a day (Redis refuses a TTL past its 64-bit range with a 503 per sign-in).
LOCKOUT_MAX_FAILURES = env.int_between("LOCKOUT_MAX_FAILURES", 1, 1_000_000, default=5)
LOCKOUT_WINDOW_SECONDS = env.int_between("LOCKOUT_WINDOW_SECONDS", 1, 24 * 60 * 60, default=15 * 60)
# A shared office NAT should not lock everyone out after five typos, so IPs get more room.
LOCKOUT_IP_MAX_FAILURES = env.int_between("LOCKOUT_IP_MAX_FAILURES", 1, 1_000_000, default=20)

# Lifetimes below 1 make tokens that are expired when issued; far above, an expiry past year 9999
# (a sign-in 500). An access token lives at most a day, a refresh token a year.
SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(
        minutes=env.int_between("AGENT_ACCESS_TOKEN_MINUTES", 1, 24 * 60, default=15)
    ),
    "REFRESH_TOKEN_LIFETIME": timedelta(
        days=env.int_between("AGENT_REFRESH_TOKEN_DAYS", 1, 365, default=7)
    ),
    "ROTATE_REFRESH_TOKENS": True,
    "BLACKLIST_AFTER_ROTATION": True,
    "UPDATE_LAST_LOGIN": False,
    "ALGORITHM": "HS256",
    "SIGNING_KEY": AGENT_TOKEN_KEY,
    "AUDIENCE": "chatshield:agent",
    "ISSUER": PUBLIC_URL,
    "AUTH_HEADER_TYPES": ("Bearer", "JWT"),
    "USER_ID_FIELD": "id",
    "USER_ID_CLAIM": "user_id",
    "TOKEN_TYPE_CLAIM": "token_type",
    "JTI_CLAIM": "jti",
    "LEEWAY": 0,
    # Access tokens carry a hash of the password they were issued under: a new password ends
    # them at once (refresh tokens are blacklisted by identity.models.User.save).
    "CHECK_REVOKE_TOKEN": True,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "chatshield API",
    "DESCRIPTION": "Identity server for live-chat widgets: anonymous, non-verified and verified "
    "visitors, org API keys, customer-signed tokens and Tiledesk-compatible /v3/auth routes.",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    # One JSON object per line, each stamped with the request id (docs/api.md, "Logs").
    "filters": {"request_id": {"()": "config.logging.RequestIdFilter"}},
    "formatters": {"json": {"()": "config.logging.JsonFormatter"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "json",
            "filters": ["request_id"],
        }
    },
    "root": {"handlers": ["console"], "level": env.log_level("LOG_LEVEL", default="INFO")},
    "loggers": {"django.request": {"level": "ERROR"}},
}
CSRF_FAILURE_VIEW = "config.exceptions.csrf_failure"
