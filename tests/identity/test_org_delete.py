"""A superuser deletes an org from the admin (identity.services.organization_delete).

Its rows go with it, its widget token stops naming anything at once, and a
membership write in progress is waited for instead of deadlocking with the deletion.
"""

import psycopg
import pytest
from django.db import connection
from django.test import Client

from contacts.models import Contact
from identity import widget_cache
from identity.models import Membership, Organization
from identity.selectors import organization_for_widget_token
from tests.concurrency import in_thread, wait_for_lock_waiters
from tests.factories import ContactFactory, MembershipFactory, OrganizationFactory, UserFactory

ORGS = "/admin/identity/organization/"


def superuser_admin() -> Client:
    client = Client()
    client.force_login(UserFactory(is_superuser=True, is_staff=True))
    return client


@pytest.mark.django_db
def test_a_deleted_orgs_rows_go_and_its_widget_token_names_nothing_at_once(
    django_capture_on_commit_callbacks,
):
    # given: an org with a member, cached under its widget token; another org with a contact.
    # (The admin offers no deletion of an org that has contacts, or an owner in force: its
    # confirmation asks for the permission to delete those, which nobody has.)
    org, other = OrganizationFactory(), OrganizationFactory()
    MembershipFactory(org=org, role=Membership.Role.ADMIN)
    kept = ContactFactory(org=other)
    token = org.widget_token
    assert organization_for_widget_token(widget_token=token) == org

    # when
    with django_capture_on_commit_callbacks(execute=True):
        response = superuser_admin().post(f"{ORGS}{org.pk}/delete/", {"post": "yes"})

    # then: gone, refused by this process and by one that only has the shared cache
    assert response.status_code == 302
    assert not Organization.objects.filter(pk=org.pk).exists()
    assert not Membership.objects.filter(org_id=org.pk).exists()
    assert list(Contact.objects.all()) == [kept]
    assert organization_for_widget_token(widget_token=token) is None
    assert widget_cache.shared_get(token) == widget_cache.RETIRED


@pytest.mark.django_db
def test_orgs_deleted_together_each_go_with_their_rows(django_capture_on_commit_callbacks):
    # given
    first, second, other = OrganizationFactory(), OrganizationFactory(), OrganizationFactory()
    for org in (first, second, other):
        MembershipFactory(org=org)

    # when
    with django_capture_on_commit_callbacks(execute=True):
        response = superuser_admin().post(
            ORGS,
            {"action": "delete_selected", "_selected_action": [first.pk, second.pk], "post": "yes"},
        )

    # then
    assert response.status_code == 302
    assert list(Organization.objects.values_list("pk", flat=True)) == [other.pk]
    assert list(Membership.objects.values_list("org_id", flat=True)) == [other.pk]
    for org in (first, second):
        assert widget_cache.shared_get(org.widget_token) == widget_cache.RETIRED


@pytest.mark.postgres_only(reason="needs PostgreSQL row locks and connections of their own")
@pytest.mark.django_db(transaction=True)
def test_a_deletion_waits_for_a_membership_write_in_progress_instead_of_deadlocking():
    # given: another server's membership write has locked the org's row, as membership_set does
    # first, and has not yet written the membership
    org = OrganizationFactory()
    member = MembershipFactory(org=org, role=Membership.Role.AGENT)
    settings = connection.settings_dict
    other_server = psycopg.connect(
        dbname=settings["NAME"], user=settings["USER"], host=settings["HOST"],
        port=settings["PORT"] or 5432, autocommit=False,
    )  # fmt: skip
    other_server.execute(
        "SELECT 1 FROM identity_organization WHERE id = %s FOR NO KEY UPDATE", [org.pk]
    )

    # when: a superuser deletes the org meanwhile, and then the membership write goes on
    deletion, responses = in_thread(
        lambda: superuser_admin().post(f"{ORGS}{org.pk}/delete/", {"post": "yes"})
    )
    try:
        assert wait_for_lock_waiters(1) >= 1
        other_server.execute(
            "UPDATE identity_membership SET role = 'admin' WHERE id = %s", [member.pk]
        )
        other_server.commit()
    finally:
        other_server.close()
        deletion.join(15)

    # then: the membership write committed, and the deletion went through after it
    assert not deletion.is_alive()
    assert [response.status_code for response in responses] == [302]
    assert not Organization.objects.filter(pk=org.pk).exists()
    assert not Membership.objects.filter(pk=member.pk).exists()
