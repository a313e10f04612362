"""`manage.py seed_demo [--org SLUG] [--output FILE]`: seed a demo org and print its credentials.

It lives in the top app because it seeds every layer (identity, then contacts, then
conversations); each layer's own `demo.py` does its part.
"""

import json
import os
import sys
import tempfile
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils.text import slugify

from conversations.demo import seed_conversations
from identity.demo import seed_identity

# The slug is the demo users' email domain label (admin@<slug>.chatshield.test): a DNS label.
MAX_SLUG_LENGTH = 63


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
        if len(slug) > MAX_SLUG_LENGTH:
            raise CommandError(f"--org must be at most {MAX_SLUG_LENGTH} characters.")
        if output:
            _output_check(output)
        with transaction.atomic():
            demo = seed_identity(slug=slug)
            seed_conversations(org=demo.org, agent_user=demo.agent)
            credentials = dict(demo.credentials)
        for warning in demo.warnings:
            self.stderr.write(f"warning: {warning}", style_func=self.style.WARNING)
        text = json.dumps(credentials, indent=2, sort_keys=True)
        if output:
            _private_write(output, text + "\n")
            self.stderr.write(f"Demo credentials for org '{slug}' written to {output}")
        else:
            sys.stdout.write(text + "\n")


def _output_check(output: str) -> None:
    """Refuse, before seeding anything, an --output that could not be written."""
    path = Path(output)
    if path.is_dir():
        raise CommandError(f"--output {output} is a directory.")
    folder = path.parent
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        raise CommandError(f"--output {output}: no writable directory {folder}.")


def _private_write(output: str, text: str) -> None:
    """Write the credentials readable by their owner only (0600, whatever the umask), replacing
    the file whole: a symlink at `output` is replaced, never followed, and a reader never sees
    half a file."""
    path = Path(output)
    try:
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as file:
                file.write(text)
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise CommandError(f"--output {output}: {exc.strerror or exc}") from exc
