"""Seed the benchmark database beyond `seed_demo`: org API keys, contacts and customers.

Run by bench/run.py with the benchmark's environment (DATABASE_URL points at chatshield_bench):
`python bench/seed.py --org-slug bench --contacts 1000 --customers 1000`. Prints one JSON object
with the full keys, which exist nowhere else; they die with the benchmark database.

The customers are the verified users `authenticate-user` signs in (`user{n}@bench.example`,
`bench-user-{n}`), so the route measures sign-ins of known customers, the common case, on a
table whose statistics are fresh (VACUUM ANALYZE at the end), as autovacuum keeps them in
production. Without that, the planner judged verified contacts rare from statistics taken
before the run created them, and walked the org's verified contacts for every sign-in.
"""

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--org-slug", required=True)
    parser.add_argument("--contacts", type=int, default=1000)
    parser.add_argument("--customers", type=int, default=1000)
    args = parser.parse_args()

    import django

    django.setup()

    from django.db import connection

    from contacts.services import (
        AuthMethod,
        VerifiedProfile,
        VerifiedProof,
        contact_unverified_sign_in,
        contact_verified_sign_in,
    )
    from identity.models import ApiKey, Organization
    from identity.services import api_key_create

    org = Organization.objects.get(slug=args.org_slug)
    widget_key = api_key_create(
        org=org,
        created_by=None,
        name="bench widget:authenticate",
        scopes=[ApiKey.Scope.WIDGET_AUTHENTICATE],
        expires_at=None,
    )
    read_key = api_key_create(
        org=org,
        created_by=None,
        name="bench contacts:read",
        scopes=[ApiKey.Scope.CONTACTS_READ, ApiKey.Scope.CONVERSATIONS_READ],
        expires_at=None,
    )
    # The agents' contact list pages through the org's contacts: give it a realistic mix to page.
    for n in range(args.contacts):
        details = n % 2 == 0
        contact_unverified_sign_in(
            org=org,
            current_device=None,
            name=f"Visitor {n}" if details else None,
            email=f"visitor{n}@bench.example" if details else None,
            custom_data=None,
            method=AuthMethod.COLLECT_FORM,
            user_agent="chatshield-bench-seed",
        )
    proof = VerifiedProof(method=AuthMethod.API_KEY, key_id=widget_key.api_key.prefix)
    for n in range(1, args.customers + 1):
        contact_verified_sign_in(
            org=org,
            profile=VerifiedProfile(
                email=f"user{n}@bench.example", user_id=f"bench-user-{n}", name=f"User {n}"
            ),
            proof=proof,
            user_agent="chatshield-bench-seed",
        )
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    json.dump(
        {"widget_api_key": widget_key.key, "read_api_key": read_key.key, "org_id": str(org.pk)},
        sys.stdout,
    )
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
