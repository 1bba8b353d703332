"""Delete logged events older than EVENT_LOG_KEEP_DAYS (30 by default), in small batches.

Run it daily or more often (cron or a systemd timer; see docs/operations.md).
A socket that resumes from before what is kept is told to reload.
"""

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from chat.eventlog import events_prune


class Command(BaseCommand):
    help = __doc__.splitlines()[0]

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--keep-days",
            type=float,
            default=None,
            help="days to keep (default: the EVENT_LOG_KEEP_DAYS setting)",
        )
        parser.add_argument("--batch-size", type=int, default=5000, help="rows per transaction")
        parser.add_argument("--dry-run", action="store_true", help="count, delete nothing")

    def handle(self, *args: Any, **options: Any) -> None:
        days = options["keep_days"]
        keep = timedelta(days=settings.EVENT_LOG_KEEP_DAYS if days is None else days)
        if keep <= timedelta(0) or options["batch_size"] < 1:
            self.stderr.write("--keep-days and --batch-size must be positive.")
            raise SystemExit(2)
        result = events_prune(keep=keep, batch=options["batch_size"], dry_run=options["dry_run"])
        if options["dry_run"]:
            self.stdout.write(
                f"Would delete {result.deleted} event(s) up to seq {result.cutoff_seq}."
            )
        else:
            self.stdout.write(
                f"Deleted {result.deleted} event(s) up to seq {result.cutoff_seq} "
                f"in {result.batches} batch(es)."
            )
