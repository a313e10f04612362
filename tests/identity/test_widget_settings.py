"""PATCH /api/v1/orgs/{org}/widget-settings: what an operator may store, and how it is stored."""

import pytest

from identity.models import AuditEvent, Organization
from tests.contacts.conftest import widget_client

pytestmark = pytest.mark.django_db

LIFETIME_MAXIMUMS = {
    "anonymousTokenLifetime": 365 * 24 * 3600,
    "nonVerifiedTokenLifetime": 365 * 24 * 3600,
    "verifiedTokenLifetime": 7 * 24 * 3600,
}
NOT_AN_ORIGIN = "Must be an origin like https://shop.example.com."
NOT_BARE = "An origin has no path, query or fragment: use https://host[:port]."
HTTPS_ONLY = "Use https://; http:// is allowed for localhost, 127.0.0.1 and [::1] only."
USER_INFO = "An origin has no user name or password: use https://host[:port]."
BAD_PORT = "The port must be between 1 and 65535."
NOT_A_COLOR = "primaryColor: Must be a color like #18bdf7: # and six hex digits."


def settings_url(org) -> str:
    return f"/api/v1/orgs/{org.id}/widget-settings"


def stored(org) -> dict:
    return Organization.objects.filter(pk=org.pk).values().get()


def invalid(fields: dict) -> dict:
    return {"error": {"code": "invalid", "message": "The request is invalid.", "fields": fields}}


# --- token lifetimes ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(LIFETIME_MAXIMUMS))
@pytest.mark.parametrize(
    "excess",
    [1, 2**32, 2**63 - 1, 2**64, 10**20, 10**40, 10**2000],
    ids=["max+1", "2**32", "2**63-1", "2**64", "1e20", "1e40", "1e2000"],
)
def test_a_lifetime_above_the_maximum_is_refused_however_large(operator_client, org, name, excess):
    # given
    maximum = LIFETIME_MAXIMUMS[name]
    value = maximum + 1 if excess == 1 else excess
    before = stored(org)

    # when
    response = operator_client.patch(settings_url(org), {name: value}, format="json")

    # then
    assert response.status_code == 400
    assert response.json() == invalid(
        {name: [f"Ensure this value is less than or equal to {maximum}."]}
    )
    assert stored(org) == before
    assert not AuditEvent.objects.exists()


@pytest.mark.parametrize("name", list(LIFETIME_MAXIMUMS))
def test_a_lifetime_at_the_maximum_is_stored(operator_client, org, name):
    # when
    response = operator_client.patch(
        settings_url(org), {name: LIFETIME_MAXIMUMS[name]}, format="json"
    )

    # then
    assert response.status_code == 200
    assert response.json()[name] == LIFETIME_MAXIMUMS[name]
    org.refresh_from_db()
    assert response.json() == operator_client.get(settings_url(org)).json()


# --- allowed origins ----------------------------------------------------------------------------


def test_origins_are_stored_as_browsers_send_them_without_duplicates(operator_client, org):
    # when
    response = operator_client.patch(
        settings_url(org),
        {
            "allowedOrigins": [
                "HTTPS://Shop.Example.COM:443/",
                "https://app.example.com:8443",
                "https://shop.example.com",
                "http://LOCALHOST:8000",
                "http://127.0.0.1:8000",
                "http://[0:0:0:0:0:0:0:1]:3000",
                "http://localhost:80",
                "https://xn--bcher-kva.example",
            ]
        },
        format="json",
    )

    # then
    expected = [
        "https://shop.example.com",
        "https://app.example.com:8443",
        "http://localhost:8000",
        "http://127.0.0.1:8000",
        "http://[::1]:3000",
        "http://localhost",
        "https://xn--bcher-kva.example",
    ]
    assert response.status_code == 200
    assert response.json()["allowedOrigins"] == expected
    org.refresh_from_db()
    assert org.allowed_origins == expected


def test_an_origin_typed_in_capitals_still_lets_the_browser_in(
    operator_client, org, django_capture_on_commit_callbacks
):
    # given
    with django_capture_on_commit_callbacks(execute=True):
        operator_client.patch(
            settings_url(org), {"allowedOrigins": ["HTTPS://SHOP.EXAMPLE.COM"]}, format="json"
        )
    widget = widget_client(org)

    # when: browsers send the scheme and host in lower case
    allowed = widget.get("/widget/config", HTTP_ORIGIN="https://shop.example.com")
    refused = widget.get("/widget/config", HTTP_ORIGIN="https://other.example.com")

    # then
    assert allowed.status_code == 200
    assert allowed["Access-Control-Allow-Origin"] == "https://shop.example.com"
    assert refused.status_code == 403
    assert refused["Access-Control-Allow-Origin"] == "https://other.example.com"  # to say why
    assert refused.json() == {
        "error": {
            "code": "origin_not_allowed",
            "message": "This origin may not use this widget.",
        }
    }


@pytest.mark.parametrize(
    ("origin", "message"),
    [
        ("http://shop.example.com", HTTPS_ONLY),
        ("http://10.0.0.5:8000", HTTPS_ONLY),
        ("ftp://shop.example.com", HTTPS_ONLY),
        ("https://*.example.com", "Wildcards are not allowed: list each origin."),
        ("*", "Wildcards are not allowed: list each origin."),
        ("https://shop.example.com:99999", BAD_PORT),
        ("https://shop.example.com:0", BAD_PORT),
        ("https://user@shop.example.com", USER_INFO),
        ("https://user:secret@shop.example.com", USER_INFO),
        ("https://shop.example.com/chat", NOT_BARE),
        ("https://shop.example.com?x=1", NOT_BARE),
        ("https://shop.example.com#top", NOT_BARE),
        ("https://shop.example.com//", NOT_BARE),
        (
            "https://bücher.example",
            "Write the host in ASCII (punycode, xn--…), as browsers send it.",
        ),
        ("shop.example.com", NOT_AN_ORIGIN),
        ("https://", NOT_AN_ORIGIN),
        ("https://shop.example.com:", NOT_AN_ORIGIN),
        ("https://shop_example.com", NOT_AN_ORIGIN),
        ("https://-shop.example.com", NOT_AN_ORIGIN),
        ("https://shop.example.com.", NOT_AN_ORIGIN),
        ("https://127.1", NOT_AN_ORIGIN),
        ("https://[fe80::1%25eth0]", NOT_AN_ORIGIN),
        ("javascript:alert(1)", NOT_AN_ORIGIN),
    ],
)
def test_an_entry_that_is_not_a_bare_origin_is_refused(operator_client, org, origin, message):
    # given
    org.allowed_origins = ["https://kept.example.com"]
    org.save()
    before = stored(org)

    # when
    response = operator_client.patch(
        settings_url(org),
        {"allowedOrigins": ["https://shop.example.com", origin]},
        format="json",
    )

    # then
    assert response.status_code == 400
    assert response.json() == invalid({"allowedOrigins": [f"{origin!r}: {message}"]})
    assert stored(org) == before
    assert not AuditEvent.objects.exists()


def test_every_refused_origin_is_named_in_one_error(operator_client, org):
    # given
    before = stored(org)

    # when
    response = operator_client.patch(
        settings_url(org),
        {"allowedOrigins": ["http://shop.example.com", "https://ok.example.com", 7, None]},
        format="json",
    )

    # then
    assert response.status_code == 400
    assert response.json() == invalid(
        {
            "allowedOrigins": [
                f"'http://shop.example.com': {HTTPS_ONLY}",
                "7: Must be a string.",
                "null: This field may not be null.",
            ]
        }
    )
    assert stored(org) == before


def test_more_than_fifty_origins_are_refused(operator_client, org):
    # given
    before = stored(org)
    origins = [f"https://shop{n}.example.com" for n in range(51)]

    # when
    response = operator_client.patch(settings_url(org), {"allowedOrigins": origins}, format="json")

    # then
    assert response.status_code == 400
    assert response.json() == invalid(
        {"allowedOrigins": ["Ensure this field has no more than 50 elements."]}
    )
    assert stored(org) == before


def test_fifty_origins_are_stored(operator_client, org):
    # given
    origins = [f"https://shop{n}.example.com" for n in range(50)]

    # when
    response = operator_client.patch(settings_url(org), {"allowedOrigins": origins}, format="json")

    # then
    assert response.status_code == 200
    org.refresh_from_db()
    assert org.allowed_origins == origins


# --- theme --------------------------------------------------------------------------------------


def test_a_theme_of_known_keys_is_stored_and_served_with_the_color_in_lower_case(
    operator_client, org, django_capture_on_commit_callbacks
):
    # when
    with django_capture_on_commit_callbacks(execute=True):
        response = operator_client.patch(
            settings_url(org),
            {"theme": {"primaryColor": "#18BDF7", "title": "Talk to us"}},
            format="json",
        )

    # then
    theme = {"primaryColor": "#18bdf7", "title": "Talk to us"}
    assert response.status_code == 200
    assert response.json()["theme"] == theme
    org.refresh_from_db()
    assert org.theme == theme
    assert widget_client(org).get("/widget/config").json()["theme"] == theme


@pytest.mark.parametrize(
    ("theme", "messages"),
    [
        ({"primaryColor": "red;}</style><script>alert(1)</script>"}, [NOT_A_COLOR]),
        ({"primaryColor": "red"}, [NOT_A_COLOR]),
        ({"primaryColor": "#fff"}, [NOT_A_COLOR]),
        ({"primaryColor": "#18bdf7 !important"}, [NOT_A_COLOR]),
        ({"primaryColor": None}, ["primaryColor: This field may not be null."]),
        ({"title": {"text": "Hi"}}, ["title: Must be a string."]),
        ({"title": ["Hi"]}, ["title: Must be a string."]),
        ({"title": 7}, ["title: Must be a string."]),
        ({"title": None}, ["title: This field may not be null."]),
        ({"title": ""}, ["title: This field may not be blank."]),
        ({"title": "x" * 201}, ["title: Ensure this field has no more than 200 characters."]),
        (
            {"primaryColor": 1, "title": True},
            ["primaryColor: Must be a string.", "title: Must be a string."],
        ),
        (
            {"title": "Hi", "greeting": "<img src=x onerror=alert(1)>"},
            ["Unknown key 'greeting'; the known keys are primaryColor and title."],
        ),
        (
            {"css": None, "script": {"src": "x"}},
            ["Unknown key 'css' and 1 more; the known keys are primaryColor and title."],
        ),
        ("#18bdf7", ["Must be a JSON object."]),
        ([], ["Must be a JSON object."]),
        (None, ["This field may not be null."]),
    ],
)
def test_a_theme_the_widget_cannot_use_is_refused(operator_client, org, theme, messages):
    # given
    before = stored(org)

    # when
    response = operator_client.patch(settings_url(org), {"theme": theme}, format="json")

    # then
    assert response.status_code == 400
    assert response.json() == invalid({"theme": messages})
    assert stored(org) == before
    assert not AuditEvent.objects.exists()
    assert widget_client(org).get("/widget/config").json()["theme"] == before["theme"]


def test_a_theme_stored_before_the_schema_is_still_served(operator_client, org):
    # given a theme the API refuses today, written before it did
    legacy = {"primaryColor": "red", "font": {"family": None}}
    Organization.objects.filter(pk=org.pk).update(theme=legacy)

    # when
    config = widget_client(org).get("/widget/config")
    read = operator_client.get(settings_url(org))
    other_change = operator_client.patch(
        settings_url(org), {"collectUserData": True}, format="json"
    )

    # then
    assert config.status_code == 200
    assert config.json()["theme"] == legacy
    assert read.status_code == 200
    assert read.json()["theme"] == legacy
    assert other_change.status_code == 200
    assert other_change.json()["theme"] == legacy


@pytest.mark.parametrize("name", ["name", "email", "Email"])
def test_an_extra_field_cannot_take_the_forms_own_names(operator_client, org, name):
    # given
    before = stored(org)
    field = {"name": name, "label": "Company", "type": "text", "required": True}

    # when
    response = operator_client.patch(
        settings_url(org), {"extraDataCollectionFields": [field]}, format="json"
    )

    # then: the widget's Name and Email rows would hide it and answer it with the visitor's name
    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {
        "extraDataCollectionFields.0.name": [
            "name and email are the form's own fields: choose another name."
        ]
    }
    assert stored(org) == before
    assert not AuditEvent.objects.exists()
