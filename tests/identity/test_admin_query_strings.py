"""Admin changelists read only the filters they offer, and no query string gives a 500."""

import pytest
from django.contrib import admin
from django.contrib.auth.models import Group
from django.db import models
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from rest_framework_simplejwt.tokens import RefreshToken

from contacts.models import Contact
from identity import services
from tests.factories import (
    MembershipFactory,
    MessageFactory,
    UserFactory,
    VerifiedContactFactory,
)

pytestmark = pytest.mark.django_db

REGISTERED = sorted(admin.site._registry.items(), key=lambda item: item[0]._meta.label)
ROLES = ("agent", "owner", "superuser")


def sees(role: str, model_admin) -> bool:
    """Members see what their role may view (identity.admin_scoping); the rest is superusers'."""
    return role == "superuser" or role in getattr(model_admin, "view_roles", ())


def changelists(*, visible_only: bool) -> list:
    return [
        pytest.param(role, model, model_admin, id=f"{model._meta.label}-{role}")
        for model, model_admin in REGISTERED
        for role in ROLES
        if sees(role, model_admin) or not visible_only
    ]


EVERY_LIST = pytest.mark.parametrize(
    ("role", "model", "model_admin"), changelists(visible_only=False)
)
VISIBLE_LISTS = pytest.mark.parametrize(
    ("role", "model", "model_admin"), changelists(visible_only=True)
)
INVALID = {"error": {"code": "invalid", "message": "The request is invalid."}}
FORBIDDEN = {
    "error": {
        "code": "permission_denied",
        "message": "You do not have permission to perform this action.",
    }
}
CONTACTS = "/admin/contacts/contact/"


def changelist_url(model) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")


@pytest.fixture
def every_table(org, other_org):
    """A row in every table an admin lists, in two orgs, so each filter's SQL really runs."""
    for each in (org, other_org):
        contact = VerifiedContactFactory(org=each, custom_data={"plan": "gold"})
        contact.last_seen_at = timezone.now()
        contact.save(update_fields=["last_seen_at"])
        MessageFactory(conversation__contact=contact)
        services.api_key_create(
            org=each, created_by=None, name="ci", scopes=["widget:authenticate"], expires_at=None
        )
        services.signing_secret_create_shared(org=each, created_by=None)
    Group.objects.create(name="support")
    RefreshToken.for_user(UserFactory()).blacklist()


def signed_in(role: str, org) -> Client:
    if role == "superuser":
        user = UserFactory(is_superuser=True)
    else:
        user = MembershipFactory(org=org, role=role).user
    client = Client(raise_request_exception=False)
    client.force_login(user)
    return client


def hostile_queries(model) -> list[str]:
    """Lookups on every column, with values only the database (or the year bounds) refuses."""
    queries = ["id__gt=abc", "pk=%00", "nope=1", "_changelist_filters=%00", "o=%00&p=%00"]
    for field in model._meta.concrete_fields:
        name = field.name
        queries.append(f"{name}=%00")
        if isinstance(field, models.CharField | models.TextField):
            queries += [f"{name}__regex=%5B", f"{name}__startswith=0"]
        if isinstance(field, models.DateTimeField | models.DateField):
            queries += [f"{name}__year=10000", f"{name}__year=9999"]
        if isinstance(field, models.JSONField):
            queries.append(f"{name}__plan=%00")
        if field.is_relation:
            queries.append(f"{name}__id__gt=abc")
    return queries


def answer(response) -> tuple:
    if response.status_code == 302:
        return (302, response["Location"])
    return (response.status_code, response.json())


@EVERY_LIST
def test_no_query_string_gives_a_500_on_any_changelist(every_table, org, role, model, model_admin):
    # given
    client = signed_in(role, org)
    url = changelist_url(model)

    # when
    answers = {query: answer(client.get(f"{url}?{query}")) for query in hostile_queries(model)}

    # then: a lookup the list does not offer is Django's 400, a value no query can take goes
    # back to the list with ?e=1, and a list the role may not see stays a 403
    refused = (
        [(400, INVALID), (302, f"{url}?e=1")] if sees(role, model_admin) else [(403, FORBIDDEN)]
    )
    assert {query: got for query, got in answers.items() if got not in refused} == {}


def shown_changelist(client, url):
    response = client.get(url)
    assert response.status_code == 200
    return response.context["cl"]


@VISIBLE_LISTS
def test_every_filter_ordering_search_and_page_link_still_works(
    every_table, org, role, model, model_admin
):
    # given
    client = signed_in(role, org)
    url = changelist_url(model)
    cl = shown_changelist(client, url)
    links = [choice["query_string"] for spec in cl.filter_specs for choice in spec.choices(cl)]
    links += ["?o=1", "?o=-1.2", "?p=1", "?all=", "?q=a", "?q=%00", "?_facets=1"]

    # when
    answers = {link: client.get(f"{url}{link}").status_code for link in links}

    # then
    assert answers == dict.fromkeys(links, 200)


@VISIBLE_LISTS
def test_a_nul_in_an_offered_filter_goes_back_to_the_list(
    every_table, org, role, model, model_admin
):
    # given
    client = signed_in(role, org)
    url = changelist_url(model)
    cl = shown_changelist(client, url)
    names = [name for spec in cl.filter_specs for name in spec.expected_parameters()]

    # when
    answers = {name: answer(client.get(f"{url}?{name}=%00")) for name in names}

    # then
    assert answers == dict.fromkeys(names, (302, f"{url}?e=1"))


def test_the_org_filter_takes_an_org_id_and_refuses_what_is_not_one(every_table, org, other_org):
    # given: an agent of two orgs is offered the org filter
    client = signed_in("agent", org)
    MembershipFactory(user=client.get(CONTACTS).wsgi_request.user, org=other_org)

    # when
    mine = client.get(f"{CONTACTS}?org={org.pk}")
    not_an_id = client.get(f"{CONTACTS}?org=abc")

    # then
    assert mine.status_code == 200
    assert {contact.org_id for contact in mine.context["cl"].result_list} == {org.pk}
    assert (not_an_id.status_code, not_an_id["Location"]) == (302, f"{CONTACTS}?e=1")


def test_hidden_columns_of_keys_and_secrets_cannot_be_filtered(every_table, org):
    # given
    client = signed_in("owner", org)

    # when
    digest = client.get("/admin/identity/apikey/?digest__startswith=0")
    ciphertext = client.get("/admin/identity/signingsecret/?encrypted_secret__startswith=g")

    # then
    assert (digest.status_code, digest.json()) == (400, INVALID)
    assert (ciphertext.status_code, ciphertext.json()) == (400, INVALID)


def test_autocomplete_search_with_a_nul_finds_nothing(every_table, org):
    # given
    client = signed_in("agent", org)
    url = "/admin/autocomplete/?app_label=contacts&model_name=contact&field_name=org"

    # when
    nul = client.get(f"{url}&term=%00")
    found = client.get(f"{url}&term={org.name}")

    # then
    assert (nul.status_code, nul.json()) == (200, {"results": [], "pagination": {"more": False}})
    assert found.json()["results"] == [{"id": str(org.pk), "text": str(org)}]


@pytest.fixture
def contacts_by_last_seen(monkeypatch, org):
    """A date drill-down on the contacts list (last_seen_at), and a contact seen on 2026-03-14."""
    monkeypatch.setattr(admin.site._registry[Contact], "date_hierarchy", "last_seen_at")
    contact = VerifiedContactFactory(org=org)
    contact.last_seen_at = timezone.now().replace(year=2026, month=3, day=14)
    contact.save(update_fields=["last_seen_at"])
    return contact


@pytest.mark.parametrize(
    "query",
    [
        "last_seen_at__year=2026",
        "last_seen_at__year=2026&last_seen_at__month=3",
        "last_seen_at__year=2026&last_seen_at__month=3&last_seen_at__day=14",
    ],
)
def test_date_drill_down_still_works(contacts_by_last_seen, org, query):
    # when
    response = signed_in("agent", org).get(f"{CONTACTS}?{query}")

    # then
    assert response.status_code == 200
    assert list(response.context["cl"].result_list) == [contacts_by_last_seen]


@pytest.mark.parametrize(
    "query",
    [
        "last_seen_at__year=10000",
        "last_seen_at__year=9999",
        "last_seen_at__year=0",
        "last_seen_at__year=%D9%A1",
        "last_seen_at__year=99999999999999999999",
        "last_seen_at__year=2026&last_seen_at__month=13",
        "last_seen_at__year=2026&last_seen_at__month=2&last_seen_at__day=30",
        "last_seen_at__year=9999&last_seen_at__month=12&last_seen_at__day=31",
        "last_seen_at__month=99999999999999999999",
        "last_seen_at__year=2026&last_seen_at__day=%00",
    ],
)
def test_date_drill_down_that_names_no_date_goes_back_to_the_list(
    contacts_by_last_seen, org, query
):
    # when
    response = signed_in("agent", org).get(f"{CONTACTS}?{query}")

    # then
    assert (response.status_code, response["Location"]) == (302, f"{CONTACTS}?e=1")


def test_date_drill_down_offers_only_its_own_parts(contacts_by_last_seen, org):
    # when
    response = signed_in("agent", org).get(f"{CONTACTS}?last_seen_at__gte=2026-01-01")

    # then
    assert (response.status_code, response.json()) == (400, INVALID)
