"""Delete uploads that no message carries, older than UPLOADS_UNATTACHED_HOURS (24 by default).

Run it every hour or so (cron or a systemd timer; see docs/operations).
"""

from typing import Any

from django.core.management.base import BaseCommand

from chat.uploads.services import uploads_prune


class Command(BaseCommand):
    help = __doc__.splitlines()[0]

    def handle(self, *args: Any, **options: Any) -> None:
        pruned = uploads_prune()
        self.stdout.write(f"Deleted {pruned} upload(s) never attached to a message.")
