"""The demo backend's one write: what a customer's backend does with authenticate-user."""

from config.exceptions import ServiceUnavailable
from contacts import services as contact_services
from conversations.playground.selectors import demo_api_key_for_org
from identity.models import Organization


class DemoBackendUnavailable(ServiceUnavailable):
    default_code = "demo_backend_unavailable"
    default_detail = "demo backend has no API key; run seed_demo"


def demo_verified_sign_in(
    *, org: Organization, email: str, name: str | None, user_id: str, user_agent: str = ""
) -> contact_services.IssuedToken:
    """Sign a demo user in as verified, exactly as `POST /widget/authenticate-user` would.

    It acts with the org's demo API key, the one `seed_demo` made, so senderAuthInfo names that
    key's prefix as a real integration's would; never with a key the org's operators made. Raises
    503 `demo_backend_unavailable` when the org has no usable demo key (never seeded, or the key
    was revoked or has expired), and whatever the verified sign-in raises (409 identity
    conflict); nothing is written then.
    """
    api_key = demo_api_key_for_org(org=org)
    if api_key is None:
        raise DemoBackendUnavailable()
    return contact_services.contact_verified_sign_in(
        org=org,
        profile=contact_services.VerifiedProfile(email=email, user_id=user_id, name=name),
        proof=contact_services.VerifiedProof(
            method=contact_services.AuthMethod.API_KEY, key_id=api_key.prefix
        ),
        user_agent=user_agent,
    )
