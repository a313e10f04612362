"""Fifty messages racing into one conversation on PostgreSQL: each stored once, in order."""

import threading

import pytest
from django.db import connection
from rest_framework.test import APIClient

from contacts.models import Contact
from conversations.models import Conversation, Message
from tests.conversations.conftest import visitor_with_trust
from tests.factories import ConversationFactory, OrganizationFactory

POSTS = 50

pytestmark = [
    pytest.mark.postgres_only,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        connection.vendor != "postgresql", reason="needs PostgreSQL for real row locks"
    ),
]


def test_fifty_concurrent_posts_are_each_stored_once_in_a_stable_order():
    # given: one conversation and fifty threads released together
    org = OrganizationFactory()
    visitor = visitor_with_trust(org, Contact.Trust.ANONYMOUS)
    conversation = ConversationFactory(contact=visitor.contact, device=visitor.device)
    url = f"/widget/sessions/{conversation.id}/messages"
    visitor.client.get("/widget/sessions")  # warm the widget-token cache before the race
    barrier = threading.Barrier(POSTS)
    statuses: list[int] = []
    lock = threading.Lock()

    def post(index: int) -> None:
        try:
            client = APIClient(
                HTTP_X_WIDGET_TOKEN=org.widget_token,
                HTTP_AUTHORIZATION=f"Bearer {visitor.token}",
            )
            barrier.wait()
            response = client.post(url, {"text": f"message {index}"}, format="json")
            with lock:
                statuses.append(response.status_code)
        finally:
            connection.close()

    # when
    threads = [threading.Thread(target=post, args=(index,)) for index in range(POSTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

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
