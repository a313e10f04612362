"""Limits walk (SPEC §5): every write route refuses hostile bodies with a 4xx, writes nothing.

Each route is tried with wrong JSON types for each field, oversize values, NUL, lone surrogates,
NaN/Infinity and numbers past a float (1e400), duplicate keys, deep nesting, a body over 1 MiB,
non-JSON content types and wrong methods. Every answer must be a 4xx in the one error envelope
(`/v3/` adds `success: false`).
"""

import json
from dataclasses import dataclass, field

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from rest_framework.test import APIClient

from contacts.models import Contact, Device
from conversations.models import Conversation, Message
from identity.models import ApiKey, Organization, SigningSecret
from tests.conftest import agent_access_token
from tests.conversations.conftest import api_key_client, visitor_with_trust
from tests.factories import ConversationFactory

pytestmark = pytest.mark.django_db

ORG = "/api/v1/orgs/{org}"
CONVERSATION = ORG + "/conversations/{conversation}"
WIDGET_SESSION = "/widget/sessions/{session}"

# Wrong JSON types for a field of each kind: everything the kind is not.
WRONG_TYPES = {
    "str": [7, 1.5, True, [], {}, None],
    "email": [7, True, ["a@b.test"], {}, None],
    "choice": [7, True, [], {}, None],
    "int": ["300", 300.5, True, [], {}, None],
    "bool": ["true", 1, [], {}, None],
    "dict": ["{}", 7, True, [], None],
    "overrides": ["{}", 7, True, [], None],
    "list": ["https://a.test", 7, True, {}, None],
    "nullable_datetime": [7, True, [], {}],
    "nullable_int": ["1", 1.5, True, [], {}],
}
HUGE = "a" * 100_000  # far over every string limit, far under the 1 MiB body limit
OVERSIZE = {
    "str": HUGE,
    "email": "a" * 250 + "@example.test",
    "dict": {"k": "a" * (16 * 1024 + 1)},
    "overrides": {"headers": {"k": "a" * (16 * 1024 + 1)}},
    "list": ["https://a.test"] * 10_000,
}
PUBLIC_KEY_PEM = (
    ec.generate_private_key(ec.SECP256R1())
    .public_key()
    .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    .decode()
)


@dataclass(frozen=True)
class Route:
    name: str
    method: str
    path: str
    client: str
    fields: dict[str, str] = field(default_factory=dict)  # name -> kind
    base: dict = field(default_factory=dict)  # a body that is valid but for the field under test

    @property
    def takes_body(self) -> bool:
        return bool(self.fields)


ROUTES = [
    Route(
        "agent token",
        "post",
        "/api/v1/auth/token",
        "anon",
        {"email": "str", "password": "str"},
        {"email": "nobody@example.test", "password": "wrong"},
    ),
    Route(
        "agent refresh",
        "post",
        "/api/v1/auth/refresh",
        "anon",
        {"refresh": "str"},
        {"refresh": "not-a-token"},
    ),
    Route(
        "agent logout",
        "post",
        "/api/v1/auth/logout",
        "anon",
        {"refresh": "str"},
        {"refresh": "not-a-token"},
    ),
    Route(
        "v3 signin",
        "post",
        "/v3/auth/signin",
        "anon",
        {"email": "str", "password": "str"},
        {"email": "nobody@example.test", "password": "wrong"},
    ),
    Route(
        "v3 signinAnonymously",
        "post",
        "/v3/auth/signinAnonymously",
        "anon",
        {
            "id_project": "str",
            "firstname": "str",
            "lastname": "str",
            "email": "email",
            "attributes": "dict",
        },
        {
            "id_project": "{org_id}",
            "firstname": "Jo",
            "lastname": "Doe",
            "email": "jo@example.test",
            "attributes": {},
        },
    ),
    Route("v3 signinWithCustomToken", "post", "/v3/auth/signinWithCustomToken", "anon"),
    Route(
        "widget mint",
        "post",
        "/widget/contacts/unverified",
        "widget",
        {
            "email": "email",
            "name": "str",
            "customData": "dict",
            "externalId": "str",
            "method": "choice",
        },
        {
            "email": "jo@example.test",
            "name": "Jo",
            "customData": {},
            "externalId": "ext_1",
            "method": "browser",
        },
    ),
    Route(
        "authenticate-user",
        "post",
        "/widget/authenticate-user",
        "api_key",
        {
            "email": "email",
            "name": "str",
            "user_id": "str",
            "phone": "str",
            "avatar_url": "str",
            "language": "str",
            "customData": "dict",
            "chat_context": "str",
            "http_action_overrides": "overrides",
        },
        {
            "email": "jo@example.test",
            "name": "Jo",
            "user_id": "u1",
            "phone": "",
            "avatar_url": "",
            "language": "en",
            "customData": {},
            "chat_context": "",
            "http_action_overrides": {},
        },
    ),
    Route(
        "adopt",
        "post",
        "/widget/contacts/adopt",
        "verified",
        {"previousToken": "str"},
        {"previousToken": "{visitor_token}"},
    ),
    Route(
        "open session",
        "post",
        "/widget/sessions",
        "visitor",
        {"externalId": "str", "fields": "dict"},
        {"externalId": "ext_1", "fields": {}},
    ),
    Route(
        "visitor message",
        "post",
        WIDGET_SESSION + "/messages",
        "visitor",
        {"text": "str"},
        {"text": "hello"},
    ),
    Route(
        "create api key",
        "post",
        ORG + "/api-keys",
        "operator",
        {"name": "str", "scopes": "list", "expires_at": "nullable_datetime"},
        {"name": "bot", "scopes": ["contacts:read"], "expires_at": None},
    ),
    Route(
        "create signing secret",
        "post",
        ORG + "/signing-secrets",
        "operator",
        {"algorithm": "choice", "public_key": "str"},
        {"algorithm": "ES256", "public_key": PUBLIC_KEY_PEM},
    ),
    Route(
        "widget settings",
        "patch",
        ORG + "/widget-settings",
        "operator",
        {
            "collectUserData": "bool",
            "extraDataCollectionFields": "list",
            "requireVerifiedIdentity": "bool",
            "theme": "dict",
            "allowedOrigins": "list",
            "mergeDeviceHistoryOnVerify": "bool",
            "anonymousTokenLifetime": "int",
            "nonVerifiedTokenLifetime": "int",
            "verifiedTokenLifetime": "int",
        },
        {"collectUserData": True, "theme": {}, "anonymousTokenLifetime": 300},
    ),
    Route(
        "agent message",
        "post",
        CONVERSATION + "/messages",
        "operator",
        {"text": "str"},
        {"text": "hello"},
    ),
    Route("close", "post", CONVERSATION + "/close", "operator"),
    Route(
        "assign",
        "post",
        CONVERSATION + "/assign",
        "operator",
        {"assignee": "nullable_int"},
        {"assignee": None},
    ),
]
BODY_ROUTES = [route for route in ROUTES if route.takes_body]
IDS = [route.name for route in ROUTES]


class World:
    """An org, a visitor with a conversation, and a client for each kind of caller."""

    def __init__(self, org, operator_user):
        self.org = org
        self.visitor = visitor_with_trust(org, Contact.Trust.ANONYMOUS)
        self.session = ConversationFactory(contact=self.visitor.contact, device=self.visitor.device)
        self.conversation = ConversationFactory(org=org, contact=self.visitor.contact)
        operator = APIClient()
        operator.credentials(
            HTTP_AUTHORIZATION=f"Bearer {agent_access_token(operator, operator_user)}"
        )
        self.clients = {
            "anon": APIClient(),
            "widget": APIClient(HTTP_X_WIDGET_TOKEN=org.widget_token),
            "visitor": self.visitor.client,
            "verified": visitor_with_trust(org, Contact.Trust.VERIFIED).client,
            "api_key": api_key_client(org, ApiKey.Scope.WIDGET_AUTHENTICATE),
            "operator": operator,
        }

    def path(self, route: Route) -> str:
        return route.path.format(
            org=self.org.id, conversation=self.conversation.id, session=self.session.id
        )

    def base(self, route: Route) -> dict:
        return {
            name: value.format(org_id=self.org.id, visitor_token=self.visitor.token)
            if isinstance(value, str)
            else value
            for name, value in route.base.items()
        }

    def send(self, route: Route, body, *, content_type="application/json", method=None):
        raw = body if isinstance(body, bytes | str) else json.dumps(body)
        client = self.clients[route.client]
        return getattr(client, method or route.method)(
            self.path(route), raw, content_type=content_type
        )

    def snapshot(self) -> dict:
        return {
            "counts": [
                model.objects.count()
                for model in (Contact, Device, Conversation, Message, ApiKey, SigningSecret)
            ],
            "orgs": list(Organization.objects.order_by("pk").values()),
            "conversations": list(
                Conversation.objects.order_by("pk").values("pk", "status", "assignee_id")
            ),
            "api_keys": list(ApiKey.objects.order_by("pk").values("pk", "revoked_at")),
        }


@pytest.fixture
def world(org, operator_user):
    return World(org, operator_user)


def assert_refused(world: World, route: Route, response, before: dict, status=None):
    assert 400 <= response.status_code < 500, (response.status_code, response.content[:300])
    if status is not None:
        assert response.status_code == status, response.content[:300]
    body = response.json()
    expected_keys = {"error", "success"} if route.path.startswith("/v3/") else {"error"}
    assert set(body) == expected_keys, body
    if route.path.startswith("/v3/"):
        assert body["success"] is False
    error = body["error"]
    assert set(error) <= {"code", "message", "fields"}, error
    assert isinstance(error["code"], str) and error["code"]
    assert isinstance(error["message"], str) and error["message"]
    assert world.snapshot() == before


def wrong_type_cases():
    for route in BODY_ROUTES:
        for name, kind in route.fields.items():
            for value in WRONG_TYPES[kind]:
                yield pytest.param(route, name, value, id=f"{route.name}-{name}-{value!r}")


@pytest.mark.parametrize(("route", "name", "value"), list(wrong_type_cases()))
def test_a_wrong_json_type_is_refused(world, route, name, value):
    # given
    before = world.snapshot()

    # when
    response = world.send(route, {**world.base(route), name: value})

    # then
    assert_refused(world, route, response, before)


def oversize_cases():
    for route in BODY_ROUTES:
        for name, kind in route.fields.items():
            if kind in OVERSIZE:
                yield pytest.param(route, name, OVERSIZE[kind], id=f"{route.name}-{name}")


@pytest.mark.parametrize(("route", "name", "value"), list(oversize_cases()))
def test_an_oversize_value_is_refused(world, route, name, value):
    # given
    before = world.snapshot()

    # when
    response = world.send(route, {**world.base(route), name: value})

    # then
    assert_refused(world, route, response, before)


def first_field(route: Route) -> str:
    return next(iter(route.fields))


RAW_BODIES = {
    "NUL": lambda name: json.dumps({name: "a\u0000b"}),
    "lone surrogate": lambda name: f'{{"{name}": "\\ud800"}}',
    "lone low surrogate in a key": lambda name: f'{{"\\udc00": 1, "{name}": "x"}}',
    "NaN": lambda name: f'{{"{name}": NaN}}',
    "Infinity": lambda name: f'{{"{name}": Infinity}}',
    "-Infinity": lambda name: f'{{"{name}": -Infinity}}',
    "a number past a float's range": lambda name: f'{{"{name}": 1e400}}',
    "such a number nested": lambda name: f'{{"{name}": {{"k": [1, -1e400]}}}}',
    "duplicate keys": lambda name: f'{{"{name}": "a", "{name}": "b"}}',
    "deeply nested": lambda name: f'{{"{name}": {"[" * 5000 + "]" * 5000}}}',
    "nested past the parser limit": lambda name: f'{{"{name}": {"[" * 40 + "]" * 40}}}',
    "truncated": lambda name: f'{{"{name}": "a',
    "not UTF-8": lambda name: b'{"' + name.encode() + b'": "\xff\xfe"}',
    "a top-level array": lambda name: "[]",
    "a top-level string": lambda name: '"x"',
    "a top-level null": lambda name: "null",
}


@pytest.mark.parametrize("route", BODY_ROUTES, ids=[r.name for r in BODY_ROUTES])
@pytest.mark.parametrize("case", list(RAW_BODIES))
def test_a_hostile_json_body_is_refused_as_400(world, route, case):
    # given
    before = world.snapshot()
    body = RAW_BODIES[case](first_field(route))

    # when
    response = world.send(route, body)

    # then
    assert_refused(world, route, response, before, status=400)


@pytest.mark.parametrize("route", ROUTES, ids=IDS)
def test_a_body_over_one_mebibyte_is_413(world, route):
    # given
    before = world.snapshot()
    body = json.dumps({first_field(route) if route.takes_body else "x": "a" * (1024 * 1024)})

    # when
    response = world.send(route, body)

    # then
    assert_refused(world, route, response, before, status=413)


@pytest.mark.parametrize("route", BODY_ROUTES, ids=[r.name for r in BODY_ROUTES])
@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"],
)
def test_a_non_json_content_type_is_415(world, route, content_type):
    # given
    before = world.snapshot()

    # when
    response = world.send(route, "a=b", content_type=content_type)

    # then
    assert_refused(world, route, response, before, status=415)


@pytest.mark.parametrize("route", ROUTES, ids=IDS)
@pytest.mark.parametrize("method", ["put", "delete"])
def test_a_wrong_method_is_405(world, route, method):
    # given
    before = world.snapshot()

    # when
    response = world.send(route, world.base(route), method=method)

    # then
    assert_refused(world, route, response, before, status=405)


@pytest.mark.parametrize("route", BODY_ROUTES, ids=[r.name for r in BODY_ROUTES])
def test_the_base_bodies_are_within_the_limits(world, route):
    """Guards the walk itself: with nothing hostile, no route refuses its base body as invalid."""
    response = world.send(route, world.base(route))

    assert response.status_code < 500
    fields = response.json().get("error", {}).get("fields", {}) if response.content else {}
    assert not set(fields) & set(route.base), fields
