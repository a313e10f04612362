"""Ids in query strings (`?after=`, `?assignee=`) are ASCII digits in the bigint range, or a 400."""

import pytest

from tests.factories import ConversationFactory, MessageFactory

pytestmark = pytest.mark.django_db

NOT_A_NUMBER = ["A valid integer is required."]
PAST_BIGINT = ["Ensure this value is less than or equal to 9223372036854775807."]
BAD_IDS = [
    pytest.param("%D9%A1", NOT_A_NUMBER, id="arabic-indic-one"),
    pytest.param("%D9%A1%D9%A2", NOT_A_NUMBER, id="arabic-indic-twelve"),
    pytest.param("%C2%B2", NOT_A_NUMBER, id="superscript-two"),
    pytest.param("%EF%BC%91", NOT_A_NUMBER, id="fullwidth-one"),
    pytest.param("1_0", NOT_A_NUMBER, id="underscore"),
    pytest.param("%201", NOT_A_NUMBER, id="leading-space"),
    pytest.param("1.0", NOT_A_NUMBER, id="decimal"),
    pytest.param("%2B1", NOT_A_NUMBER, id="plus-sign"),
    pytest.param("1" * 30, PAST_BIGINT, id="thirty-digits"),
]


def invalid(field: str, messages: list[str]) -> dict:
    return {
        "error": {
            "code": "invalid",
            "message": "The request is invalid.",
            "fields": {field: messages},
        }
    }


@pytest.fixture
def thread(org):
    conversation = ConversationFactory(contact__org=org)
    first, second = MessageFactory.create_batch(2, conversation=conversation)
    return conversation, first, second


@pytest.mark.parametrize(("value", "messages"), BAD_IDS)
def test_agent_thread_refuses_an_after_that_is_not_ascii_digits(
    org, agent_client, thread, value, messages
):
    # given
    conversation, _, _ = thread

    # when
    response = agent_client.get(
        f"/api/v1/orgs/{org.id}/conversations/{conversation.id}/messages?after={value}"
    )

    # then
    assert (response.status_code, response.json()) == (400, invalid("after", messages))


def test_agent_thread_still_reads_an_ascii_after(org, agent_client, thread):
    # given
    conversation, first, second = thread

    # when
    response = agent_client.get(
        f"/api/v1/orgs/{org.id}/conversations/{conversation.id}/messages?after={first.id}"
    )

    # then
    assert response.status_code == 200
    assert [row["id"] for row in response.json()["results"]] == [second.id]


@pytest.mark.parametrize(("value", "messages"), BAD_IDS)
def test_inbox_refuses_an_assignee_that_is_not_ascii_digits(org, agent_client, value, messages):
    # given
    ConversationFactory(contact__org=org)

    # when
    response = agent_client.get(f"/api/v1/orgs/{org.id}/conversations?assignee={value}")

    # then
    assert (response.status_code, response.json()) == (400, invalid("assignee", messages))


@pytest.mark.parametrize(("value", "messages"), BAD_IDS)
def test_widget_thread_refuses_an_after_that_is_not_ascii_digits(anonymous, value, messages):
    # given
    conversation = ConversationFactory(contact=anonymous.contact, device=anonymous.device)
    MessageFactory(conversation=conversation)

    # when
    response = anonymous.client.get(f"/widget/sessions/{conversation.id}/messages?after={value}")

    # then
    assert (response.status_code, response.json()) == (400, invalid("after", messages))
