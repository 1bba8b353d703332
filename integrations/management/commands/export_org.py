"""Export the whole organization to a file, as an admin's export would (docs/export.md)."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from accounts.models import User
from integrations.audit import audit_record
from integrations.exports import archive


class Command(BaseCommand):
    help = "Write the organization's export archive (zip) to --output."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--output", required=True, help="Where to write the zip.")
        parser.add_argument(
            "--as",
            dest="admin",
            default="",
            help="The admin named in the archive and the audit log.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        admin = (
            User.objects.filter(username=options["admin"]).first()
            if options["admin"]
            else User.objects.filter(is_superuser=True).order_by("id").first()
        )
        if admin is None:
            raise CommandError("No such admin: name one with --as.")
        with open(options["output"], "wb") as out:
            counts = archive.write(out, scope="org", requested_by=admin)
        audit_record(action="export.command", actor=admin, target="export:org", data=counts)
        self.stdout.write(", ".join(f"{n} {k}" for k, n in counts.items()))
