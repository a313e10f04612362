"""An org keeps at least one owner when two owners are demoted or removed at once.

The admin's last-owner check reads without a lock, and the write comes later: two requests that
each saw another owner both wrote, and the org was left with none (race audit: 16 of 20 rounds
for demotions, 5 of 6 for removals). The services check again under the org's row lock. Here the
other request's write lands in the gap between one request's check and its write; on PostgreSQL
two requests also race for real, held together in that gap.
"""

import threading

import pytest
from django.contrib.messages import ERROR, get_messages
from django.test import Client

from identity import admin as identity_admin
from identity import services
from identity.models import Membership
from tests.concurrency import in_parallel
from tests.factories import MembershipFactory, OrganizationFactory

LAST_OWNER = "This is the organization's last owner."
MEMBERSHIPS = "/admin/identity/membership/"
# How often a request reads `is_last_owner` before it writes: the change form's clean; a
# deletion's permission check, then the confirmation's own (`get_deleted_objects`).
CHANGE_LOOKS = 1
DELETE_LOOKS = 2


def two_owners(org) -> tuple[Membership, Membership]:
    return (
        MembershipFactory(org=org, role=Membership.Role.OWNER),
        MembershipFactory(org=org, role=Membership.Role.OWNER),
    )


def owner_ids(org) -> set:
    return set(
        Membership.objects.filter(org=org, role=Membership.Role.OWNER).values_list("pk", flat=True)
    )


def admin_client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def change_url(membership: Membership) -> str:
    return f"{MEMBERSHIPS}{membership.pk}/change/"


def delete_url(membership: Membership) -> str:
    return f"{MEMBERSHIPS}{membership.pk}/delete/"


def messages_of(response) -> list[tuple[int, str]]:
    return [(message.level, message.message) for message in get_messages(response.wsgi_request)]


def after_the_last_look(monkeypatch, looks: int, then) -> None:
    """Run `then()` once a request has made its `looks` last-owner checks: in the gap between
    its check and its write."""
    real = identity_admin.is_last_owner
    seen = threading.local()

    def look(membership):
        answer = real(membership)
        seen.count = getattr(seen, "count", 0) + 1
        if seen.count == looks:
            then()
        return answer

    monkeypatch.setattr(identity_admin, "is_last_owner", look)


# --- one request, the other's write landing between its check and its write -------------------


@pytest.mark.django_db
@pytest.mark.parametrize("demoted", ["the other owner", "themselves"])
def test_a_demotion_that_saw_another_owner_is_refused_once_that_owner_is_demoted(
    org, monkeypatch, demoted
):
    # given two owners; the first demotes one of them, and the other is demoted (by the other
    # owner, or in the first owner's other tab) after this request checked
    first, second = two_owners(org)
    target, other = (second, first) if demoted == "the other owner" else (first, second)
    after_the_last_look(
        monkeypatch,
        CHANGE_LOOKS,
        lambda: Membership.objects.filter(pk=other.pk).update(role=Membership.Role.ADMIN),
    )

    # when
    response = admin_client(first.user).post(change_url(target), {"role": "admin"})

    # then: refused with the form's message, not a 500, and the target is still owner (the other
    # write, made on this request's connection, is rolled back with it)
    assert response.status_code == 302
    assert response["Location"] == MEMBERSHIPS
    assert messages_of(response) == [(ERROR, LAST_OWNER)]
    assert Membership.objects.get(pk=target.pk).role == Membership.Role.OWNER


@pytest.mark.django_db
def test_a_removal_that_saw_another_owner_is_refused_once_that_owner_is_removed(org, monkeypatch):
    # given two owners; the first removes the second, and the second removes the first after
    # this request checked
    first, second = two_owners(org)
    after_the_last_look(
        monkeypatch, DELETE_LOOKS, lambda: Membership.objects.filter(pk=first.pk).delete()
    )

    # when
    response = admin_client(first.user).post(delete_url(second), {"post": "yes"})

    # then
    assert response.status_code == 302
    assert response["Location"] == MEMBERSHIPS
    assert messages_of(response) == [(ERROR, LAST_OWNER)]
    assert Membership.objects.get(pk=second.pk).role == Membership.Role.OWNER


@pytest.mark.django_db
@pytest.mark.parametrize("write", ["demote", "remove"])
def test_of_two_writes_that_each_saw_another_owner_the_second_is_refused(org, write):
    # given: both requests checked and saw another owner
    first, second = two_owners(org)
    assert not identity_admin.is_last_owner(first)
    assert not identity_admin.is_last_owner(second)

    def apply(membership):
        if write == "demote":
            services.membership_set(user=membership.user, org=org, role=Membership.Role.ADMIN)
        else:
            services.membership_remove(membership=membership)

    # when both write, one after the other
    apply(first)
    with pytest.raises(services.LastOwner) as refused:
        apply(second)

    # then
    assert refused.value.get_codes() == "last_owner"
    assert str(refused.value.detail) == LAST_OWNER
    assert owner_ids(org) == {second.pk}


@pytest.mark.django_db
@pytest.mark.parametrize("cut_off", ["is_active", "is_staff"])
@pytest.mark.parametrize("write", ["demote", "remove"])
def test_an_owner_whose_account_is_cut_off_does_not_count_as_another_owner(org, write, cut_off):
    # given: two owners, one of whose accounts was deactivated (or made non-staff) since
    active, cut = two_owners(org)
    setattr(cut.user, cut_off, False)
    cut.user.save(update_fields=[cut_off])

    # when: the active owner steps down
    with pytest.raises(services.LastOwner):
        if write == "demote":
            services.membership_set(user=active.user, org=org, role=Membership.Role.ADMIN)
        else:
            services.membership_remove(membership=active)

    # then: refused, and the admin says so before the write; the cut-off owner's own membership
    # may still be changed or removed
    assert owner_ids(org) == {active.pk, cut.pk}
    assert identity_admin.is_last_owner(active)
    assert not identity_admin.is_last_owner(cut)
    services.membership_remove(membership=cut)
    assert owner_ids(org) == {active.pk}


@pytest.mark.django_db
def test_removing_a_membership_another_request_removed_changes_nothing(org):
    # given
    owner = MembershipFactory(org=org, role=Membership.Role.OWNER)
    agent = MembershipFactory(org=org, role=Membership.Role.AGENT)
    Membership.objects.filter(pk=agent.pk).delete()

    # when
    services.membership_remove(membership=agent)

    # then
    assert list(Membership.objects.filter(org=org)) == [owner]


# --- two requests at once (PostgreSQL) --------------------------------------------------------


def race(monkeypatch, looks: int, requests) -> list:
    """Send `requests` (each a function returning a response) at once, each held after its
    last-owner checks until all have checked: the interleaving the audit found, every time."""
    held = threading.Barrier(len(requests), timeout=10)
    after_the_last_look(monkeypatch, looks, held.wait)
    responses = [None] * len(requests)

    def send(n: int) -> None:
        responses[n] = requests[n]()

    in_parallel(send, len(requests))
    return responses


def refused(response) -> bool:
    return (ERROR, LAST_OWNER) in messages_of(response)


@pytest.mark.postgres_only(reason="needs PostgreSQL row locks and connections of their own")
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("tabs", ["each owner demotes the other", "one owner demotes both"])
def test_two_demotions_at_once_leave_exactly_one_owner(monkeypatch, tabs):
    # given
    org = OrganizationFactory()
    first, second = two_owners(org)
    if tabs == "each owner demotes the other":
        sends = [(admin_client(first.user), second), (admin_client(second.user), first)]
    else:
        sends = [(admin_client(first.user), second), (admin_client(first.user), first)]

    # when
    responses = race(
        monkeypatch,
        CHANGE_LOOKS,
        [
            lambda client=client, target=target: client.post(change_url(target), {"role": "admin"})
            for client, target in sends
        ],
    )

    # then: one is saved, the other refused with the form's message
    assert len(owner_ids(org)) == 1
    assert [response.status_code for response in responses] == [302, 302]
    assert sorted(refused(response) for response in responses) == [False, True]


@pytest.mark.postgres_only(reason="needs PostgreSQL row locks and connections of their own")
@pytest.mark.django_db(transaction=True)
def test_two_owners_removing_each_other_at_once_leave_exactly_one_owner(monkeypatch):
    # given
    org = OrganizationFactory()
    first, second = two_owners(org)
    sends = [(admin_client(first.user), second), (admin_client(second.user), first)]

    # when
    responses = race(
        monkeypatch,
        DELETE_LOOKS,
        [
            lambda client=client, target=target: client.post(delete_url(target), {"post": "yes"})
            for client, target in sends
        ],
    )

    # then
    assert len(owner_ids(org)) == 1
    assert Membership.objects.filter(org=org).count() == 1
    assert [response.status_code for response in responses] == [302, 302]
    assert sorted(refused(response) for response in responses) == [False, True]
