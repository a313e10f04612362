"""`manage.py seed_demo [--org SLUG] [--output FILE]`: seed a demo org and print its credentials.

It lives in the top app because it seeds every layer (identity, then contacts, then
conversations); each layer's own `demo.py` does its part.
"""

import json
import sys

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils.text import slugify

from conversations.demo import seed_conversations
from identity.demo import seed_identity


class Command(BaseCommand):
    help = (
        "Create what a demo org is missing (never changing what exists) and write its credentials "
        "as JSON; a credential that no longer works is null, with a warning on stderr."
    )

    def add_arguments(self, parser):
        parser.add_argument("--org", default="demo", help="slug of the org to seed (default demo)")
        parser.add_argument("--output", help="write the credentials JSON to this file")

    def handle(self, *args, org: str, output: str | None, **options):
        slug = slugify(org)
        if not slug or slug != org:
            raise CommandError("--org must be a slug: lowercase letters, digits and hyphens.")
        with transaction.atomic():
            demo = seed_identity(slug=slug)
            seed_conversations(org=demo.org, agent_user=demo.agent)
            credentials = dict(demo.credentials)
        for warning in demo.warnings:
            self.stderr.write(f"warning: {warning}", style_func=self.style.WARNING)
        text = json.dumps(credentials, indent=2, sort_keys=True)
        if output:
            with open(output, "w", encoding="utf-8") as handle:
                handle.write(text + "\n")
            self.stderr.write(f"Demo credentials for org '{slug}' written to {output}")
        else:
            sys.stdout.write(text + "\n")
