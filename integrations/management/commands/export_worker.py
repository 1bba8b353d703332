"""Make queued exports (and retake those whose process died); `--once` to drain and exit."""

import time
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

from integrations.exports.services import export_work
from teamchat.metrics import serve_worker_metrics


class Command(BaseCommand):
    help = "Run queued exports (TeamChat's export worker)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--once", action="store_true", help="Run what is queued, then exit.")
        parser.add_argument("--every", type=float, default=2.0, help="Seconds between looks.")
        parser.add_argument(
            "--metrics-port",
            type=int,
            default=settings.WORKER_METRICS_PORT,
            help="Serve Prometheus metrics at this port's /metrics (0: off; "
            "WORKER_METRICS_ADDR, loopback by default).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if not options["once"]:
            serve_worker_metrics(options["metrics_port"], settings.WORKER_METRICS_ADDR)
        while True:
            done = export_work()
            if done:
                self.stdout.write(f"{done} export(s) made")
            if options["once"]:
                return
            time.sleep(options["every"])
