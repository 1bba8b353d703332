"""Import a TeamChat export archive (from this or another installation); safe to re-run."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from integrations.exports import importers


class Command(BaseCommand):
    help = "Import a TeamChat export zip. Re-running it creates nothing twice."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("archive")
        parser.add_argument("--dry-run", action="store_true", help="Count only; change nothing.")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            counts = importers.run(
                importers.import_teamchat, options["archive"], dry_run=options["dry_run"]
            )
        except (importers.ImportError_, OSError, ValueError) as exc:
            raise CommandError(str(exc)) from None
        report(self, counts, options["dry_run"])


def report(command: BaseCommand, counts: Any, dry_run: bool) -> None:
    if dry_run:
        command.stdout.write("Dry run: nothing was changed. It would do:")
    for what, n in sorted(counts.items()):
        command.stdout.write(f"  {what}: {n}")
    if not counts:
        command.stdout.write("  nothing to do")
