"""Re-running `seed_demo` creates what is missing and never undoes an operator's change."""

import io
import json
import os
import stat

import pytest
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from identity import services
from identity.models import ApiKey, AuditEvent, Membership, Organization, SigningSecret, User
from tests.factories import OrganizationFactory

pytestmark = pytest.mark.django_db

UNAUTHENTICATED = {
    "error": {
        "code": "not_authenticated",
        "message": "Authentication credentials were not provided or are not valid.",
    }
}


def seed(tmp_path, name: str) -> tuple[dict, str]:
    """Run `seed_demo --output`; its JSON and its stderr."""
    output, stderr = tmp_path / f"{name}.json", io.StringIO()
    call_command("seed_demo", output=str(output), stderr=stderr)
    return json.loads(output.read_text()), stderr.getvalue()


def authenticate_user(key: str):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client.post("/widget/authenticate-user", {"email": "x@y.test"}, format="json")


def test_a_rerun_keeps_a_revoked_demo_api_key_revoked_and_prints_null(tmp_path):
    # given
    first, _ = seed(tmp_path, "first")
    api_key = ApiKey.objects.get()
    revoked = services.api_key_revoke(org=api_key.org, api_key_id=api_key.pk, revoked_by=None)

    # when
    second, stderr = seed(tmp_path, "second")

    # then
    assert second == {**first, "api_key": None}
    assert "api_key is null: the demo API key " + api_key.prefix + " was revoked." in stderr
    assert first["api_key"] not in stderr
    assert ApiKey.objects.get().revoked_at == revoked.revoked_at
    response = authenticate_user(first["api_key"])
    assert response.status_code == 401
    assert response.json() == UNAUTHENTICATED


def test_a_rerun_keeps_a_retired_demo_signing_secret_retired_and_prints_null(tmp_path):
    # given
    first, _ = seed(tmp_path, "first")
    signing_secret = SigningSecret.objects.get()
    retired = services.signing_secret_retire(
        org=signing_secret.org, kid=first["signing_kid"], retired_by=None
    )

    # when
    second, stderr = seed(tmp_path, "second")

    # then
    assert second == {**first, "signing_secret": None, "signing_kid": None}
    assert f"the demo signing secret {first['signing_kid']} was retired." in stderr
    assert first["signing_secret"] not in stderr
    assert SigningSecret.objects.get().retired_at == retired.retired_at


def test_a_rerun_never_makes_a_third_active_secret(tmp_path):
    # given: the operator retired the demo secret and made two of their own
    first, _ = seed(tmp_path, "first")
    org = SigningSecret.objects.get().org
    services.signing_secret_retire(org=org, kid=first["signing_kid"], retired_by=None)
    own = {services.signing_secret_create_shared(org=org, created_by=None) for _ in range(2)}

    # when
    second, _ = seed(tmp_path, "second")

    # then
    active = SigningSecret.objects.filter(org=org, retired_at__isnull=True)
    assert set(active.values_list("kid", flat=True)) == {s.signing_secret.kid for s in own}
    assert (second["signing_secret"], second["signing_kid"]) == (None, None)


def test_the_demo_secret_is_not_created_when_the_org_already_has_two_active(tmp_path):
    # given
    org = OrganizationFactory(slug="demo")
    own = {services.signing_secret_create_shared(org=org, created_by=None) for _ in range(2)}

    # when
    data, stderr = seed(tmp_path, "only")

    # then
    active = SigningSecret.objects.filter(org=org, retired_at__isnull=True)
    assert set(active.values_list("kid", flat=True)) == {s.signing_secret.kid for s in own}
    assert SigningSecret.objects.count() == 2
    assert (data["signing_secret"], data["signing_kid"]) == (None, None)
    assert "the org already has 2 active signing secrets" in stderr
    assert authenticate_user(data["api_key"]).status_code == 201


def test_a_rerun_keeps_a_changed_password_and_prints_null(tmp_path):
    # given
    first, _ = seed(tmp_path, "first")
    admin = User.objects.get(email=first["admin_email"])
    admin.set_password("the owner's own password")
    admin.save()

    # when
    second, stderr = seed(tmp_path, "second")

    # then
    assert second == {**first, "admin_password": None}
    assert f"admin_password is null: {first['admin_email']} no longer has" in stderr
    assert first["admin_password"] not in stderr
    admin.refresh_from_db()
    assert admin.check_password("the owner's own password")
    assert not admin.check_password(first["admin_password"])


def test_a_rerun_keeps_a_deactivated_user_deactivated_and_prints_null(tmp_path):
    # given
    first, _ = seed(tmp_path, "first")
    User.objects.filter(email=first["agent_email"]).update(is_active=False)

    # when
    second, stderr = seed(tmp_path, "second")

    # then
    assert second == {**first, "agent_password": None}
    assert f"agent_password is null: {first['agent_email']} has been deactivated." in stderr
    assert User.objects.get(email=first["agent_email"]).is_active is False


def test_a_rerun_keeps_a_changed_role(tmp_path):
    # given
    first, _ = seed(tmp_path, "first")
    admin = Membership.objects.get(user__email=first["admin_email"])
    # written directly: the services refuse to demote an org's last owner
    Membership.objects.filter(pk=admin.pk).update(role=Membership.Role.AGENT)

    # when
    second, _ = seed(tmp_path, "second")

    # then
    assert second == first
    roles = dict(Membership.objects.values_list("user__email", "role"))
    assert roles == {first["admin_email"]: "agent", first["agent_email"]: "agent"}


def test_the_seed_audits_the_key_and_secret_it_creates_and_a_rerun_adds_nothing(tmp_path):
    # given
    first, _ = seed(tmp_path, "first")
    events = list(AuditEvent.objects.values("action", "actor_user", "target", "details"))

    # when
    seed(tmp_path, "second")

    # then
    prefix = ApiKey.objects.get().prefix
    assert sorted(events, key=lambda e: e["action"]) == [
        {
            "action": "api_key.created",
            "actor_user": None,
            "target": prefix,
            "details": {"name": "Demo backend", "scopes": ["widget:authenticate"]},
        },
        {
            "action": "signing_secret.created",
            "actor_user": None,
            "target": first["signing_kid"],
            "details": {"algorithm": "HS256"},
        },
    ]
    assert AuditEvent.objects.count() == 2


# --- where the credentials go ------------------------------------------------------------------


def test_the_credentials_file_is_readable_by_its_owner_only_whatever_the_umask(tmp_path):
    previous = os.umask(0o022)
    try:
        seed(tmp_path, "demo")
    finally:
        os.umask(previous)

    assert stat.S_IMODE((tmp_path / "demo.json").stat().st_mode) == 0o600


def test_a_symlink_at_the_output_is_replaced_not_followed(tmp_path):
    # given: a link to a file the command must not write through
    elsewhere = tmp_path / "elsewhere.txt"
    elsewhere.write_text("keep me")
    (tmp_path / "demo.json").symlink_to(elsewhere)

    # when
    data, _ = seed(tmp_path, "demo")

    # then
    assert elsewhere.read_text() == "keep me"
    assert not (tmp_path / "demo.json").is_symlink()
    assert data["org_id"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo.json", "elsewhere.txt"]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"output": "{tmp}/missing/demo.json"}, "no writable directory"),
        ({"output": "{tmp}"}, "is a directory"),
        ({"org": "o" * 64}, "at most 63 characters"),
    ],
)
def test_an_unusable_output_or_a_long_org_is_refused_before_anything_is_seeded(
    tmp_path, arguments, message
):
    arguments = {name: value.format(tmp=tmp_path) for name, value in arguments.items()}

    with pytest.raises(CommandError, match=message):
        call_command("seed_demo", **arguments)

    assert not User.objects.exists()
    assert not Organization.objects.exists()
