"""Org API keys: the operator API, the services, and the misuse grid of ApiKeyAuthentication."""

import hashlib
import logging
import re
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.urls import include, path
from django.utils import timezone
from rest_framework import serializers
from rest_framework.response import Response

from identity import services
from identity.api.access import OrgScopedViewSet
from identity.models import ApiKey
from tests.conftest import agent_access_token
from tests.factories import MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db

UNAUTHENTICATED = {
    "error": {
        "code": "not_authenticated",
        "message": "Authentication credentials were not provided or are not valid.",
    }
}
FORBIDDEN = {
    "error": {
        "code": "permission_denied",
        "message": "You do not have permission to perform this action.",
    }
}
NOT_FOUND = {"error": {"code": "not_found", "message": "Not found."}}
KEY_SHAPE = re.compile(r"^csk_[0-9a-f]{16}_[A-Za-z0-9]{40}$")


class ProbeViewSet(OrgScopedViewSet):
    """A stand-in for the org routes integrations call (contacts, conversations)."""

    required_scopes = {"list": "contacts:read"}

    def list(self, request, org_id):
        return Response({"org": str(self.access.org.pk)})


# This module doubles as a URLconf for the tests marked `@pytest.mark.urls(__name__)`.
urlpatterns = [
    path("probe/<uuid:org_id>/contacts", ProbeViewSet.as_view({"get": "list"})),
    path("", include("config.urls")),
]
probe_routes = pytest.mark.urls(__name__)


def iso(value) -> str | None:
    return serializers.DateTimeField().to_representation(value) if value else None


def keys_url(org) -> str:
    return f"/api/v1/orgs/{org.id}/api-keys"


def issue(org, *, scopes=("contacts:read",), name="CRM sync", expires_at=None, created_by=None):
    return services.api_key_create(
        org=org, created_by=created_by, name=name, scopes=list(scopes), expires_at=expires_at
    )


def bearer(client, key: str):
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client


# --- POST /api-keys ------------------------------------------------------------------------


def test_operator_creates_a_key_and_sees_it_exactly_once(operator_client, operator_user, org):
    # when
    response = operator_client.post(
        keys_url(org), {"name": "CRM sync", "scopes": ["contacts:read"]}, format="json"
    )

    # then
    body = response.json()
    row = ApiKey.objects.get()
    assert response.status_code == 201
    assert KEY_SHAPE.match(body["key"])
    assert body == {
        "id": row.id,
        "name": "CRM sync",
        "prefix": row.prefix,
        "scopes": ["contacts:read"],
        "key": body["key"],
        "created_at": iso(row.created_at),
        "expires_at": None,
    }
    assert body["key"].startswith(row.prefix + "_")
    assert row.org == org
    assert row.created_by == operator_user
    assert row.digest == hashlib.sha256(body["key"].encode()).hexdigest()
    assert body["key"].split("_")[2] not in (row.digest, row.public_id, row.name)


def test_create_with_an_expiry_and_duplicate_scopes(operator_client, org):
    # given
    expires_at = timezone.now() + timedelta(days=30)

    # when
    response = operator_client.post(
        keys_url(org),
        {
            "name": "  Backend  ",
            "scopes": ["conversations:read", "widget:authenticate", "conversations:read"],
            "expires_at": expires_at.isoformat(),
        },
        format="json",
    )

    # then: scopes deduplicated, in their declared order; the name trimmed
    row = ApiKey.objects.get()
    assert response.status_code == 201
    assert response.json()["scopes"] == ["widget:authenticate", "conversations:read"]
    assert response.json()["expires_at"] == iso(expires_at)
    assert row.name == "Backend"
    assert row.expires_at == expires_at


@pytest.mark.parametrize(
    ("payload", "fields"),
    [
        (
            {"name": "x", "scopes": ["contacts:read", "keys:admin"]},
            {
                "scopes": [
                    "Unknown scope 'keys:admin'. Valid scopes: widget:authenticate, "
                    "contacts:read, contacts:write, conversations:read, conversations:write."
                ]
            },
        ),
        ({"name": "x", "scopes": []}, {"scopes": ["This list may not be empty."]}),
        ({"name": "x"}, {"scopes": ["This field is required."]}),
        (
            {"name": "x", "scopes": "contacts:read"},
            {"scopes": ['Expected a list of items but got type "str".']},
        ),
        ({"name": "x", "scopes": [1]}, {"scopes.0": ["Must be a string."]}),
        ({"scopes": ["contacts:read"]}, {"name": ["This field is required."]}),
        ({"name": "", "scopes": ["contacts:read"]}, {"name": ["This field may not be blank."]}),
        ({"name": "   ", "scopes": ["contacts:read"]}, {"name": ["This field may not be blank."]}),
        ({"name": 5, "scopes": ["contacts:read"]}, {"name": ["Must be a string."]}),
        (
            {"name": "n" * 201, "scopes": ["contacts:read"]},
            {"name": ["Ensure this field has no more than 200 characters."]},
        ),
        (
            {"name": "x", "scopes": ["contacts:read"], "expires_at": "2001-01-01T00:00:00Z"},
            {"expires_at": ["Must be in the future."]},
        ),
        (
            {"name": "x", "scopes": ["contacts:read"], "expires_at": "tomorrow"},
            {
                "expires_at": [
                    "Datetime has wrong format. Use one of these formats instead: "
                    "YYYY-MM-DDThh:mm[:ss[.uuuuuu]][+HH:MM|-HH:MM|Z]."
                ]
            },
        ),
    ],
)
def test_invalid_create_is_400_with_field_messages_and_writes_nothing(
    operator_client, org, payload, fields
):
    response = operator_client.post(keys_url(org), payload, format="json")

    assert response.status_code == 400
    assert response.json() == {
        "error": {"code": "invalid", "message": "The request is invalid.", "fields": fields}
    }
    assert ApiKey.objects.count() == 0


def test_service_refuses_what_the_serializer_would_let_through(org):
    # the admin calls the service directly, so the service checks on its own
    with pytest.raises(ValidationError, match="at least one scope"):
        services.api_key_create(org=org, created_by=None, name="x", scopes=[], expires_at=None)
    with pytest.raises(ValidationError, match="1 to 200 characters"):
        services.api_key_create(
            org=org, created_by=None, name=" " * 3, scopes=["contacts:read"], expires_at=None
        )
    assert ApiKey.objects.count() == 0


# --- who may manage keys ----------------------------------------------------------------------


def test_a_plain_agent_cannot_create_list_or_revoke_keys(agent_client, org):
    # given
    issued = issue(org)

    # when
    created = agent_client.post(
        keys_url(org), {"name": "x", "scopes": ["contacts:read"]}, format="json"
    )
    listed = agent_client.get(keys_url(org))
    revoked = agent_client.delete(f"{keys_url(org)}/{issued.api_key.id}")

    # then
    assert [created.status_code, listed.status_code, revoked.status_code] == [403, 403, 403]
    assert created.json() == listed.json() == revoked.json() == FORBIDDEN
    assert ApiKey.objects.count() == 1
    assert ApiKey.objects.get().revoked_at is None


def test_an_admin_may_manage_keys(api_client, org):
    # given
    admin = UserFactory()
    MembershipFactory(user=admin, org=org, role="admin")
    bearer(api_client, agent_access_token(api_client, admin))

    # when
    response = api_client.post(
        keys_url(org), {"name": "x", "scopes": ["contacts:read"]}, format="json"
    )

    # then
    assert response.status_code == 201


def test_an_api_key_cannot_manage_keys_even_with_every_scope(api_client, org):
    # given
    issued = issue(org, scopes=ApiKey.Scope.values)
    bearer(api_client, issued.key)

    # when
    created = api_client.post(
        keys_url(org), {"name": "x", "scopes": ["contacts:read"]}, format="json"
    )
    listed = api_client.get(keys_url(org))
    revoked = api_client.delete(f"{keys_url(org)}/{issued.api_key.id}")

    # then
    assert [created.status_code, listed.status_code, revoked.status_code] == [403, 403, 403]
    assert created.json() == FORBIDDEN
    assert ApiKey.objects.count() == 1
    assert ApiKey.objects.get().revoked_at is None


def test_another_orgs_api_key_on_key_routes_is_404(api_client, org, other_org):
    bearer(api_client, issue(other_org, scopes=ApiKey.Scope.values).key)

    response = api_client.get(keys_url(org))

    assert response.status_code == 404
    assert response.json() == NOT_FOUND


def test_key_routes_need_authentication(api_client, org):
    listed = api_client.get(keys_url(org))
    created = api_client.post(
        keys_url(org), {"name": "x", "scopes": ["contacts:read"]}, format="json"
    )

    assert listed.status_code == created.status_code == 401
    assert listed.json() == created.json() == UNAUTHENTICATED
    assert ApiKey.objects.count() == 0


def test_an_operator_of_another_org_gets_404(operator_client, other_org):
    response = operator_client.post(
        keys_url(other_org), {"name": "x", "scopes": ["contacts:read"]}, format="json"
    )

    assert response.status_code == 404
    assert response.json() == NOT_FOUND
    assert ApiKey.objects.count() == 0


@pytest.mark.parametrize(
    "org_id", ["not-a-uuid", "------------------------------------", "1", "ORG"]
)
def test_a_malformed_org_id_is_404(operator_client, org_id):
    response = operator_client.get(f"/api/v1/orgs/{org_id}/api-keys")

    assert response.status_code == 404
    assert response.json() == NOT_FOUND


# --- GET /api-keys -----------------------------------------------------------------------------


def test_list_shows_the_orgs_keys_newest_first_without_key_or_digest(
    operator_client, operator_user, org, other_org
):
    # given
    older = issue(org, name="old", created_by=operator_user)
    newer = issue(org, name="new", scopes=["widget:authenticate"])
    services.api_key_revoke(org=org, api_key_id=older.api_key.id, revoked_by=None)
    issue(other_org, name="theirs")
    older.api_key.refresh_from_db()

    # when
    response = operator_client.get(keys_url(org))

    # then
    assert response.status_code == 200
    assert response.json() == [
        {
            "id": newer.api_key.id,
            "name": "new",
            "prefix": newer.api_key.prefix,
            "scopes": ["widget:authenticate"],
            "created_at": iso(newer.api_key.created_at),
            "expires_at": None,
            "revoked_at": None,
            "last_used_at": None,
            "created_by": None,
        },
        {
            "id": older.api_key.id,
            "name": "old",
            "prefix": older.api_key.prefix,
            "scopes": ["contacts:read"],
            "created_at": iso(older.api_key.created_at),
            "expires_at": None,
            "revoked_at": iso(older.api_key.revoked_at),
            "last_used_at": None,
            "created_by": operator_user.email,
        },
    ]
    for secret in (older.key, newer.key, older.api_key.digest, newer.api_key.digest):
        assert secret not in response.content.decode()


def test_list_queries_do_not_grow_with_the_number_of_keys(
    operator_client, operator_user, org, django_assert_num_queries
):
    # given
    issue(org, created_by=operator_user)
    with django_assert_num_queries(3):  # the agent, the membership, the keys
        operator_client.get(keys_url(org))

    # when
    for _ in range(5):
        issue(org, created_by=UserFactory())

    # then
    with django_assert_num_queries(3):
        response = operator_client.get(keys_url(org))
    assert len(response.json()) == 6


# --- DELETE /api-keys/{id} ---------------------------------------------------------------------


def test_revoke_keeps_the_row_and_is_idempotent(operator_client, org):
    # given
    issued = issue(org)

    # when
    first = operator_client.delete(f"{keys_url(org)}/{issued.api_key.id}")
    revoked_at = ApiKey.objects.get().revoked_at
    second = operator_client.delete(f"{keys_url(org)}/{issued.api_key.id}")

    # then
    assert first.status_code == second.status_code == 204
    assert first.content == second.content == b""
    assert revoked_at is not None
    assert ApiKey.objects.get().revoked_at == revoked_at


def test_revoking_another_orgs_key_is_404_and_leaves_it_alone(operator_client, org, other_org):
    theirs = issue(other_org)

    response = operator_client.delete(f"{keys_url(org)}/{theirs.api_key.id}")

    assert response.status_code == 404
    assert response.json() == NOT_FOUND
    assert ApiKey.objects.get().revoked_at is None


@pytest.mark.parametrize("key_id", ["999999", "abc", "1.5", "-1", "99999999999999999999999"])
def test_revoking_an_unknown_or_malformed_id_is_404(operator_client, org, key_id):
    issue(org)

    response = operator_client.delete(f"{keys_url(org)}/{key_id}")

    assert response.status_code == 404
    assert ApiKey.objects.get().revoked_at is None


def test_get_on_a_single_key_is_405(operator_client, org):
    issued = issue(org)

    response = operator_client.get(f"{keys_url(org)}/{issued.api_key.id}")

    assert response.status_code == 405


# --- the misuse grid: a key on an integration route ----------------------------------------------


def probe(client, org, **extra):
    return client.get(f"/probe/{org.id}/contacts", **extra)


@probe_routes
def test_a_key_with_the_scope_reaches_its_orgs_route_and_marks_last_use(api_client, org):
    issued = issue(org)

    response = probe(bearer(api_client, issued.key), org)

    assert response.status_code == 200
    assert response.json() == {"org": str(org.id)}
    assert ApiKey.objects.get().last_used_at is not None


def _wrong_secret(key: str) -> str:
    prefix, secret = key.rsplit("_", 1)
    return f"{prefix}_{secret[::-1] if secret[::-1] != secret else 'A' * 40}"


@probe_routes
@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        "Bearer",
        "Bearer csk_",
        "Bearer csk_nope",
        "Bearer csk_0123456789abcdef_" + "A" * 40,  # well formed, unknown public id
        "Bearer csk_{public_id}_" + "short",
        "Bearer {wrong_secret}",
        "Bearer {key} extra",
        "Basic {key}",
        "Bearer \u00e9csk_",
    ],
)
def test_unusable_keys_all_get_the_same_401(api_client, org, authorization):
    # given
    issued = issue(org)
    if authorization is not None:
        authorization = authorization.format(
            key=issued.key,
            public_id=issued.api_key.public_id,
            wrong_secret=_wrong_secret(issued.key),
        )
        api_client.credentials(HTTP_AUTHORIZATION=authorization)

    # when
    response = probe(api_client, org)

    # then
    assert response.status_code == 401
    assert response.json() == UNAUTHENTICATED
    assert ApiKey.objects.get().last_used_at is None


@probe_routes
def test_a_revoked_key_is_refused_on_the_very_next_request(api_client, operator_client, org):
    # given: a key in use
    issued = issue(org)
    assert probe(bearer(api_client, issued.key), org).status_code == 200

    # when
    operator_client.delete(f"{keys_url(org)}/{issued.api_key.id}")

    # then
    response = probe(api_client, org)
    assert response.status_code == 401
    assert response.json() == UNAUTHENTICATED


@probe_routes
def test_an_expired_key_is_refused(api_client, org):
    issued = issue(org, expires_at=timezone.now() + timedelta(minutes=5))
    ApiKey.objects.filter(pk=issued.api_key.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )

    response = probe(bearer(api_client, issued.key), org)

    assert response.status_code == 401
    assert response.json() == UNAUTHENTICATED


@probe_routes
def test_another_orgs_key_gets_404_on_this_orgs_route(api_client, org, other_org):
    response = probe(bearer(api_client, issue(other_org).key), org)

    assert response.status_code == 404
    assert response.json() == NOT_FOUND


@probe_routes
def test_a_key_without_the_routes_scope_gets_403(api_client, org):
    issued = issue(org, scopes=["widget:authenticate", "contacts:write"])

    response = probe(bearer(api_client, issued.key), org)

    assert response.status_code == 403
    assert response.json() == FORBIDDEN


@probe_routes
@pytest.mark.parametrize(
    "query",
    [
        "api_key={key}",
        "key={key}",
        "access_token={key}",
        "q=+{key}",
        "{key}",
        "token=csk_anything",
        "x=Bearer%20{key}",
    ],
)
def test_a_key_in_the_query_string_never_authenticates(api_client, org, query):
    # given: a working key, sent where it leaks into logs
    issued = issue(org)
    url = f"/probe/{org.id}/contacts?{query.format(key=issued.key)}"

    # when: alone, and even alongside the same key in the header
    alone = api_client.get(url)
    with_header = bearer(api_client, issued.key).get(url)

    # then
    assert alone.status_code == with_header.status_code == 401
    assert alone.json() == with_header.json() == UNAUTHENTICATED
    assert ApiKey.objects.get().last_used_at is None


@probe_routes
def test_an_unrelated_query_string_does_not_disturb_a_header_key(api_client, org):
    issued = issue(org)

    response = bearer(api_client, issued.key).get(f"/probe/{org.id}/contacts?search=csk")

    assert response.status_code == 200


@probe_routes
def test_the_key_never_appears_in_any_log_record(api_client, operator_client, org, caplog):
    # given: every logger at DEBUG, django.request included
    for name in (None, "django.request", "django.server", "identity"):
        caplog.set_level(logging.DEBUG, logger=name)

    # when: a key is created, used, misused and revoked
    created = operator_client.post(
        keys_url(org), {"name": "CRM", "scopes": ["contacts:read"]}, format="json"
    ).json()
    key = created["key"]
    probe(bearer(api_client, key), org)
    probe(bearer(api_client, _wrong_secret(key)), org)
    api_client.get(f"/probe/{org.id}/contacts?api_key={key}")
    operator_client.delete(f"{keys_url(org)}/{created['id']}")
    probe(bearer(api_client, key), org)

    # then: records were written, none with the key's secret part
    secret = key.rsplit("_", 1)[1]
    assert caplog.records
    for record in caplog.records:
        rendered = f"{record.getMessage()} {record.args!r}"
        assert secret not in rendered
        assert _wrong_secret(key).rsplit("_", 1)[1] not in rendered
