"""Agent tokens signed with our own key but holding claims we never write are the 401, not a 500.

Only someone holding the agent-token key can make one; the check is there so that the server's
answer to any token is a clean one.
"""

import jwt
import pytest
from django.conf import settings
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken

from tests.conftest import PASSWORD
from tests.identity.test_agent_auth import UNAUTHENTICATED, sign_in

pytestmark = pytest.mark.django_db

DROP = object()


def resigned(token: str, **changes) -> str:
    """`token` with its claims changed, signed again with the server's own agent-token key."""
    key = settings.SIMPLE_JWT["SIGNING_KEY"]
    claims = jwt.decode(token, options={"verify_signature": False})
    claims.update(changes)
    claims = {name: value for name, value in claims.items() if value is not DROP}
    return jwt.encode(claims, key, algorithm="HS256")


BROKEN_CLAIMS = [
    {"user_id": "abc"},
    {"user_id": "2\x00"},
    {"user_id": [1]},
    {"user_id": True},
    {"user_id": 0},
    {"user_id": "0"},
    {"user_id": "-1"},
    {"user_id": " 1"},
    {"user_id": 2**63},
    {"user_id": str(2**63)},
    {"user_id": DROP},
    {"jti": DROP},
    {"jti": 7},
    {"exp": 10**30},
    {"exp": 2**63},
]
IDS = [
    "user_id-text",
    "user_id-nul",
    "user_id-list",
    "user_id-bool",
    "user_id-zero",
    "user_id-zero-text",
    "user_id-negative-text",
    "user_id-padded-text",
    "user_id-past-bigint",
    "user_id-past-bigint-text",
    "no-user_id",
    "no-jti",
    "jti-number",
    "exp-far-future",
    "exp-past-int64",
]


@pytest.mark.parametrize("as_integer", [False, True], ids=["as-written", "integer-user_id"])
def test_a_token_signed_again_unchanged_still_works(api_client, agent_user, as_integer):
    # given: the helper's re-signing changes nothing by itself; simplejwt writes the user's id
    # as text, and its older releases wrote an integer, which is still honoured
    tokens = sign_in(api_client, agent_user.email, PASSWORD).json()
    changes = {"user_id": agent_user.pk} if as_integer else {}
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {resigned(tokens['access'], **changes)}")

    # then
    assert api_client.get("/api/v1/orgs").status_code == 200
    refresh = resigned(tokens["refresh"], **changes)
    refreshed = api_client.post("/api/v1/auth/refresh", {"refresh": refresh}, format="json")
    assert refreshed.status_code == 200


@pytest.mark.parametrize("changes", BROKEN_CLAIMS, ids=IDS)
def test_an_access_token_with_claims_we_never_write_is_the_401(api_client, agent_user, changes):
    # given
    access = sign_in(api_client, agent_user.email, PASSWORD).json()["access"]
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {resigned(access, **changes)}")

    # when
    response = api_client.get("/api/v1/orgs")

    # then
    assert response.status_code == 401
    assert response.json() == UNAUTHENTICATED


@pytest.mark.parametrize("route", ["refresh", "logout"])
@pytest.mark.parametrize("changes", BROKEN_CLAIMS, ids=IDS)
def test_a_refresh_token_with_claims_we_never_write_is_the_401(
    api_client, agent_user, route, changes
):
    # given
    refresh = sign_in(api_client, agent_user.email, PASSWORD).json()["refresh"]

    # when
    response = api_client.post(
        f"/api/v1/auth/{route}", {"refresh": resigned(refresh, **changes)}, format="json"
    )

    # then: refused, and nothing blacklisted
    assert response.status_code == 401
    assert response.json() == UNAUTHENTICATED
    assert BlacklistedToken.objects.count() == 0
