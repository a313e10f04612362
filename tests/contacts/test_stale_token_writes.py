"""A write that acts on a browser token checked before its transaction began must not undo a
logout, an adoption's revocation or an erasure that committed in between (SPEC §3.1, §2 rule 2).

Each test lets the other write land between the token check (`device_for_reuse`) and the
service's own transaction, the window a concurrent request has in production.
"""

from unittest import mock

import pytest

from contacts import selectors as contact_selectors
from contacts.models import Contact, Device
from contacts.services import AuthMethod, contact_unverified_sign_in, device_revoke
from conversations.data_rights import contact_erase
from tests.contacts.conftest import mint, widget_client
from tests.conversations.conftest import visitor_with_trust
from tests.conversations.test_adopt import adopt, open_session, verified_token

pytestmark = pytest.mark.django_db


def sign_in_again(org, device, **details):
    return contact_unverified_sign_in(
        org=org,
        current_device=device,
        name=details.get("name"),
        email=details.get("email"),
        custom_data=details.get("custom_data"),
        method=AuthMethod.BROWSER,
    )


def test_a_logout_after_the_token_check_stands_and_the_browser_starts_afresh(org):
    # given a browser whose token the request has already checked
    visitor = visitor_with_trust(org, Contact.Trust.NON_VERIFIED)
    checked = contact_selectors.device_for_reuse(org=org, token=visitor.token)
    # when that browser's logout commits before the request writes
    device_revoke(device=Device.objects.get(pk=visitor.device.pk))
    issued = sign_in_again(org, checked, name="Nina")
    # then the logout holds, and the request got a new contact on a new device
    assert Device.objects.get(pk=visitor.device.pk).revoked_at is not None
    assert visitor.client.get("/widget/me").status_code == 401
    assert issued.contact.pk != visitor.contact.pk
    assert issued.device.pk != visitor.device.pk
    assert Contact.objects.get(pk=visitor.contact.pk).name == "Nina Visitor"


def test_a_logout_landing_inside_a_request_leaves_the_old_token_dead(org):
    # given an anonymous browser, and a logout that lands while /unverified runs
    visitor = visitor_with_trust(org, Contact.Trust.ANONYMOUS)
    check = contact_selectors.device_for_reuse

    def check_then_log_out(**kwargs):
        device = check(**kwargs)
        assert visitor.client.post("/widget/logout").status_code == 204
        return device

    # when
    with mock.patch("contacts.api.views.selectors.device_for_reuse", check_then_log_out):
        response = widget_client(org, visitor.token).post(
            "/widget/contacts/unverified", {"name": "Nina"}, format="json"
        )
    # then the request is answered with a fresh identity and the old token stays refused
    assert response.status_code == 201
    assert response.json()["contact"]["id"] != str(visitor.contact.pk)
    assert visitor.client.get("/widget/me").status_code == 401
    assert widget_client(org, response.json()["token"]).get("/widget/me").status_code == 200


def test_an_erasure_after_the_token_check_is_not_refilled(org, operator_user):
    # given a non-verified browser whose token the request has already checked
    visitor = visitor_with_trust(org, Contact.Trust.NON_VERIFIED)
    checked = contact_selectors.device_for_reuse(org=org, token=visitor.token)
    # when an operator erases the contact, then the request writes new details
    contact_erase(org=org, contact_id=visitor.contact.pk, actor_user=operator_user)
    issued = sign_in_again(
        org, checked, name="Nina Again", email="nina@again.test", custom_data={"k": "v"}
    )
    # then the erased contact holds nothing personal, its device stays revoked, and the details
    # went to a new contact
    erased = Contact.objects.get(pk=visitor.contact.pk)
    assert (erased.name, erased.email, erased.non_verified_custom_data) == ("", "", {})
    assert Device.objects.get(pk=visitor.device.pk).revoked_at is not None
    assert (issued.contact.name, issued.contact.email) == ("Nina Again", "nina@again.test")


def test_a_returning_browser_updates_only_its_devices_last_visit(org):
    # given a browser's device as checked, and another write to its device in between
    visitor = visitor_with_trust(org, Contact.Trust.ANONYMOUS)
    checked = contact_selectors.device_for_reuse(org=org, token=visitor.token)
    Device.objects.filter(pk=visitor.device.pk).update(user_agent="changed in between")
    # when
    issued = sign_in_again(org, checked, name="Nina")
    # then the same identity is kept and the other write survives
    assert (issued.contact.pk, issued.device.pk) == (visitor.contact.pk, visitor.device.pk)
    assert Device.objects.get(pk=visitor.device.pk).user_agent == "changed in between"
    assert Contact.objects.get(pk=visitor.contact.pk).name == "Nina"


def test_of_two_adoptions_of_one_token_the_later_is_refused(org):
    # given a browser's anonymous history, and another verified customer's request that has
    # checked the same previous token just before the first customer adopts it
    browser = mint(widget_client(org)).json()["token"]
    conversation = open_session(org, browser)
    first, second = verified_token(org), verified_token(org, email="w@shop.test", user_id="w1")
    checked = contact_selectors.device_for_reuse(org=org, token=browser)
    assert adopt(org, first, browser).json() == {"adopted": 1}
    # when the second customer's request goes on with the token as it checked it
    with mock.patch("conversations.adopt.device_for_reuse", return_value=checked):
        response = adopt(org, second, browser)
    # then the later adoption finds the token revoked and moves nothing
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_previous_token"
    listed = widget_client(org, first).get("/widget/sessions").json()["results"]
    assert [c["id"] for c in listed] == [conversation]
