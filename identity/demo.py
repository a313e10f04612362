"""Demo seed for the identity layer: an org, an owner and a plain agent with stable credentials."""

from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth.hashers import make_password
from django.db import transaction

from identity.models import ApiKey, AuditEvent, Membership, Organization, SigningSecret, User
from identity.services import TooManyActiveSecrets, audit_record, signing_secret_slot_claim
from identity.tokens import api_key_digest, demo_credential, secret_encrypt

DEMO_API_KEY_NAME = "Demo backend"


@dataclass
class DemoIdentity:
    org: Organization
    admin: User
    agent: User
    credentials: dict
    # Why a credential is None in `credentials`: plain sentences, never the credential itself.
    warnings: list[str]


def _password(slug: str, who: str, env_value: str) -> str:
    return env_value or demo_credential(settings.SECRET_KEY, f"{slug}:{who}-password")


def _user(email: str, password: str, first_name: str, last_name: str) -> User:
    """The user `email`; a new one gets `password`, an existing one is left exactly as it is."""
    user, _ = User.objects.get_or_create(
        email=email,
        defaults={
            "first_name": first_name,
            "last_name": last_name,
            "is_staff": True,
            "password": make_password(password),
        },
    )
    return user


def _working_password(user: User, password: str, who: str, warnings: list[str]) -> str | None:
    """`password` when it still signs `user` in; else None and a warning saying why."""
    if not user.is_active:
        warnings.append(f"{who}_password is null: {user.email} has been deactivated.")
        return None
    if not user.check_password(password):
        warnings.append(
            f"{who}_password is null: {user.email} no longer has the seeded password (it was "
            f"changed after seeding, or DEMO_{who.upper()}_PASSWORD changed)."
        )
        return None
    return password


@transaction.atomic
def seed_identity(*, slug: str) -> DemoIdentity:
    """Create whatever the demo org `slug` is missing; never change what exists.

    A password is set, a role given, the demo API key and signing secret issued only when their
    row is created, so an operator's later password or role change, revocation or retirement
    stands on every re-run. The demo signing secret is not created when the org already has its
    maximum of active secrets. A credential that would not work (password changed, user
    deactivated, key revoked or expired, secret retired or never created) is None in
    `credentials`, with a warning saying which and why in `warnings`. New keys and secrets are
    audited as the services audit theirs (no actor: the seed acts for nobody).
    """
    warnings: list[str] = []
    org, _ = Organization.objects.get_or_create(
        slug=slug, defaults={"name": "Demo Shop" if slug == "demo" else f"Demo {slug}"}
    )
    admin_email = f"admin@{slug}.chatshield.test"
    agent_email = f"agent@{slug}.chatshield.test"
    admin_password = _password(slug, "admin", settings.DEMO_ADMIN_PASSWORD)
    agent_password = _password(slug, "agent", settings.DEMO_AGENT_PASSWORD)
    admin = _user(admin_email, admin_password, "Ada", "Owner")
    agent = _user(agent_email, agent_password, "Sam", "Agent")
    Membership.objects.get_or_create(user=admin, org=org, defaults={"role": Membership.Role.OWNER})
    Membership.objects.get_or_create(user=agent, org=org, defaults={"role": Membership.Role.AGENT})
    working_admin_password = _working_password(admin, admin_password, "admin", warnings)
    working_agent_password = _working_password(agent, agent_password, "agent", warnings)
    api_key = _demo_api_key(org, warnings)
    signing_secret, signing_kid = _demo_signing_secret(org, warnings)
    credentials = {
        "org_id": str(org.id),
        "org_slug": org.slug,
        "widget_token": org.widget_token,
        "admin_email": admin_email,
        "admin_password": working_admin_password,
        "agent_email": agent_email,
        "agent_password": working_agent_password,
        "api_key": api_key,
        "signing_secret": signing_secret,
        "signing_kid": signing_kid,
    }
    return DemoIdentity(
        org=org, admin=admin, agent=agent, credentials=credentials, warnings=warnings
    )


def demo_api_key_public_id(slug: str) -> str:
    """The public id of the demo API key `seed_demo` makes for the org `slug`.

    Derived from the secret key, so only this server's seed makes it; the playground's demo
    backend acts with this key alone.
    """
    return demo_credential(settings.SECRET_KEY, f"{slug}:api-key-id", 16).encode().hex()[:16]


def demo_api_key(org: Organization) -> ApiKey | None:
    """The row of the demo API key `seed_demo` made for `org`, whatever its state; None when the
    org was never seeded (on this server, under this slug)."""
    return ApiKey.objects.filter(org=org, public_id=demo_api_key_public_id(org.slug)).first()


def _demo_api_key(org: Organization, warnings: list[str]) -> str | None:
    """The demo key with widget:authenticate, derived from the secret key so re-runs agree.

    Created when absent; an existing row is never changed, so a revoked key stays revoked and
    the key is None (with a warning) while it cannot authenticate.
    """
    public_id = demo_api_key_public_id(org.slug)
    key = f"csk_{public_id}_{demo_credential(settings.SECRET_KEY, f'{org.slug}:api-key', 40)}"
    api_key = ApiKey.objects.filter(public_id=public_id).first()
    if api_key is None:
        scopes = [ApiKey.Scope.WIDGET_AUTHENTICATE]
        api_key = ApiKey.objects.create(
            org=org,
            name=DEMO_API_KEY_NAME,
            public_id=public_id,
            digest=api_key_digest(key),
            scopes=scopes,
        )
        audit_record(
            org=org,
            action=AuditEvent.Action.API_KEY_CREATED,
            target=api_key.prefix,
            details={"name": DEMO_API_KEY_NAME, "scopes": scopes},
        )
        return key
    if not api_key.is_usable():
        why = "was revoked" if api_key.revoked_at is not None else "has expired"
        warnings.append(f"api_key is null: the demo API key {api_key.prefix} {why}.")
        return None
    return key


def _demo_signing_secret(
    org: Organization, warnings: list[str]
) -> tuple[str, str] | tuple[None, None]:
    """The demo HS256 signing secret and its kid, stored encrypted like any other.

    Created when absent and the org has room for one more active secret (the services' own slot
    check, under the same org lock); an existing row is never changed, so a retired secret stays
    retired. Both values are None (with a warning) when the secret is retired or was not created.
    """
    kid = "kid_demo_" + demo_credential(settings.SECRET_KEY, f"{org.slug}:kid", 12)
    secret = "css_" + demo_credential(settings.SECRET_KEY, f"{org.slug}:signing-secret", 48)
    signing_secret = SigningSecret.objects.filter(kid=kid).first()
    if signing_secret is None:
        try:
            signing_secret_slot_claim(org)
        except TooManyActiveSecrets:
            warnings.append(
                "signing_secret and signing_kid are null: the org already has "
                f"{SigningSecret.MAX_ACTIVE} active signing secrets, so the demo secret was not "
                "created (retire one and run seed_demo again)."
            )
            return None, None
        signing_secret = SigningSecret.objects.create(
            org=org,
            kid=kid,
            algorithm=SigningSecret.Algorithm.HS256,
            encrypted_secret=secret_encrypt(
                secret, encryption_key=settings.SIGNING_SECRET_ENCRYPTION_KEY
            ),
        )
        audit_record(
            org=org,
            action=AuditEvent.Action.SIGNING_SECRET_CREATED,
            target=kid,
            details={"algorithm": signing_secret.algorithm},
        )
        return secret, kid
    if signing_secret.retired_at is not None:
        warnings.append(
            f"signing_secret and signing_kid are null: the demo signing secret {kid} was retired."
        )
        return None, None
    return secret, kid
