"""The audit trail: which changes write an event, what it holds, and who may read it."""

import io

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from django.core.management import call_command
from django.test import Client
from rest_framework.test import APIClient

from identity import services
from identity.models import ApiKey, AuditEvent, Membership, SigningSecret
from tests.conftest import PASSWORD
from tests.factories import MembershipFactory, OrganizationFactory, UserFactory

pytestmark = pytest.mark.django_db

IP = "203.0.113.9"
FORBIDDEN = {
    "error": {
        "code": "permission_denied",
        "message": "You do not have permission to perform this action.",
    }
}


def iso(value) -> str:
    return value.isoformat().replace("+00:00", "Z")


def base(org) -> str:
    return f"/api/v1/orgs/{org.id}"


def summary(event: AuditEvent) -> tuple:
    return (
        event.org_id,
        event.action,
        event.actor_user_id,
        event.actor_api_key_id,
        event.target,
        event.ip,
        event.details,
    )


def audit_rows() -> str:
    out = io.StringIO()
    call_command("dumpdata", "identity.auditevent", stdout=out)
    return out.getvalue()


# --- what is recorded ------------------------------------------------------------------------


def test_api_key_creation_is_recorded_without_the_key(org, operator_client, operator_user):
    # when
    response = operator_client.post(
        f"{base(org)}/api-keys",
        {"name": "backend", "scopes": ["contacts:read", "widget:authenticate"]},
        format="json",
        REMOTE_ADDR=IP,
    )

    # then
    body = response.json()
    assert [summary(e) for e in AuditEvent.objects.all()] == [
        (
            org.id,
            "api_key.created",
            operator_user.id,
            None,
            body["prefix"],
            IP,
            {"name": "backend", "scopes": ["widget:authenticate", "contacts:read"]},
        )
    ]
    assert body["key"] not in audit_rows()
    assert body["key"].rsplit("_", 1)[1] not in audit_rows()


def test_api_key_revocation_is_recorded_once(org, operator_client, operator_user):
    # given
    issued = services.api_key_create(
        org=org, created_by=None, name="old", scopes=["contacts:read"], expires_at=None
    )

    # when: revoked twice
    for _ in range(2):
        response = operator_client.delete(
            f"{base(org)}/api-keys/{issued.api_key.pk}", REMOTE_ADDR=IP
        )
        assert response.status_code == 204

    # then
    assert [summary(e) for e in AuditEvent.objects.filter(action="api_key.revoked")] == [
        (org.id, "api_key.revoked", operator_user.id, None, issued.api_key.prefix, IP, {})
    ]


def test_signing_secrets_created_and_retired_are_recorded_without_key_material(
    org, operator_client, operator_user
):
    # given
    public_pem = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )

    # when
    shared = operator_client.post(
        f"{base(org)}/signing-secrets", {"algorithm": "HS256"}, format="json", REMOTE_ADDR=IP
    ).json()
    public = operator_client.post(
        f"{base(org)}/signing-secrets",
        {"algorithm": "ES256", "public_key": public_pem},
        format="json",
        REMOTE_ADDR=IP,
    ).json()
    operator_client.delete(f"{base(org)}/signing-secrets/{shared['kid']}", REMOTE_ADDR=IP)

    # then
    user = operator_user.id
    assert sorted(summary(e) for e in AuditEvent.objects.all()) == sorted(
        [
            (
                org.id,
                "signing_secret.created",
                user,
                None,
                shared["kid"],
                IP,
                {"algorithm": "HS256"},
            ),
            (
                org.id,
                "signing_secret.created",
                user,
                None,
                public["kid"],
                IP,
                {"algorithm": "ES256"},
            ),
            (org.id, "signing_secret.retired", user, None, shared["kid"], IP, {}),
        ]
    )
    rows = audit_rows()
    assert shared["secret"] not in rows
    assert SigningSecret.objects.get(kid=shared["kid"]).encrypted_secret not in rows


def test_widget_token_rotation_and_settings_changes_are_recorded(
    org, operator_client, operator_user
):
    # when
    old_token = org.widget_token
    operator_client.post(f"{base(org)}/widget-settings/rotate-token", REMOTE_ADDR=IP)
    operator_client.patch(
        f"{base(org)}/widget-settings",
        {"collectUserData": True, "allowedOrigins": ["https://shop.test"]},
        format="json",
        REMOTE_ADDR=IP,
    )

    # then: the setting names, never the values or either widget token
    assert sorted(summary(e) for e in AuditEvent.objects.all()) == [
        (
            org.id,
            "widget_settings.changed",
            operator_user.id,
            None,
            "",
            IP,
            {"fields": ["allowed_origins", "collect_user_data"]},
        ),
        (org.id, "widget_token.rotated", operator_user.id, None, "", IP, {}),
    ]
    org.refresh_from_db()
    assert old_token not in audit_rows()
    assert org.widget_token not in audit_rows()


def test_an_empty_settings_change_records_nothing(org, operator_client):
    response = operator_client.patch(f"{base(org)}/widget-settings", {}, format="json")

    assert response.status_code == 200
    assert not AuditEvent.objects.exists()


def test_a_sign_in_lockout_is_recorded_without_org_or_email(settings, org, agent_user):
    # given
    settings.LOCKOUT_MAX_FAILURES = 3
    client = APIClient()

    # when: three wrong passwords lock the account
    for _ in range(3):
        client.post(
            "/api/v1/auth/token",
            {"email": agent_user.email, "password": "wrong"},
            format="json",
            REMOTE_ADDR=IP,
        )

    # then
    [event] = AuditEvent.objects.all()
    assert (event.org, event.action, event.actor_user, event.ip, event.details) == (
        None,
        "signin.locked_out",
        None,
        IP,
        {},
    )
    assert event.target.startswith("lockout:acct:")
    assert agent_user.email not in audit_rows()
    assert agent_user.email.split("@")[0] not in audit_rows()


def test_membership_changes_in_the_admin_are_recorded_by_user_id_without_email(org, operator_user):
    # given: an operator in the admin, and a newcomer
    admin = admin_client(operator_user)
    newcomer = UserFactory()
    memberships = "/admin/identity/membership/"

    # when: the newcomer is added as an agent, made an admin, saved unchanged, then removed
    added = admin.post(
        f"{memberships}add/",
        {"email": newcomer.email, "org": str(org.pk), "role": "agent"},
        REMOTE_ADDR="203.0.113.7",
    )
    membership = Membership.objects.get(user=newcomer, org=org)
    changed = admin.post(f"{memberships}{membership.pk}/change/", {"role": "admin"})
    unchanged = admin.post(f"{memberships}{membership.pk}/change/", {"role": "admin"})
    removed = admin.post(f"{memberships}{membership.pk}/delete/", {"post": "yes"})

    # then: three events, oldest first; nothing for the save that changed nothing
    assert [added.status_code, changed.status_code, unchanged.status_code] == [302, 302, 302]
    assert removed.status_code == 302
    events = AuditEvent.objects.filter(action__startswith="membership.").order_by("pk")
    target = str(newcomer.pk)
    assert [summary(event) for event in events] == [
        (org.pk, "membership.set", operator_user.pk, None, target, "203.0.113.7",
         {"role": "agent", "previous_role": None}),
        (org.pk, "membership.set", operator_user.pk, None, target, "127.0.0.1",
         {"role": "admin", "previous_role": "agent"}),
        (org.pk, "membership.removed", operator_user.pk, None, target, "127.0.0.1",
         {"previous_role": "admin"}),
    ]  # fmt: skip
    assert newcomer.email not in audit_rows()


def test_a_refused_membership_change_records_nothing(org, operator_user):
    # given: the org's only owner
    membership = Membership.objects.get(user=operator_user, org=org)

    # when: they try to demote themselves
    response = admin_client(operator_user).post(
        f"/admin/identity/membership/{membership.pk}/change/", {"role": "agent"}
    )

    # then
    assert response.status_code == 200
    assert not AuditEvent.objects.filter(action__startswith="membership.").exists()


def test_a_failed_change_records_nothing(org, operator_client, agent_client):
    # when: invalid input, and a non-operator
    invalid = operator_client.post(
        f"{base(org)}/api-keys", {"name": "", "scopes": ["nope"]}, format="json"
    )
    refused = agent_client.post(f"{base(org)}/signing-secrets", {"algorithm": "HS256"})

    # then
    assert (invalid.status_code, refused.status_code) == (400, 403)
    assert not AuditEvent.objects.exists()


def test_the_change_is_undone_when_its_audit_record_fails(org, monkeypatch):
    # given
    def explode(**kwargs):
        raise RuntimeError("audit store unavailable")

    monkeypatch.setattr(services, "audit_record", explode)

    # when
    with pytest.raises(RuntimeError):
        services.api_key_create(
            org=org, created_by=None, name="bot", scopes=["contacts:read"], expires_at=None
        )

    # then
    assert not ApiKey.objects.exists()


def test_services_called_without_an_ip_still_record(org):
    issued = services.api_key_create(
        org=org, created_by=None, name="seed", scopes=["contacts:read"], expires_at=None
    )

    assert [summary(e) for e in AuditEvent.objects.all()] == [
        (
            org.id,
            "api_key.created",
            None,
            None,
            issued.api_key.prefix,
            "",
            {"name": "seed", "scopes": ["contacts:read"]},
        )
    ]


# --- GET /api/v1/orgs/{org}/audit-events -----------------------------------------------------


def test_operators_list_their_orgs_events_newest_first(org, other_org, operator_client):
    # given
    operator = UserFactory(email="ops@example.test")
    issued = services.api_key_create(
        org=org, created_by=operator, name="bot", scopes=["contacts:read"], expires_at=None
    )
    services.audit_record(
        org=org,
        action=AuditEvent.Action.CONTACT_EXPORTED,
        actor_api_key=issued.api_key,
        target="contact-1",
        ip=IP,
        details={"messages": 2},
    )
    services.audit_record(org=other_org, action=AuditEvent.Action.WIDGET_TOKEN_ROTATED)
    services.audit_record(org=None, action=AuditEvent.Action.SIGNIN_LOCKED_OUT, target="x")
    created, exported = AuditEvent.objects.filter(org=org).order_by("pk")

    # when
    response = operator_client.get(f"{base(org)}/audit-events")

    # then
    assert response.status_code == 200
    assert response.json() == {
        "results": [
            {
                "id": exported.pk,
                "action": "contact.exported",
                "actor": {
                    "kind": "api_key",
                    "id": str(issued.api_key.pk),
                    "label": issued.api_key.prefix,
                },
                "target": "contact-1",
                "ip": IP,
                "details": {"messages": 2},
                "created_at": iso(exported.created_at),
            },
            {
                "id": created.pk,
                "action": "api_key.created",
                "actor": {"kind": "user", "id": str(operator.pk), "label": "ops@example.test"},
                "target": issued.api_key.prefix,
                "ip": "",
                "details": {"name": "bot", "scopes": ["contacts:read"]},
                "created_at": iso(created.created_at),
            },
        ],
        "next": None,
    }


def test_events_filter_by_action(org, operator_client):
    services.audit_record(org=org, action=AuditEvent.Action.WIDGET_TOKEN_ROTATED)
    services.audit_record(org=org, action=AuditEvent.Action.CONTACT_ERASED, target="c-1")

    response = operator_client.get(f"{base(org)}/audit-events?action=contact.erased")

    assert [(e["action"], e["target"]) for e in response.json()["results"]] == [
        ("contact.erased", "c-1")
    ]


def test_events_page_by_cursor(org, operator_client):
    # given: one more event than a page holds
    for n in range(51):
        services.audit_record(org=org, action=AuditEvent.Action.CONTACT_EXPORTED, target=str(n))

    # when
    first = operator_client.get(f"{base(org)}/audit-events").json()
    second = operator_client.get(f"{base(org)}/audit-events?cursor={first['next']}").json()

    # then
    targets = [e["target"] for e in first["results"] + second["results"]]
    assert targets == [str(n) for n in reversed(range(51))]
    assert second["next"] is None


@pytest.mark.parametrize(("query", "field"), [("action=nope", "action"), ("cursor=%%%", None)])
def test_bad_filters_are_refused(org, operator_client, query, field):
    response = operator_client.get(f"{base(org)}/audit-events?{query}")

    assert response.status_code == 400
    if field:
        assert list(response.json()["error"]["fields"]) == [field]


def test_agents_and_api_keys_may_not_read_the_audit_trail(org, agent_client):
    issued = services.api_key_create(
        org=org, created_by=None, name="bot", scopes=list(ApiKey.Scope.values), expires_at=None
    )
    key_client = APIClient()
    key_client.credentials(HTTP_AUTHORIZATION=f"Bearer {issued.key}")

    for client in (agent_client, key_client):
        response = client.get(f"{base(org)}/audit-events")
        assert (response.status_code, response.json()) == (403, FORBIDDEN)


def test_another_orgs_audit_trail_is_not_found(other_org, operator_client):
    response = operator_client.get(f"{base(other_org)}/audit-events")

    assert response.status_code == 404


def test_the_list_runs_a_fixed_number_of_queries(
    org, operator_client, operator_user, django_assert_num_queries
):
    for _ in range(5):
        services.api_key_create(
            org=org, created_by=operator_user, name="k", scopes=["contacts:read"], expires_at=None
        )

    # auth (user, membership) and one page of events with their actors
    with django_assert_num_queries(3):
        response = operator_client.get(f"{base(org)}/audit-events")
    assert len(response.json()["results"]) == 5


# --- admin -----------------------------------------------------------------------------------


def admin_client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_operators_read_their_orgs_events_in_the_admin(org, other_org, operator_user):
    # given
    services.audit_record(org=org, action=AuditEvent.Action.CONTACT_ERASED, target="mine-1")
    services.audit_record(org=other_org, action=AuditEvent.Action.CONTACT_ERASED, target="theirs")
    event = AuditEvent.objects.get(target="mine-1")
    client = admin_client(operator_user)

    # when
    changelist = client.get("/admin/identity/auditevent/")
    detail = client.get(f"/admin/identity/auditevent/{event.pk}/change/")

    # then
    assert changelist.status_code == 200
    assert "mine-1" in changelist.content.decode()
    assert "theirs" not in changelist.content.decode()
    assert detail.status_code == 200
    assert 'name="_save"' not in detail.content.decode()


def test_nobody_changes_or_deletes_events_in_the_admin(org, operator_user):
    # given: even a superuser
    superuser = UserFactory(is_superuser=True, password=PASSWORD)
    services.audit_record(org=org, action=AuditEvent.Action.CONTACT_ERASED, target="c-1")
    event = AuditEvent.objects.get()

    for user in (operator_user, superuser):
        client = admin_client(user)
        # when
        add = client.get("/admin/identity/auditevent/add/")
        delete = client.post(f"/admin/identity/auditevent/{event.pk}/delete/", {"post": "yes"})
        change = client.post(f"/admin/identity/auditevent/{event.pk}/change/", {"target": "x"})
        # then
        assert (add.status_code, delete.status_code, change.status_code) == (403, 403, 403)
    event.refresh_from_db()
    assert event.target == "c-1"


def test_agents_do_not_see_the_audit_trail_in_the_admin(org, agent_user):
    response = admin_client(agent_user).get("/admin/identity/auditevent/")

    assert response.status_code == 403


def test_members_of_other_orgs_see_no_events(org):
    services.audit_record(org=org, action=AuditEvent.Action.CONTACT_ERASED, target="c-1")
    stranger = UserFactory()
    MembershipFactory(user=stranger, org=OrganizationFactory(), role="owner")

    response = admin_client(stranger).get("/admin/identity/auditevent/")

    assert response.status_code == 200
    assert "c-1" not in response.content.decode()
