"""The admin's history pages tell a member nothing about rows that are not theirs to see.

Django's history view looks its object up before it asks for permission, so each admin's
queryset decides: a row the member may not see must answer exactly as an id that does not exist.
"""

import uuid
from datetime import timedelta

import pytest
from django.contrib import admin
from django.contrib.auth.models import Group
from django.contrib.messages import get_messages
from django.test import Client
from django.utils import timezone
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken

from contacts.models import Contact
from conversations.models import Conversation
from identity.models import ApiKey, AuditEvent, Membership, Organization, SigningSecret, User
from identity.services import api_key_create, signing_secret_create_shared
from tests.factories import (
    ContactFactory,
    ConversationFactory,
    MembershipFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db

UNKNOWN_INT_ID = 2_000_000_000
# Django's own words for an id its admin does not find (its quotes are typographic).
DOES_NOT_EXIST = "{name} with ID \u201c<id>\u201d doesn\u2019t exist. Perhaps it was deleted?"


def a_user(other_org):
    return UserFactory()


def a_group(other_org):
    return Group.objects.create(name="Support")


def an_outstanding_token(other_org):
    now = timezone.now()
    return OutstandingToken.objects.create(
        user=UserFactory(),
        jti=uuid.uuid4().hex,
        token="header.payload.signature",
        created_at=now,
        expires_at=now + timedelta(days=1),
    )


def a_blacklisted_token(other_org):
    return BlacklistedToken.objects.create(token=an_outstanding_token(other_org))


def their_contact(other_org):
    return ContactFactory(org=other_org)


def their_conversation(other_org):
    return ConversationFactory(contact=ContactFactory(org=other_org))


def their_org(other_org):
    return other_org


def their_membership(other_org):
    return MembershipFactory(org=other_org)


def their_api_key(other_org):
    return api_key_create(
        org=other_org, created_by=None, name="theirs", scopes=["contacts:read"], expires_at=None
    ).api_key


def their_signing_secret(other_org):
    return signing_secret_create_shared(org=other_org, created_by=None).signing_secret


def their_audit_event(other_org):
    their_api_key(other_org)
    return AuditEvent.objects.get(org=other_org)


SUPERUSER_ONLY = {
    User: a_user,
    Group: a_group,
    OutstandingToken: an_outstanding_token,
    BlacklistedToken: a_blacklisted_token,
}
ANOTHER_ORGS = {
    Contact: their_contact,
    Conversation: their_conversation,
    Organization: their_org,
    Membership: their_membership,
    ApiKey: their_api_key,
    SigningSecret: their_signing_secret,
    AuditEvent: their_audit_event,
}


def history_url(model, object_id) -> str:
    return f"/admin/{model._meta.app_label}/{model._meta.model_name}/{object_id}/history/"


def unknown_id(model):
    return uuid.uuid4() if model._meta.pk.get_internal_type() == "UUIDField" else UNKNOWN_INT_ID


def answer(client: Client, model, object_id) -> tuple:
    """A history page's redirects, the status it ends with and the messages shown there, with
    the id in the messages made generic."""
    response = client.get(history_url(model, object_id), follow=True)
    notes = [
        str(message).replace(str(object_id), "<id>")
        for message in get_messages(response.wsgi_request)
    ]
    return response.redirect_chain, response.status_code, notes


@pytest.fixture(params=["agent_user", "operator_user"])
def member(request) -> Client:
    client = Client()
    client.force_login(request.getfixturevalue(request.param))
    return client


def test_every_registered_admin_is_asked_for_here():
    assert set(SUPERUSER_ONLY) | set(ANOTHER_ORGS) == set(admin.site._registry)


@pytest.mark.parametrize("make", [*SUPERUSER_ONLY.values(), *ANOTHER_ORGS.values()])
def test_a_member_gets_the_same_answer_for_a_row_not_theirs_and_an_unknown_id(
    member, other_org, make
):
    # given: a user, group or token (superusers only), or another org's row
    obj = make(other_org)
    model = type(obj)

    # when
    existing = answer(member, model, obj.pk)
    unknown = answer(member, model, unknown_id(model))

    # then: both sent to the index, told the id does not exist
    expected = ([("/admin/", 302)], 200, [DOES_NOT_EXIST.format(name=model._meta.verbose_name)])
    assert existing == expected
    assert unknown == expected


@pytest.mark.parametrize("make", SUPERUSER_ONLY.values())
def test_a_superuser_still_reads_the_history_of_users_groups_and_tokens(other_org, make):
    # given
    obj = make(other_org)
    client = Client()
    client.force_login(UserFactory(is_superuser=True, is_staff=True))

    # when
    response = client.get(history_url(type(obj), obj.pk))

    # then
    assert response.status_code == 200
    assert response.context["object"] == obj
