"""`manage.py prune_devices`: devices no valid token can name any more are deleted, nothing else."""

import io
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from contacts.models import Contact, Device
from contacts.services import devices_prune
from identity.models import Organization
from tests.contacts.conftest import mint, widget_client
from tests.factories import (
    ContactFactory,
    ConversationFactory,
    DeviceFactory,
    OrganizationFactory,
    VerifiedContactFactory,
)

pytestmark = pytest.mark.django_db

DAY = timedelta(days=1)


def device(org, *, trust: str, age: timedelta, revoked: bool = False) -> Device:
    contact_factory = VerifiedContactFactory if trust == "verified" else ContactFactory
    contact = contact_factory(org=org, trust=trust)
    created = timezone.now() - age
    return DeviceFactory(
        contact=contact,
        created_at=created,
        last_seen_at=created,
        revoked_at=created if revoked else None,
    )


def test_only_devices_whose_every_token_is_dead_are_deleted(org):
    # given
    dead = [
        device(org, trust="anonymous", age=DAY, revoked=True),
        device(org, trust="verified", age=7 * DAY + 2 * timedelta(minutes=1)),
        device(org, trust="anonymous", age=366 * DAY),
        device(org, trust="non_verified", age=366 * DAY),
    ]
    alive = [
        device(org, trust="verified", age=7 * DAY - timedelta(minutes=1)),
        device(org, trust="anonymous", age=364 * DAY),
        device(org, trust="non_verified", age=364 * DAY),
    ]

    # when
    pruned = devices_prune()

    # then
    assert pruned == len(dead)
    assert set(Device.objects.values_list("pk", flat=True)) == {d.pk for d in alive}
    assert Contact.objects.count() == len(dead) + len(alive)


def test_a_device_created_long_ago_but_given_a_fresh_token_stays(org):
    # given: a browser first seen over a year ago that came back today (the widget re-mints on
    # the device it has, decisions audit)
    widget = widget_client(org)
    token = mint(widget).json()["token"]
    Device.objects.update(created_at=timezone.now() - 400 * DAY)
    fresh = mint(widget, token=token).json()["token"]

    # when
    devices_prune()

    # then
    assert Device.objects.count() == 1
    assert widget_client(org, fresh).get("/widget/me").status_code == 200


def test_a_device_a_conversation_refers_to_stays_dead_or_not(org):
    # given: an adopted (revoked) device holding the history it handed over, and an old one
    adopted = device(org, trust="non_verified", age=DAY, revoked=True)
    ConversationFactory(contact=VerifiedContactFactory(org=org), device=adopted)
    old = device(org, trust="anonymous", age=400 * DAY)
    ConversationFactory(contact=old.contact, device=old)

    # when
    pruned = devices_prune()

    # then: export and erasure still find the adopted history through its device
    assert pruned == 0
    assert set(Device.objects.values_list("pk", flat=True)) == {adopted.pk, old.pk}


def test_a_lifetime_an_org_holds_beyond_the_settings_ceiling_is_honoured(org):
    # given: a lifetime set outside the API's rules (a shell, an old release)
    Organization.objects.filter(pk=org.pk).update(verified_token_lifetime=30 * DAY)
    kept = device(org, trust="verified", age=10 * DAY)
    other = OrganizationFactory()
    also_kept = device(other, trust="verified", age=10 * DAY)

    # when
    devices_prune()

    # then: the ceiling is the longest any org holds, whichever org the device belongs to
    assert set(Device.objects.values_list("pk", flat=True)) == {kept.pk, also_kept.pk}


def test_a_dry_run_counts_and_deletes_nothing(org):
    device(org, trust="anonymous", age=DAY, revoked=True)
    device(org, trust="anonymous", age=DAY)

    assert devices_prune(dry_run=True) == 1
    assert Device.objects.count() == 2


@pytest.mark.django_db(transaction=True)
def test_batches_delete_every_dead_device_each_in_its_own_transaction(org):
    # transaction=True: as the command runs, in autocommit (on PostgreSQL a server-side cursor
    # reads the ids while the batches commit)
    for _ in range(5):
        device(org, trust="anonymous", age=DAY, revoked=True)
    device(org, trust="anonymous", age=DAY)

    assert devices_prune(batch_size=2) == 5
    assert Device.objects.count() == 1


def test_a_live_widget_token_keeps_working_after_a_prune(org):
    # given: a browser's token, and a logged-out one
    widget = widget_client(org)
    live = mint(widget).json()["token"]
    gone = mint(widget).json()["token"]
    widget_client(org, gone).post("/widget/logout")

    # when
    devices_prune()

    # then
    assert widget_client(org, live).get("/widget/me").status_code == 200
    assert widget_client(org, gone).get("/widget/me").status_code == 401
    assert Device.objects.count() == 1


def test_the_command_says_what_it_did_and_refuses_a_batch_size_below_one(org):
    device(org, trust="anonymous", age=DAY, revoked=True)
    out = io.StringIO()

    call_command("prune_devices", "--dry-run", stdout=out)
    call_command("prune_devices", stdout=out)

    assert out.getvalue().splitlines() == [
        "prune_devices: would delete 1 devices",
        "prune_devices: deleted 1 devices",
    ]
    with pytest.raises(CommandError, match="at least 1"):
        call_command("prune_devices", "--batch-size", "0")
