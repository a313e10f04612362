"""Demo seed for the identity layer: an org, an owner and a plain agent with stable credentials."""

from dataclasses import dataclass

from django.conf import settings
from django.db import transaction

from identity.models import ApiKey, Membership, Organization, SigningSecret, User
from identity.tokens import api_key_digest, demo_credential, secret_encrypt


@dataclass
class DemoIdentity:
    org: Organization
    admin: User
    agent: User
    credentials: dict


def _password(slug: str, who: str, env_value: str) -> str:
    return env_value or demo_credential(settings.SECRET_KEY, f"{slug}:{who}-password")


def _user(email: str, password: str, first_name: str, last_name: str) -> User:
    user, _ = User.objects.get_or_create(email=email)
    user.first_name, user.last_name = first_name, last_name
    user.is_staff, user.is_active = True, True
    user.set_password(password)
    user.save()
    return user


@transaction.atomic
def seed_identity(*, slug: str) -> DemoIdentity:
    """Create or refresh the demo org `slug` with an owner and an agent; safe to run again."""
    org, _ = Organization.objects.get_or_create(
        slug=slug, defaults={"name": "Demo Shop" if slug == "demo" else f"Demo {slug}"}
    )
    admin_email = f"admin@{slug}.chatshield.test"
    agent_email = f"agent@{slug}.chatshield.test"
    admin_password = _password(slug, "admin", settings.DEMO_ADMIN_PASSWORD)
    agent_password = _password(slug, "agent", settings.DEMO_AGENT_PASSWORD)
    admin = _user(admin_email, admin_password, "Ada", "Owner")
    agent = _user(agent_email, agent_password, "Sam", "Agent")
    Membership.objects.update_or_create(user=admin, org=org, defaults={"role": "owner"})
    Membership.objects.update_or_create(user=agent, org=org, defaults={"role": "agent"})
    api_key = _demo_api_key(org)
    signing_secret, signing_kid = _demo_signing_secret(org)
    credentials = {
        "org_id": str(org.id),
        "org_slug": org.slug,
        "widget_token": org.widget_token,
        "admin_email": admin_email,
        "admin_password": admin_password,
        "agent_email": agent_email,
        "agent_password": agent_password,
        "api_key": api_key,
        "signing_secret": signing_secret,
        "signing_kid": signing_kid,
    }
    return DemoIdentity(org=org, admin=admin, agent=agent, credentials=credentials)


def _demo_api_key(org: Organization) -> str:
    """The demo key with widget:authenticate, derived from the secret key so re-runs agree."""
    public_id = (
        demo_credential(settings.SECRET_KEY, f"{org.slug}:api-key-id", 16).encode().hex()[:16]
    )
    key = f"csk_{public_id}_{demo_credential(settings.SECRET_KEY, f'{org.slug}:api-key', 40)}"
    ApiKey.objects.update_or_create(
        public_id=public_id,
        defaults={
            "org": org,
            "name": "Demo backend",
            "digest": api_key_digest(key),
            "scopes": [ApiKey.Scope.WIDGET_AUTHENTICATE],
            "revoked_at": None,
            "expires_at": None,
        },
    )
    return key


def _demo_signing_secret(org: Organization) -> tuple[str, str]:
    """The demo HS256 signing secret and its kid, stored encrypted like any other."""
    kid = "kid_demo_" + demo_credential(settings.SECRET_KEY, f"{org.slug}:kid", 12)
    secret = "css_" + demo_credential(settings.SECRET_KEY, f"{org.slug}:signing-secret", 48)
    SigningSecret.objects.update_or_create(
        kid=kid,
        defaults={
            "org": org,
            "algorithm": SigningSecret.Algorithm.HS256,
            "encrypted_secret": secret_encrypt(
                secret, encryption_key=settings.SIGNING_SECRET_ENCRYPTION_KEY
            ),
            "retired_at": None,
        },
    )
    return secret, kid
