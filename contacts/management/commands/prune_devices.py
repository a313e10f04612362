"""`manage.py prune_devices [--dry-run]`: delete the devices no valid token can name any more.

Run it daily (cron, a Kubernetes CronJob): docs/deploy.md, "Maintenance".
"""

from django.core.management.base import BaseCommand, CommandError

from contacts.services import devices_prune


class Command(BaseCommand):
    help = (
        "Delete devices that are revoked or older than the longest token lifetime their contact's "
        "trust allows; their conversations stay. --dry-run only counts them."
    )

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="count, delete nothing")
        parser.add_argument(
            "--batch-size", type=int, default=5000, help="devices per transaction (default 5000)"
        )

    def handle(self, *args, dry_run: bool, batch_size: int, **options):
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1.")
        count = devices_prune(batch_size=batch_size, dry_run=dry_run)
        verb = "would delete" if dry_run else "deleted"
        self.stdout.write(f"prune_devices: {verb} {count} devices")
