"""Shared fixtures: a clean cache per test, fast password hashing, API clients and a seeded org."""

import copy
import os
import time
from urllib.parse import urlsplit, urlunsplit

import pytest
from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.test import override_settings
from rest_framework.test import APIClient

from identity import widget_cache
from identity.api.throttles import WindowRateThrottle
from tests.factories import MembershipFactory, OrganizationFactory, UserFactory

PASSWORD = "correct horse battery staple"


REDIS_DATABASES = 16  # Redis's default `databases`


def pytest_configure(config):
    """Under pytest-xdist with REDIS_URL, each worker gets a Redis database of its own.

    Every test clears the cache, which on Redis is a FLUSHDB: in one shared database a worker
    would wipe another's throttle, lockout and replay counters in the middle of its test.
    Worker N uses the URL's database plus N (REDIS_URL=redis://…/9 and `-n 2`: 9 and 10), and so
    do the app servers a test starts.
    """
    # The suite never runs collectstatic: its live servers serve the source folders.
    settings.WHITENOISE_USE_FINDERS = True
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if not (settings.REDIS_URL and worker.startswith("gw")):
        return
    url = redis_url_for_worker(settings.REDIS_URL, int(worker.removeprefix("gw")))
    caches = copy.deepcopy(settings.CACHES)
    caches["default"]["LOCATION"] = url
    override_settings(REDIS_URL=url, CACHES=caches).enable()
    os.environ["REDIS_URL"] = url


def redis_url_for_worker(url: str, worker: int) -> str:
    parts = urlsplit(url)
    database = int(parts.path.strip("/") or 0) + worker
    if database >= REDIS_DATABASES:
        raise pytest.UsageError(
            f"REDIS_URL {url} with {worker + 1} or more test workers needs Redis database "
            f"{database}, past the default {REDIS_DATABASES}: name a lower database"
        )
    return urlunsplit(parts._replace(path=f"/{database}"))


def pytest_collection_modifyitems(items):
    """`@pytest.mark.postgres_only(reason=…)`: skipped, with its reason, unless on PostgreSQL.

    `@pytest.mark.prepared_statements`: skipped unless PostgreSQL prepares the fixed statements
    (`DATABASE_PREPARED_STATEMENTS`, default true).
    """
    on_postgresql = connection.vendor == "postgresql"
    preparing = on_postgresql and bool(
        connection.settings_dict["OPTIONS"].get("server_side_binding")
    )
    for item in items:
        marker = item.get_closest_marker("postgres_only")
        if marker is not None and not on_postgresql:
            reason = marker.kwargs.get("reason", "needs PostgreSQL")
            item.add_marker(pytest.mark.skip(reason=reason))
        elif item.get_closest_marker("prepared_statements") is not None and not preparing:
            item.add_marker(
                pytest.mark.skip(reason="needs PostgreSQL with DATABASE_PREPARED_STATEMENTS on")
            )


@pytest.fixture(autouse=True)
def _clean_cache():
    cache.clear()
    widget_cache.memo_clear()
    yield
    cache.clear()
    widget_cache.memo_clear()


@pytest.fixture(autouse=True)
def _throttle_clock_mid_window(monkeypatch):
    """Window throttles count per fixed window (a minute, an hour): a test whose requests straddle
    a window's end saw its count start again (a CI run: two sign-ins at 02:24:59.99, the third
    request at 02:25:00.01 was not refused). Within a test every throttle reads one instant, in the
    middle of the current minute, so all its hits fall in one window."""
    now = time.time()
    instant = now - now % 60 + 30
    monkeypatch.setattr(WindowRateThrottle, "timer", staticmethod(lambda: instant))


@pytest.fixture(autouse=True)
def _fast_hasher(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def api_client() -> APIClient:
    return APIClient()


@pytest.fixture
def org():
    return OrganizationFactory()


@pytest.fixture
def other_org():
    return OrganizationFactory()


@pytest.fixture
def agent_user(org):
    user = UserFactory(password=PASSWORD)
    MembershipFactory(user=user, org=org, role="agent")
    return user


@pytest.fixture
def operator_user(org):
    user = UserFactory(password=PASSWORD)
    MembershipFactory(user=user, org=org, role="owner")
    return user


def agent_access_token(client: APIClient, user) -> str:
    response = client.post(
        "/api/v1/auth/token", {"email": user.email, "password": PASSWORD}, format="json"
    )
    assert response.status_code == 200, response.content
    return response.json()["access"]


@pytest.fixture
def agent_client(agent_user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {agent_access_token(client, agent_user)}")
    return client


@pytest.fixture
def operator_client(operator_user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {agent_access_token(client, operator_user)}")
    return client
