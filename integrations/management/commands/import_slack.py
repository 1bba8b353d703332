"""Import a Slack export (zip): people, channels, messages, threads, reactions, files."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from integrations.exports import importers

from .import_export import report


class Command(BaseCommand):
    help = "Import a Slack export zip. Re-running it creates nothing twice."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("archive")
        parser.add_argument("--dry-run", action="store_true", help="Count only; change nothing.")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            counts = importers.run(
                importers.import_slack, options["archive"], dry_run=options["dry_run"]
            )
        except (importers.ImportError_, OSError, ValueError, KeyError) as exc:
            raise CommandError(f"Could not import {options['archive']}: {exc}") from None
        report(self, counts, options["dry_run"])
