"""A membership gives access only to an active staff user (SPEC §6: members are staff), the same
rule on the API, the console and the admin: unticking "staff" cuts an agent off everywhere."""

import pytest
from django.test import Client
from rest_framework.test import APIClient

from conversations.models import Conversation
from tests.conftest import PASSWORD, agent_access_token
from tests.factories import ContactFactory, ConversationFactory, MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator(org):
    user = UserFactory(password=PASSWORD)
    MembershipFactory(user=user, org=org, role="owner")
    return user


def test_an_operator_no_longer_staff_is_cut_off_from_the_api_at_once(org, operator):
    # given: a token issued while they were staff
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {agent_access_token(client, operator)}")
    assert client.get(f"/api/v1/orgs/{org.pk}/api-keys").status_code == 200

    # when a superuser unticks "staff"
    operator.is_staff = False
    operator.save(update_fields=["is_staff"])

    # then: the org is unknown to them, as to any non-member
    assert client.get(f"/api/v1/orgs/{org.pk}/api-keys").status_code == 404
    assert client.get(f"/api/v1/orgs/{org.pk}/contacts").status_code == 404
    assert client.get("/api/v1/orgs").json() == []


def test_a_member_who_is_not_staff_gets_no_console(org):
    # given
    user = UserFactory(password=PASSWORD, is_staff=False)
    MembershipFactory(user=user, org=org, role="agent")
    ConversationFactory(contact=ContactFactory(org=org))
    client = Client()
    client.force_login(user)

    # when
    inbox = client.get("/console/")
    named = client.get(f"/console/?org={org.pk}")

    # then
    assert inbox.status_code == 200
    assert inbox.templates[0].name == "console/no_org.html"
    assert named.status_code == 404


def test_a_conversation_cannot_be_assigned_to_a_member_who_is_not_staff(org, operator):
    # given
    outsider = UserFactory(is_staff=False)
    MembershipFactory(user=outsider, org=org, role="agent")
    conversation = ConversationFactory(contact=ContactFactory(org=org))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {agent_access_token(client, operator)}")

    # when
    response = client.post(
        f"/api/v1/orgs/{org.pk}/conversations/{conversation.pk}/assign",
        {"assignee": outsider.pk},
        format="json",
    )

    # then
    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {
        "assignee": ["Must be an active member of this organization."]
    }
    assert Conversation.objects.get().assignee is None
