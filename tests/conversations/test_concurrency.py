"""Posts racing on PostgreSQL: fifty stored once each, in order; a close beats a waiting post."""

import pytest
from django.db import transaction
from django.utils import timezone
from rest_framework.test import APIClient

from contacts.models import Contact
from conversations.models import Conversation, Message
from tests.concurrency import in_parallel, in_thread, wait_for_lock_waiters
from tests.conversations.conftest import visitor_with_trust
from tests.factories import ConversationFactory, OrganizationFactory

POSTS = 50

pytestmark = [
    pytest.mark.postgres_only(reason="needs PostgreSQL for real row locks"),
    pytest.mark.django_db(transaction=True),
]


def test_fifty_concurrent_posts_are_each_stored_once_in_a_stable_order():
    # given: one conversation
    org = OrganizationFactory()
    visitor = visitor_with_trust(org, Contact.Trust.ANONYMOUS)
    conversation = ConversationFactory(contact=visitor.contact, device=visitor.device)
    url = f"/widget/sessions/{conversation.id}/messages"
    visitor.client.get("/widget/sessions")  # warm the widget-token cache before the race
    statuses: list[int] = []

    def post(index: int) -> None:
        client = APIClient(
            HTTP_X_WIDGET_TOKEN=org.widget_token, HTTP_AUTHORIZATION=f"Bearer {visitor.token}"
        )
        response = client.post(url, {"text": f"message {index}"}, format="json")
        statuses.append(response.status_code)

    # when: fifty threads released together
    in_parallel(post, POSTS)

    # then
    assert statuses == [201] * POSTS
    messages = list(Message.objects.filter(conversation=conversation).order_by("pk"))
    assert sorted(m.body for m in messages) == sorted(f"message {i}" for i in range(POSTS))
    ids = [m.pk for m in messages]
    assert ids == sorted(set(ids))
    created = [m.created_at for m in messages]
    assert created == sorted(created)
    conversation = Conversation.objects.get(pk=conversation.pk)
    assert conversation.last_message_at == messages[-1].created_at


def test_a_close_that_lands_while_a_post_waits_on_the_lock_turns_the_post_away():
    # given: an agent's transaction holds the conversation's row lock
    org = OrganizationFactory()
    visitor = visitor_with_trust(org, Contact.Trust.ANONYMOUS)
    conversation = ConversationFactory(contact=visitor.contact, device=visitor.device)
    visitor.client.get("/widget/sessions")  # warm the widget-token cache

    def post() -> tuple:
        client = APIClient(
            HTTP_X_WIDGET_TOKEN=org.widget_token, HTTP_AUTHORIZATION=f"Bearer {visitor.token}"
        )
        response = client.post(
            f"/widget/sessions/{conversation.id}/messages", {"text": "hi"}, format="json"
        )
        return response.status_code, response.json()

    with transaction.atomic():
        Conversation.objects.select_for_update().get(pk=conversation.pk)
        poster, answers = in_thread(post)
        # when: the post is waiting on that lock, and the agent closes the conversation
        assert wait_for_lock_waiters(1) == 1
        Conversation.objects.filter(pk=conversation.pk).update(
            status=Conversation.Status.CLOSED, closed_at=timezone.now()
        )
    poster.join(10)

    # then: the post saw the closed row once the lock was free, and wrote nothing
    assert answers == [
        (409, {"error": {"code": "conversation_closed", "message": "This conversation is closed."}})
    ]
    assert not Message.objects.filter(conversation=conversation).exists()
    assert Conversation.objects.get(pk=conversation.pk).last_message_id is None
