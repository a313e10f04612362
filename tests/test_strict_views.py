"""Every DRF view reads the body before its action, and says in `Allow` what it answers (SPEC §5).

A route whose action takes no body (closing a conversation, rotating the widget token, a widget
logout) went through with a malformed or non-JSON body, and wrote.
"""

import pytest
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.test import APIClient
from rest_framework.views import APIView

from config.api import StrictViewMixin
from contacts.models import Contact, Device
from conversations.models import Conversation, Message
from identity.models import Organization
from tests.conversations.conftest import contact_with_trust, visitor_for
from tests.conversations.test_agent_api import base
from tests.factories import ConversationFactory
from tests.test_errors import post_raw

pytestmark = pytest.mark.django_db

MALFORMED = (b'{"oops', "application/json")
NOT_JSON = (b"hello", "text/plain")
PARSE_ERROR = {
    "error": {
        "code": "parse_error",
        "message": "Malformed JSON: Unterminated string starting at: line 1 column 2 (char 1)",
    }
}


def drf_views(patterns=None, prefix="") -> list[tuple[str, type]]:
    """Every DRF view class the URLconf routes to, with its route."""
    found = []
    for pattern in get_resolver().url_patterns if patterns is None else patterns:
        if isinstance(pattern, URLResolver):
            found += drf_views(pattern.url_patterns, prefix + str(pattern.pattern))
        elif isinstance(pattern, URLPattern):
            cls = getattr(pattern.callback, "cls", None)
            if cls is not None and issubclass(cls, APIView):
                found.append((prefix + str(pattern.pattern), cls))
    return found


def test_every_drf_view_in_the_urlconf_reads_the_body_first_and_keeps_allow_honest():
    # when
    routes = drf_views()

    # then: the widget's, the agents' and the probes' routes are all there, and all strict
    assert len(routes) > 30
    assert [route for route, cls in routes if not issubclass(cls, StrictViewMixin)] == []


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        (MALFORMED, 400, PARSE_ERROR),
        (
            NOT_JSON,
            415,
            {
                "error": {
                    "code": "unsupported_media_type",
                    "message": 'Unsupported media type "text/plain" in request.',
                }
            },
        ),
    ],
    ids=["malformed", "not-json"],
)
def test_closing_a_conversation_with_a_bad_body_is_refused_and_closes_nothing(
    org, agent_client, body, status, error
):
    # given: an open conversation
    conversation = ConversationFactory(contact=contact_with_trust(org, Contact.Trust.ANONYMOUS))

    # when: an agent closes it, sending a body that is no JSON object
    response = post_raw(agent_client, f"{base(org)}/conversations/{conversation.id}/close", *body)

    # then: refused as any other route refuses that body, and the conversation is still open
    assert response.status_code == status
    assert response.json() == error
    assert Conversation.objects.get(pk=conversation.pk).status == Conversation.Status.OPEN
    assert not Message.objects.exists()


@pytest.mark.parametrize(
    ("body", "status"), [(MALFORMED, 400), (NOT_JSON, 415)], ids=["malformed", "not-json"]
)
def test_rotating_the_widget_token_with_a_bad_body_is_refused_and_rotates_nothing(
    org, operator_client, body, status
):
    # given
    before = org.widget_token

    # when
    response = post_raw(operator_client, f"{base(org)}/widget-settings/rotate-token", *body)

    # then
    assert response.status_code == status
    assert Organization.objects.get(pk=org.pk).widget_token == before


def test_a_widget_logout_with_a_bad_body_is_refused_and_the_token_still_works(org):
    # given: a visitor on the widget
    visitor = visitor_for(contact_with_trust(org, Contact.Trust.NON_VERIFIED))

    # when
    response = post_raw(visitor.client, "/widget/logout", *MALFORMED)

    # then
    assert response.status_code == 400
    assert response.json() == PARSE_ERROR
    assert Device.objects.get(pk=visitor.device.pk).revoked_at is None
    assert visitor.client.get("/widget/me").status_code == 200


@pytest.mark.parametrize("content_type", ["text/plain", "application/json", ""])
def test_an_empty_body_is_no_body_whatever_its_type(org, content_type):
    # given
    visitor = visitor_for(contact_with_trust(org, Contact.Trust.ANONYMOUS))

    # when: the widget logs out with nothing in the body
    response = visitor.client.generic("POST", "/widget/logout", b"", content_type=content_type)

    # then
    assert response.status_code == 204
    assert Device.objects.get(pk=visitor.device.pk).revoked_at is not None


def test_another_orgs_conversation_with_a_bad_body_is_the_404_not_the_400(
    org, other_org, agent_client
):
    # given: a conversation of an org the agent is not a member of
    theirs = ConversationFactory(contact=contact_with_trust(other_org, Contact.Trust.ANONYMOUS))

    # when
    response = post_raw(
        agent_client, f"{base(other_org)}/conversations/{theirs.id}/close", *NOT_JSON
    )

    # then: the body tells nothing apart; the org check comes first
    assert response.status_code == 404
    assert Conversation.objects.get(pk=theirs.pk).status == Conversation.Status.OPEN


def test_a_method_the_route_does_not_take_is_the_405_whatever_its_body(client):
    # when
    response = client.generic("POST", "/healthz", b'{"oops', content_type="application/json")

    # then
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"


def test_an_unauthenticated_request_with_a_bad_body_is_the_401(org):
    # when: no credentials, and a malformed body
    response = post_raw(APIClient(), f"{base(org)}/conversations", *MALFORMED)

    # then
    assert response.status_code == 401


@pytest.mark.parametrize(
    ("path", "status", "allow"),
    [
        ("/healthz", 405, "GET, HEAD"),
        ("/api/v1/auth/token", 405, "POST"),
        ("/widget/logout", 401, "POST"),  # authentication comes first, as for every method
    ],
)
def test_options_is_not_served_and_allow_does_not_offer_it(client, path, status, allow):
    # when
    response = client.options(path)

    # then
    assert response.status_code == status
    assert response["Allow"] == allow
