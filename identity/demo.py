"""Demo seed for the identity layer: an org, an owner and a plain agent with stable credentials."""

from dataclasses import dataclass

from django.conf import settings
from django.db import transaction

from identity.models import Membership, Organization, User
from identity.tokens import demo_credential


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
    credentials = {
        "org_id": str(org.id),
        "org_slug": org.slug,
        "widget_token": org.widget_token,
        "admin_email": admin_email,
        "admin_password": admin_password,
        "agent_email": agent_email,
        "agent_password": agent_password,
    }
    return DemoIdentity(org=org, admin=admin, agent=agent, credentials=credentials)
