"""Make queued exports (and retake those whose process died); `--once` to drain and exit."""

import time
from typing import Any

from django.core.management.base import BaseCommand

from integrations.exports.services import export_work


class Command(BaseCommand):
    help = "Run queued exports (TeamChat's export worker)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--once", action="store_true", help="Run what is queued, then exit.")
        parser.add_argument("--every", type=float, default=2.0, help="Seconds between looks.")

    def handle(self, *args: Any, **options: Any) -> None:
        while True:
            done = export_work()
            if done:
                self.stdout.write(f"{done} export(s) made")
            if options["once"]:
                return
            time.sleep(options["every"])
