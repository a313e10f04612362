"""Writes by a visitor whose token was checked before an erasure (or a logout) that then committed.

A request checks its contact token first and writes later. An erasure or a logout landing in
between must stand: the write is refused (401), never stored with a copy of the erased contact's
senderAuthInfo where a second erasure would no longer look. On PostgreSQL the write and the
erasure also race for real, and must neither deadlock nor leave the contact's words behind.
"""

import pytest
from django.db import transaction

from config.exceptions import Unauthenticated
from contacts.models import Contact, Device
from contacts.services import device_revoke
from conversations import services
from conversations.adopt import contact_device_adopt
from conversations.data_rights import ERASED_TEXT, contact_erase
from conversations.models import Conversation, Message
from tests.concurrency import in_parallel, in_thread, wait_for_lock_waiters
from tests.conversations.conftest import visitor_with_trust
from tests.factories import ConversationFactory

WORDS = "my card number is 4111-1111-1111-1111"


@pytest.fixture
def visitor(org):
    return visitor_with_trust(org, Contact.Trust.NON_VERIFIED)


@pytest.mark.django_db
def test_a_message_checked_before_an_erasure_is_refused_after_it(org, visitor):
    # given a request that has checked its token, and an erasure that commits before its write
    conversation = ConversationFactory(org=org, contact=visitor.contact, device=visitor.device)
    principal = visitor.principal()
    contact_erase(org=org, contact_id=visitor.contact.pk, actor_user=None)
    # when the request writes
    with pytest.raises(Unauthenticated):
        services.message_post_contact(
            principal=principal, conversation_id=conversation.pk, external_id=None, text=WORDS
        )
    # then nothing it said is stored
    assert not Message.objects.filter(body=WORDS).exists()


@pytest.mark.django_db
def test_a_conversation_checked_before_an_erasure_is_refused_after_it(org, visitor):
    principal = visitor.principal()
    contact_erase(org=org, contact_id=visitor.contact.pk, actor_user=None)

    with pytest.raises(Unauthenticated):
        services.conversation_open(principal=principal, external_id="order-1947", fields={})

    assert not Conversation.objects.filter(contact=visitor.contact).exists()


@pytest.mark.django_db
@pytest.mark.parametrize("ended_by", ["erasure", "logout"])
def test_an_adoption_checked_before_its_contact_is_erased_or_logged_out_is_refused(org, ended_by):
    # given a verified browser whose adoption has checked its token, and the history it adopts
    adopter = visitor_with_trust(org, Contact.Trust.VERIFIED)
    previous = visitor_with_trust(org, Contact.Trust.ANONYMOUS)
    conversation = ConversationFactory(org=org, contact=previous.contact, device=previous.device)
    principal = adopter.principal()
    # and then the verified contact is erased, or that browser logs out, before it writes
    if ended_by == "erasure":
        contact_erase(org=org, contact_id=adopter.contact.pk, actor_user=None)
    else:
        device_revoke(device=adopter.device)

    # when the adoption writes
    with pytest.raises(Unauthenticated):
        contact_device_adopt(principal=principal, previous_token=previous.token)

    # then nothing moved, and the previous browser keeps its history and its token
    conversation.refresh_from_db()
    assert conversation.contact_id == previous.contact.pk
    assert Device.objects.get(pk=previous.device.pk).revoked_at is None


@pytest.mark.django_db
def test_a_message_checked_before_a_logout_is_refused_after_it(org, visitor):
    conversation = ConversationFactory(org=org, contact=visitor.contact, device=visitor.device)
    principal = visitor.principal()
    device_revoke(device=visitor.device)

    with pytest.raises(Unauthenticated):
        services.message_post_contact(
            principal=principal, conversation_id=conversation.pk, external_id=None, text=WORDS
        )

    assert not Message.objects.exists()


# --- PostgreSQL: the real race ------------------------------------------------------------------


@pytest.mark.parametrize("write", ["post", "open"])
@pytest.mark.postgres_only(reason="needs PostgreSQL for real row locks")
@pytest.mark.django_db(transaction=True)
def test_a_write_waiting_on_an_erasures_lock_is_refused_once_it_commits(org, visitor, write):
    # given an erasure that has revoked the contact's devices and not yet committed
    conversation = ConversationFactory(org=org, contact=visitor.contact, device=visitor.device)
    visitor.client.get("/widget/sessions", {"externalId": "page"})  # warm the caches
    if write == "post":
        path, body = f"/widget/sessions/{conversation.id}/messages", {"text": WORDS}
    else:
        path, body = "/widget/sessions", {"externalId": "page"}

    with transaction.atomic():
        Contact.objects.select_for_update(no_key=True).get(pk=visitor.contact.pk)
        Device.objects.filter(contact=visitor.contact).update(revoked_at="2026-01-01T00:00:00Z")
        writer, answers = in_thread(
            lambda: visitor.client.post(path, body, format="json").status_code
        )
        # when the write has checked its token and waits on the device
        assert wait_for_lock_waiters(1) == 1
    writer.join(10)

    # then, the revocation committed, the write is refused and stores nothing
    assert answers == [401]
    assert not Message.objects.exists()
    assert Conversation.objects.filter(contact=visitor.contact).count() == 1


@pytest.mark.postgres_only(reason="needs PostgreSQL for real row locks")
@pytest.mark.django_db(transaction=True)
def test_an_erasure_racing_a_chatting_visitor_neither_deadlocks_nor_leaves_words_behind(org):
    for _ in range(5):
        # given a visitor posting into their conversation while an operator erases them
        visitor = visitor_with_trust(org, Contact.Trust.NON_VERIFIED)
        conversation = ConversationFactory(org=org, contact=visitor.contact, device=visitor.device)
        path = f"/widget/sessions/{conversation.id}/messages"
        visitor.client.post(path, {"text": "warm"}, format="json")
        answers: list = []

        def act(n: int, visitor=visitor, path=path, answers=answers) -> None:
            if n == 0:
                contact_erase(org=org, contact_id=visitor.contact.pk, actor_user=None)
                answers.append("erased")
            else:
                response = visitor.client.post(path, {"text": WORDS}, format="json")
                answers.append(response.status_code)

        # when
        in_parallel(act, 6)

        # then every request got an answer it may give, and nothing the visitor said survives
        assert "erased" in answers
        assert set(answers) <= {"erased", 201, 401}
        bodies = set(
            Message.objects.filter(conversation=conversation).values_list("body", flat=True)
        )
        assert bodies == {ERASED_TEXT}
