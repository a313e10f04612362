"""The benchmark's seeded chat history (`bench/seed.py`): the tables it fills look like a live
deployment's, conversations pointing at their newest message as the services keep them."""

import pytest

from bench.seed import history_seed
from contacts.services import AuthMethod, contact_unverified_sign_in
from conversations.models import Conversation, Message
from tests.factories import ConversationFactory, MessageFactory, OrganizationFactory

pytestmark = pytest.mark.django_db


def _visitors(org, count):
    return [
        contact_unverified_sign_in(
            org=org,
            current_device=None,
            name=f"Visitor {n}",
            email=f"visitor{n}@bench.example",
            custom_data=None,
            method=AuthMethod.COLLECT_FORM,
            user_agent="test",
        )
        for n in range(count)
    ]


def test_each_visitor_gets_one_conversation_whose_newest_message_it_points_at():
    org = OrganizationFactory()
    issued = _visitors(org, 3)

    history_seed(org=org, issued=issued, messages_per_contact=4)

    conversations = Conversation.objects.filter(org=org)
    assert sorted(c.contact_id for c in conversations) == sorted(i.contact.pk for i in issued)
    for item in issued:
        conversation = conversations.get(contact=item.contact)
        assert conversation.device_id == item.device.pk
        messages = list(conversation.messages.order_by("pk"))
        assert [m.body for m in messages] == [f"Seeded message {m}" for m in range(4)]
        assert {m.sender_contact_id for m in messages} == {item.contact.pk}
        assert {m.org_id for m in messages} == {org.pk}
        assert conversation.last_message_id == messages[-1].pk


def test_other_conversations_are_left_as_they_were():
    org, other_org = OrganizationFactory(), OrganizationFactory()
    kept = MessageFactory(conversation=ConversationFactory(org=org)).conversation
    elsewhere = ConversationFactory(org=other_org)
    issued = _visitors(org, 1)

    history_seed(org=org, issued=issued, messages_per_contact=2)

    kept.refresh_from_db()
    elsewhere.refresh_from_db()
    assert kept.last_message_id == kept.messages.get().pk
    assert elsewhere.last_message_id is None
    assert not Message.objects.filter(org=other_org).exists()


def test_no_messages_asked_for_writes_nothing():
    org = OrganizationFactory()

    history_seed(org=org, issued=_visitors(org, 2), messages_per_contact=0)

    assert not Conversation.objects.filter(org=org).exists()
