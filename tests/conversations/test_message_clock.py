"""One clock for a conversation's messages, whichever app server writes them (docs/decisions.md).

A visitor's post on PostgreSQL is stamped by the database's `clock_timestamp()` in its own
statement. Agents' replies and close notices are written by whichever app server the agent's
request reached, whose clock may run behind or ahead of the others'. They are stamped by the
database's clock too, once the conversation's lock is held, so that a conversation's messages'
`created_at` advances with their ids.
"""

from datetime import timedelta
from unittest import mock

import pytest
from django.utils import timezone

from conversations import services
from conversations.models import Message

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.postgres_only(
        reason="SQLite is one process's database: the app's clock is the only clock"
    ),
]

SKEW = timedelta(minutes=5)


def app_clock_off_by(delta: timedelta):
    """This app server's clock `delta` away from the database's (and every other server's)."""
    real_now = timezone.now
    return mock.patch.object(timezone, "now", lambda: real_now() + delta)


def test_a_reply_from_a_server_whose_clock_runs_behind_comes_after_the_message_it_answers(
    anonymous, org, agent_user
):
    # given: a visitor's message, stamped by the database's clock
    principal = anonymous.principal()
    conversation = services.conversation_open(principal=principal, external_id=None, fields=None)
    question = services.message_post_contact(
        principal=principal, conversation_id=conversation.pk, external_id=None, text="where is it?"
    )

    # when: an agent answers, then closes, through a server whose clock is 5 minutes slow
    with app_clock_off_by(-SKEW):
        reply = services.message_post_agent(
            org=org, conversation=conversation, text="on its way", user=agent_user
        )
        services.conversation_close(org=org, conversation=conversation, user=agent_user)

    # then: ids and timestamps advance together, and the conversation shows the database's time
    thread = list(Message.objects.filter(conversation=conversation).order_by("pk"))
    assert [m.pk for m in thread[:2]] == [question.pk, reply.pk]
    stamps = [m.created_at for m in thread]
    assert stamps == sorted(stamps)
    assert stamps[1] - stamps[0] < SKEW / 2
    conversation.refresh_from_db()
    assert conversation.last_message_at == stamps[-1] == conversation.closed_at


def test_a_reply_from_a_server_whose_clock_runs_ahead_does_not_date_the_next_message_before_it(
    anonymous, org, agent_user
):
    # given: an agent's reply written by a server whose clock is 5 minutes fast
    principal = anonymous.principal()
    conversation = services.conversation_open(principal=principal, external_id=None, fields=None)
    with app_clock_off_by(SKEW):
        reply = services.message_post_agent(
            org=org, conversation=conversation, text="hello", user=agent_user
        )

    # when: the visitor answers
    answer = services.message_post_contact(
        principal=principal, conversation_id=conversation.pk, external_id=None, text="hi"
    )

    # then: the answer is dated after the reply it follows
    reply.refresh_from_db()
    answer.refresh_from_db()
    assert reply.pk < answer.pk
    assert reply.created_at <= answer.created_at
    assert answer.created_at - reply.created_at < SKEW / 2
