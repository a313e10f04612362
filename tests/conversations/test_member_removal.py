"""A member who leaves an org leaves no open conversation assigned to them.

Their open conversations in that org become unassigned in the removal's transaction, for the
members who remain; closed ones keep the assignee as who handled them. An assignment racing the
removal either commits first and is undone, or waits and is refused (PostgreSQL, real threads).
"""

import pytest
from django.core.exceptions import ValidationError
from django.dispatch import receiver
from django.test import Client

from conversations import services
from conversations.models import Conversation
from identity import services as identity_services
from identity.models import Membership
from identity.signals import membership_removed
from tests.concurrency import held_uncommitted, in_thread, wait_for_lock_waiters
from tests.factories import ConversationFactory, MembershipFactory, OrganizationFactory

NOT_A_MEMBER = {"assignee": [services.ASSIGNEE_NOT_A_MEMBER]}


def assigned_to(membership: Membership, **fields) -> Conversation:
    return ConversationFactory(contact__org=membership.org, assignee=membership.user, **fields)


def assignee_ids(*conversations: Conversation) -> list:
    return [
        Conversation.objects.values_list("assignee_id", flat=True).get(pk=c.pk)
        for c in conversations
    ]


@pytest.mark.django_db
def test_removing_a_member_unassigns_their_open_conversations_in_that_org_only():
    # given: an agent with an open and a closed conversation here, and one in another org
    org = OrganizationFactory()
    MembershipFactory(org=org, role=Membership.Role.OWNER)
    leaving = MembershipFactory(org=org)
    staying = MembershipFactory(org=org)
    elsewhere = MembershipFactory(user=leaving.user)
    open_one = assigned_to(leaving)
    closed_one = assigned_to(leaving, status=Conversation.Status.CLOSED)
    colleagues = assigned_to(staying)
    other_org = assigned_to(elsewhere)

    # when
    identity_services.membership_remove(membership=leaving)

    # then
    assert not Membership.objects.filter(pk=leaving.pk).exists()
    assert assignee_ids(open_one, closed_one, colleagues, other_org) == [
        None,
        leaving.user_id,
        staying.user_id,
        leaving.user_id,
    ]


@pytest.mark.django_db
def test_refusing_to_remove_the_last_owner_unassigns_nothing():
    # given
    owner = MembershipFactory(role=Membership.Role.OWNER)
    conversation = assigned_to(owner)

    # when
    with pytest.raises(identity_services.LastOwner):
        identity_services.membership_remove(membership=owner)

    # then
    assert Membership.objects.filter(pk=owner.pk).exists()
    assert assignee_ids(conversation) == [owner.user_id]


@pytest.mark.django_db
def test_a_failing_receiver_rolls_the_removal_back():
    # given
    org = OrganizationFactory()
    MembershipFactory(org=org, role=Membership.Role.OWNER)
    leaving = MembershipFactory(org=org)
    conversation = assigned_to(leaving)

    @receiver(membership_removed, dispatch_uid="test.fails")
    def fail(**kwargs):
        raise RuntimeError("a receiver failed")

    # when
    try:
        with pytest.raises(RuntimeError):
            identity_services.membership_remove(membership=leaving)
    finally:
        membership_removed.disconnect(dispatch_uid="test.fails")

    # then: the membership and the assignment are both still there
    assert Membership.objects.filter(pk=leaving.pk).exists()
    assert assignee_ids(conversation) == [leaving.user_id]


@pytest.mark.django_db
def test_removing_a_member_in_the_admin_unassigns_their_open_conversations():
    # given: an owner removes an agent from the membership's delete page
    org = OrganizationFactory()
    owner = MembershipFactory(org=org, role=Membership.Role.OWNER)
    leaving = MembershipFactory(org=org)
    conversation = assigned_to(leaving)
    client = Client()
    client.force_login(owner.user)

    # when
    response = client.post(f"/admin/identity/membership/{leaving.pk}/delete/", {"post": "yes"})

    # then
    assert response.status_code == 302
    assert not Membership.objects.filter(pk=leaving.pk).exists()
    assert assignee_ids(conversation) == [None]


@pytest.mark.django_db
def test_a_member_removed_before_the_assignment_cannot_be_assigned():
    # given
    org = OrganizationFactory()
    leaving = MembershipFactory(org=org)
    conversation = ConversationFactory(contact__org=org)
    identity_services.membership_remove(membership=leaving)

    # when
    with pytest.raises(ValidationError) as refused:
        services.conversation_assign(org=org, conversation=conversation, assignee=leaving.user)

    # then
    assert refused.value.message_dict == NOT_A_MEMBER
    assert assignee_ids(conversation) == [None]


# --- an assignment and a removal at once, on PostgreSQL ------------------------------------------


def org_with_leaving_member() -> tuple:
    org = OrganizationFactory()
    MembershipFactory(org=org, role=Membership.Role.OWNER)
    return org, MembershipFactory(org=org), ConversationFactory(contact__org=org)


@pytest.mark.postgres_only(reason="needs PostgreSQL for real row locks")
@pytest.mark.django_db(transaction=True)
def test_a_removal_waits_for_an_assignment_in_progress_then_unassigns_it():
    # given: an assignment of the leaving member, checked and written but not yet committed
    org, leaving, conversation = org_with_leaving_member()
    commit_assignment = held_uncommitted(
        lambda: services.conversation_assign(
            org=org, conversation=conversation, assignee=leaving.user
        )
    )

    # when: the member is removed meanwhile, and the assignment then commits
    remover, removing = in_thread(lambda: identity_services.membership_remove(membership=leaving))
    waited = wait_for_lock_waiters(1, timeout=3)
    assigning = commit_assignment()
    remover.join(10)

    # then: the removal waited on the membership row, and undid the assignment after it
    assert waited == 1
    assert assigning == [None]
    assert removing == [None]
    assert not Membership.objects.filter(pk=leaving.pk).exists()
    assert assignee_ids(conversation) == [None]


@pytest.mark.postgres_only(reason="needs PostgreSQL for real row locks")
@pytest.mark.django_db(transaction=True)
def test_an_assignment_waits_for_a_removal_in_progress_then_is_refused():
    # given: the leaving member's removal, made but not yet committed
    org, leaving, conversation = org_with_leaving_member()
    commit_removal = held_uncommitted(
        lambda: identity_services.membership_remove(membership=leaving)
    )

    # when: an agent assigns the conversation to that member meanwhile
    assigner, assigning = in_thread(
        lambda: services.conversation_assign(
            org=org, conversation=conversation, assignee=leaving.user
        )
    )
    waited = wait_for_lock_waiters(1, timeout=3)
    removing = commit_removal()
    assigner.join(10)

    # then: the assignment waited for the removal, and was refused once it saw it
    assert waited == 1
    assert removing == [None]
    assert len(assigning) == 1 and isinstance(assigning[0], ValidationError)
    assert assigning[0].message_dict == NOT_A_MEMBER
    assert assignee_ids(conversation) == [None]
