"""POST /widget/contacts/adopt: a verified token adopts the same browser's earlier history."""

import pytest

from contacts.models import Device
from conversations.models import Conversation
from identity.services import api_key_create
from tests.contacts.conftest import mint, widget_client

pytestmark = pytest.mark.django_db


def verified_token(org, email="v@shop.test", user_id="v1") -> str:
    key = api_key_create(
        org=org, created_by=None, name="k", scopes=["widget:authenticate"], expires_at=None
    ).key
    client = widget_client(org)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    response = client.post(
        "/widget/authenticate-user", {"email": email, "user_id": user_id}, format="json"
    )
    return response.json()["token"]


def open_session(org, token, external_id="page") -> str:
    response = widget_client(org, token).post(
        "/widget/sessions", {"externalId": external_id}, format="json"
    )
    assert response.status_code == 201, response.content
    return response.json()["id"]


def adopt(org, token, previous):
    return widget_client(org, token).post(
        "/widget/contacts/adopt", {"previousToken": previous}, format="json"
    )


def test_adopt_moves_exactly_this_devices_conversations_and_revokes_the_old_token(org):
    # given: two browsers with anonymous history
    this_browser = mint(widget_client(org)).json()["token"]
    other_browser = mint(widget_client(org)).json()["token"]
    mine = open_session(org, this_browser)
    theirs = open_session(org, other_browser)
    verified = verified_token(org)

    # when
    response = adopt(org, verified, this_browser)

    # then
    assert response.status_code == 200
    assert response.json() == {"adopted": 1}
    moved = Conversation.objects.get(pk=mine)
    assert moved.contact.trust == "verified"
    assert moved.created_verified is True
    assert Conversation.objects.get(pk=theirs).contact.trust == "anonymous"
    assert widget_client(org, this_browser).get("/widget/me").status_code == 401
    listed = widget_client(org, verified).get("/widget/sessions").json()["results"]
    assert [c["id"] for c in listed] == [mine]


def test_adopt_is_off_when_the_org_says_so(org):
    org.merge_device_history_on_verify = False
    org.save()
    browser = mint(widget_client(org)).json()["token"]
    conversation = open_session(org, browser)

    response = adopt(org, verified_token(org), browser)

    assert response.json() == {"adopted": 0}
    assert Conversation.objects.get(pk=conversation).contact.trust == "anonymous"
    assert widget_client(org, browser).get("/widget/me").status_code == 200


def test_an_unverified_caller_cannot_adopt(org):
    browser = mint(widget_client(org)).json()["token"]
    open_session(org, browser)
    thief = mint(widget_client(org), {"email": "v@shop.test"}).json()["token"]

    response = adopt(org, thief, browser)

    assert response.status_code == 403
    assert Device.objects.filter(revoked_at__isnull=False).count() == 0


@pytest.mark.parametrize("previous", ["garbage", "", "verified"])
def test_adopt_refuses_what_is_not_an_adoptable_browser_token(org, previous):
    verified = verified_token(org)
    if previous == "verified":
        previous = verified_token(org, email="w@shop.test", user_id="w1")

    response = adopt(org, verified, previous)

    assert response.status_code == 400
    assert Device.objects.filter(revoked_at__isnull=False).count() == 0


def test_another_orgs_browser_token_cannot_be_adopted(org, other_org):
    foreign = mint(widget_client(other_org)).json()["token"]
    open_session(other_org, foreign)

    response = adopt(org, verified_token(org), foreign)

    assert response.status_code == 400
    assert Conversation.objects.get().contact.org == other_org
