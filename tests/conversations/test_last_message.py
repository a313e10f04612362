"""`Conversation.last_message`: what the history and inbox lists join to show the newest message."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from conversations import services
from conversations.data_rights import contact_erase
from conversations.models import Conversation, Message
from conversations.services import CLOSED_NOTICE
from tests.factories import ConversationFactory, MessageFactory

pytestmark = pytest.mark.django_db

BEFORE = ("conversations", "0003_message_sender_api_key")
AFTER = ("conversations", "0004_conversation_last_message")


def test_every_message_the_services_append_becomes_the_last_one(anonymous, org, agent_user):
    # given: a conversation the visitor opened
    principal = anonymous.principal()
    conversation = services.conversation_open(principal=principal, external_id=None, fields=None)
    assert conversation.last_message is None

    # when: the visitor writes, an agent answers, the agent closes it
    first = services.message_post_contact(
        principal=principal, conversation_id=conversation.pk, external_id=None, text="hello"
    )
    conversation.refresh_from_db()
    after_first = conversation.last_message_id
    reply = services.message_post_agent(
        org=org, conversation=conversation, text="hi there", user=agent_user
    )
    conversation.refresh_from_db()
    after_reply = conversation.last_message_id
    services.conversation_close(org=org, conversation=conversation, user=agent_user)

    # then: the pointer followed each message, ending on the close notice
    conversation.refresh_from_db()
    notice = Message.objects.filter(conversation=conversation).latest("pk")
    assert (after_first, after_reply) == (first.pk, reply.pk)
    assert notice.body == CLOSED_NOTICE
    assert conversation.last_message_id == notice.pk
    listed = anonymous.client.get("/widget/sessions").json()["results"]
    assert listed[0]["last_message"]["text"] == CLOSED_NOTICE
    assert listed[0]["last_message"]["sender_kind"] == Message.SenderKind.SYSTEM


def test_an_erased_contacts_last_message_shows_as_erased(anonymous, org, agent_client):
    # given: the visitor's words are the newest message of their conversation
    principal = anonymous.principal()
    conversation = services.conversation_open(principal=principal, external_id=None, fields=None)
    services.message_post_contact(
        principal=principal, conversation_id=conversation.pk, external_id=None, text="my address"
    )

    # when
    contact_erase(org=org, contact_id=anonymous.contact.pk, actor_user=None)

    # then: the inbox shows the erased text, not a copy of the words
    inbox = agent_client.get(f"/api/v1/orgs/{org.id}/conversations").json()["results"]
    assert [row["last_message"]["text"] for row in inbox] == ["[erased]"]


@pytest.mark.django_db(transaction=True)
def test_the_migration_points_each_conversation_at_its_newest_message(anonymous):
    executor = MigrationExecutor(connection)
    executor.migrate([BEFORE])
    try:
        # given: conversations as they were before the column, one with messages, one without
        old = executor.loader.project_state([BEFORE]).apps
        OldConversation = old.get_model("conversations", "Conversation")
        OldMessage = old.get_model("conversations", "Message")
        fields = {"org_id": anonymous.contact.org_id, "contact_id": anonymous.contact.pk}
        talked, silent = (
            OldConversation.objects.create(**fields),
            OldConversation.objects.create(**fields),
        )
        ids = [
            OldMessage.objects.create(
                org_id=fields["org_id"], conversation=talked, sender_kind="contact", body=text
            ).pk
            for text in ("one", "two", "three")
        ]

        # when
        executor.loader.build_graph()
        executor.migrate([AFTER])
    finally:
        executor.loader.build_graph()
        executor.migrate(executor.loader.graph.leaf_nodes())

    # then
    assert Conversation.objects.get(pk=talked.pk).last_message_id == max(ids)
    assert Conversation.objects.get(pk=silent.pk).last_message_id is None


def test_deleting_a_contact_takes_its_conversations_and_their_pointers_along(org):
    # given: a contact with a conversation whose newest message the conversation points at
    conversation = ConversationFactory(org=org)
    MessageFactory(conversation=conversation)
    MessageFactory(conversation=conversation)
    conversation.refresh_from_db()
    assert conversation.last_message_id is not None

    # when: the contact goes (the two foreign keys between the tables point both ways)
    conversation.contact.delete()

    # then
    assert not Conversation.objects.exists()
    assert not Message.objects.exists()
