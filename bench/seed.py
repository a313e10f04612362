"""Seed the benchmark database beyond `seed_demo`: org API keys, contacts and customers.

Run by bench/run.py with the benchmark's environment (DATABASE_URL points at chatshield_bench):
`python bench/seed.py --org-slug bench --contacts 1000 --customers 1000`. Prints one JSON object
with the full keys, which exist nowhere else; they die with the benchmark database.

The customers are the verified users `authenticate-user` signs in (`user{n}@bench.example`,
`bench-user-{n}`), so the route measures sign-ins of known customers, the common case, on a
table whose statistics are fresh (VACUUM ANALYZE at the end), as autovacuum keeps them in
production. Without that, the planner judged verified contacts rare from statistics taken
before the run created them, and walked the org's verified contacts for every sign-in.

The contacts with details get a chat history too (`--messages-per-contact` messages each, in one
conversation), so the messages table is as large as a live one's when the statistics are taken.
Without it the table was empty at ANALYZE, and the foreign-key check each post makes on
commit (the conversation's `last_message`, PostgreSQL's own `SELECT … FOR KEY SHARE`, planned once
per connection and kept) scanned the whole messages table, which the run itself grew by a thousand
rows a second: a cost of an empty table that a deployment sees only until its first autovacuum.
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
    parser.add_argument("--messages-per-contact", type=int, default=10)
    parser.add_argument(
        "--allowed-origin", action="append", default=[], help="the org's allowed origins"
    )
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
    if args.allowed_origin:
        Organization.objects.filter(pk=org.pk).update(allowed_origins=args.allowed_origin)
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
    with_details = []
    for n in range(args.contacts):
        details = n % 2 == 0
        issued = contact_unverified_sign_in(
            org=org,
            current_device=None,
            name=f"Visitor {n}" if details else None,
            email=f"visitor{n}@bench.example" if details else None,
            custom_data=None,
            method=AuthMethod.COLLECT_FORM,
            user_agent="chatshield-bench-seed",
        )
        if details:
            with_details.append(issued)
    history_seed(org=org, issued=with_details, messages_per_contact=args.messages_per_contact)
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


def history_seed(*, org, issued, messages_per_contact: int) -> None:
    """One conversation per contact in `issued`, with its messages, in a few bulk INSERTs; each
    conversation points at its newest message, as the services keep it."""
    from django.db import transaction
    from django.db.models import OuterRef, Subquery

    from conversations.models import Conversation, Message

    if not issued or messages_per_contact <= 0:
        return
    with transaction.atomic():
        conversations = Conversation.objects.bulk_create(
            Conversation(org=org, contact=item.contact, device=item.device) for item in issued
        )
        Message.objects.bulk_create(
            (
                Message(
                    org=org,
                    conversation=conversation,
                    sender_kind=Message.SenderKind.CONTACT,
                    sender_contact=item.contact,
                    sender_auth_info=item.contact.sender_auth_info,
                    body=f"Seeded message {m}",
                )
                for conversation, item in zip(conversations, issued, strict=True)
                for m in range(messages_per_contact)
            ),
            batch_size=2000,
        )
        newest = Message.objects.filter(conversation=OuterRef("pk")).order_by("-pk").values("pk")
        Conversation.objects.filter(org=org, last_message__isnull=True).update(
            last_message=Subquery(newest[:1])
        )


if __name__ == "__main__":
    main()
