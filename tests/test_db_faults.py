"""A database that fails mid-request: a retryable 503 envelope, no stack trace, nothing written."""

from contextlib import contextmanager

import pytest
from django.db import InterfaceError, OperationalError, connection
from django_redis.exceptions import ConnectionInterrupted
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import OutOfMemoryError, ReadOnlyError

from contacts.models import Contact, Device
from tests.contacts.conftest import mint, widget_client

pytestmark = pytest.mark.django_db

SERVICE_UNAVAILABLE = {
    "error": {
        "code": "service_unavailable",
        "message": "The service is temporarily unavailable.",
    }
}


@pytest.fixture
def widget(org):
    return widget_client(org)


@contextmanager
def database_down(error: type[Exception]):
    """Every query on the default connection raises `error`, as a dropped server would."""

    def refuse(execute, sql, params, many, context):
        raise error("server closed the connection unexpectedly")

    with connection.execute_wrapper(refuse):
        yield


@pytest.mark.parametrize("error", [OperationalError, InterfaceError])
def test_a_widget_mint_during_an_outage_is_a_503_envelope_and_writes_nothing(widget, error):
    # when
    with database_down(error):
        response = mint(widget, {"name": "Jo"})

    # then
    assert response.status_code == 503
    assert response.json() == SERVICE_UNAVAILABLE
    assert b"Traceback" not in response.content
    assert Contact.objects.count() == 0
    assert Device.objects.count() == 0


def test_a_v3_route_during_an_outage_adds_success_false(api_client, org):
    # when
    with database_down(OperationalError):
        response = api_client.post(
            "/v3/auth/signinAnonymously", {"id_project": str(org.id)}, format="json"
        )

    # then
    assert response.status_code == 503
    assert response.json() == {**SERVICE_UNAVAILABLE, "success": False}
    assert Contact.objects.count() == 0


def test_readyz_reports_the_outage_as_a_503(api_client):
    # when
    with database_down(OperationalError):
        response = api_client.get("/readyz")

    # then
    assert response.status_code == 503
    assert response.json() == {"status": "database unavailable"}


def test_the_service_answers_again_once_the_database_is_back(widget):
    # given
    with database_down(OperationalError):
        assert mint(widget).status_code == 503

    # when
    response = mint(widget)

    # then
    assert response.status_code == 201
    assert Contact.objects.count() == 1


@pytest.mark.parametrize(
    "error", [RedisConnectionError, ConnectionInterrupted, OutOfMemoryError, ReadOnlyError]
)
def test_a_mint_while_redis_is_down_is_a_503_envelope_and_writes_nothing(
    widget, monkeypatch, error
):
    # given: the shared cache behind the throttles refuses connections, or refuses writes (full
    # under noeviction, a read-only replica)
    def refuse(*args, **kwargs):
        raise error("Connection refused")

    monkeypatch.setattr("identity.api.throttles.counters_hit", refuse)

    # when
    response = mint(widget, {"name": "Jo"})

    # then: no identity is minted without its rate limit
    assert response.status_code == 503
    assert response.json() == SERVICE_UNAVAILABLE
    assert Contact.objects.count() == 0


@pytest.mark.parametrize("error", [RedisConnectionError, OutOfMemoryError])
@pytest.mark.parametrize("path", ["/admin/login/", "/console/login"])
def test_a_sign_in_form_while_redis_fails_is_a_503_envelope(
    client, agent_user, monkeypatch, error, path
):
    # given: the lockout counters behind the admin's and the console's sign-in are unreachable
    def refuse(*args, **kwargs):
        raise error("Connection refused")

    monkeypatch.setattr("identity.lockout.cache.get_many", refuse)
    monkeypatch.setattr("identity.lockout.counters_hit", refuse)

    # when
    response = client.post(path, {"username": agent_user.email, "password": "whatever"})

    # then: the 503 the API answers, not a 500
    assert response.status_code == 503
    assert response.json() == SERVICE_UNAVAILABLE


@pytest.mark.parametrize("error", [RedisConnectionError, OutOfMemoryError, OperationalError])
def test_a_widget_request_from_a_page_while_a_store_fails_is_a_503_envelope(
    org, monkeypatch, error
):
    # given: the widget token's org cannot be looked up (the CORS check does it first, outside
    # any view, for every request a customer's page sends with its Origin)
    def refuse(*args, **kwargs):
        raise error("Connection refused")

    monkeypatch.setattr("contacts.middleware.organization_for_widget_token", refuse)

    # when
    response = widget_client(org).get("/widget/config", HTTP_ORIGIN="https://shop.example.com")

    # then
    assert response.status_code == 503
    assert response.json() == SERVICE_UNAVAILABLE
