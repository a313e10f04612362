"""seed_conversations: one conversation per trust level, idempotent."""

import pytest

from contacts.models import Contact
from conversations.demo import seed_conversations
from conversations.models import Conversation, Message
from identity import services
from identity.demo import demo_api_key_public_id, seed_identity
from identity.models import ApiKey

pytestmark = pytest.mark.django_db


def test_seed_creates_one_conversation_per_trust_level_with_agent_replies(org, agent_user):
    # when
    seed_conversations(org=org, agent_user=agent_user)

    # then
    conversations = {c.contact.trust: c for c in Conversation.objects.select_related("contact")}
    assert set(conversations) == set(Contact.Trust.values)
    for trust, conversation in conversations.items():
        contact = conversation.contact
        info = contact.sender_auth_info
        assert conversation.org == org
        assert conversation.sender_auth_info == info
        assert conversation.created_verified is (trust == Contact.Trust.VERIFIED)
        assert info["authVar"]["uid"] == str(contact.pk)
        messages = list(conversation.messages.all())
        assert 2 <= len(messages) <= 3
        assert any(m.sender_kind == "agent" and m.sender_user == agent_user for m in messages)
        assert conversation.last_message_at == messages[-1].created_at
        for message in messages:
            expected = info if message.sender_kind == "contact" else {}
            assert message.sender_auth_info == expected
    verified = conversations[Contact.Trust.VERIFIED].contact
    non_verified = conversations[Contact.Trust.NON_VERIFIED].contact
    assert (verified.sender_auth_info["authType"], verified.sender_auth_info["method"]) == (
        "VERIFIED",
        "api_key",
    )
    assert verified.sender_auth_info["verified"] is True
    assert verified.user_id and verified.custom_data and verified.verified_at
    assert (non_verified.sender_auth_info["authType"], non_verified.sender_auth_info["method"]) == (
        "NON_VERIFIED",
        "collect_form",
    )
    assert non_verified.name and non_verified.email and non_verified.non_verified_custom_data
    assert non_verified.custom_data == {}
    assert conversations[Contact.Trust.NON_VERIFIED].external_id


def test_seed_is_idempotent(org, agent_user):
    # given
    seed_conversations(org=org, agent_user=agent_user)
    counts = (Contact.objects.count(), Conversation.objects.count(), Message.objects.count())

    # when
    seed_conversations(org=org, agent_user=agent_user)

    # then
    assert (
        Contact.objects.count(),
        Conversation.objects.count(),
        Message.objects.count(),
    ) == counts


def test_seeded_verified_contact_names_the_demo_key_not_an_operators_key(org):
    # given: the org's operators made a key of their own before the seed ran
    services.api_key_create(
        org=org,
        created_by=None,
        name="our backend",
        scopes=["widget:authenticate"],
        expires_at=None,
    )
    demo = seed_identity(slug=org.slug)

    # when
    seed_conversations(org=org, agent_user=demo.agent)

    # then
    demo_key = ApiKey.objects.get(org=org, public_id=demo_api_key_public_id(org.slug))
    verified = Contact.objects.get(trust=Contact.Trust.VERIFIED)
    assert verified.sender_auth_info["authVar"]["keyId"] == demo_key.prefix
    assert Conversation.objects.get(contact=verified).sender_auth_info == verified.sender_auth_info
