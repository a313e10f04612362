"""Deploy checks (`manage.py check --deploy`) for settings the docs call unsafe in production."""

from urllib.parse import urlsplit

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register

ENVIRONMENT_DOCS = 'docs/deploy.md, "Environment"'


@register(Tags.security, deploy=True)
def check_demo_mode(app_configs, **kwargs):
    if not settings.DEMO_MODE:
        return []
    return [
        Error(
            "DEMO_MODE is on: the playground's demo backend signs anyone in, without "
            "credentials, as any verified customer of an org seed_demo seeded.",
            hint=f"Unset DEMO_MODE on any instance that holds real customers ({ENVIRONMENT_DOCS}).",
            id="chatshield.E001",
        )
    ]


@register(Tags.security, deploy=True)
def check_public_url(app_configs, **kwargs):
    url = settings.PUBLIC_URL
    try:
        host = urlsplit(url).hostname
    except ValueError:  # e.g. an unclosed [ of an IPv6 address
        host = None
    if url.startswith("https://") and host:
        return []
    if url.startswith("http://") and host:
        return [
            Warning(
                "PUBLIC_URL is plain http://, the URL visitors and customers' backends use: their "
                "tokens would cross the network in clear text.",
                hint=f"Set PUBLIC_URL to the https:// URL visitors use ({ENVIRONMENT_DOCS}).",
                id="chatshield.W001",
            )
        ]
    return [
        Error(
            "PUBLIC_URL is not an http(s):// URL with a host: the custom-token audience "
            "customers are told to use (https://<host>/projects/<org id>) never matches it.",
            hint=f"Set PUBLIC_URL to the https:// URL visitors use ({ENVIRONMENT_DOCS}).",
            id="chatshield.E002",
        )
    ]


@register(Tags.caches, deploy=True)
def check_redis_url(app_configs, **kwargs):
    if settings.REDIS_URL:
        return []
    return [
        Warning(
            "REDIS_URL is unset: the cache, throttles, sign-in lockouts and the jti replay store "
            "are each process's own, so a customer-signed token is accepted once per process.",
            hint=f"Set REDIS_URL for any instance with more than one process ({ENVIRONMENT_DOCS}; "
            'docs/deploy.md, "Redis").',
            id="chatshield.W002",
        )
    ]


@register(Tags.security, deploy=True)
def check_database_is_not_sqlite(app_configs, **kwargs):
    sqlite = [alias for alias, db in settings.DATABASES.items() if "sqlite" in db["ENGINE"]]
    return [
        Warning(
            f"The {alias!r} database is SQLite, which is for development and tests only.",
            hint=f"Set DATABASE_URL to a PostgreSQL URL ({ENVIRONMENT_DOCS}; "
            'docs/deploy.md, "PostgreSQL").',
            id="chatshield.W003",
        )
        for alias in sqlite
    ]
