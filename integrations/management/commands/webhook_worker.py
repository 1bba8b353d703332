"""`manage.py webhook_worker`: deliver the outgoing webhooks' outbox, for as long as it runs."""

import logging
import signal
import threading
import time
from types import FrameType
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser
from django.db import DatabaseError, connection

from integrations.outgoing import delivery
from integrations.outgoing.wakeup import Waiter
from teamchat.metrics import serve_worker_metrics

log = logging.getLogger("integrations.outgoing.worker")

# How often a running worker deletes old deliveries (and once at its start).
PRUNE_EVERY_SECONDS = 3600


class Command(BaseCommand):
    help = (
        "Deliver outgoing webhook events from the outbox (at least once, with retries). "
        "Runs until SIGTERM or SIGINT; --once delivers what is due now and exits. "
        "Any number may run side by side."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--once", action="store_true", help="Deliver what is due now, then exit."
        )
        parser.add_argument(
            "--batch", type=int, default=20, help="Deliveries taken at a time (default 20)."
        )
        parser.add_argument(
            "--metrics-port",
            type=int,
            default=settings.WORKER_METRICS_PORT,
            help="Serve Prometheus metrics at this port's /metrics (0: off; "
            "WORKER_METRICS_ADDR, loopback by default).",
        )

    def handle(self, *args: Any, once: bool, batch: int, metrics_port: int, **options: Any) -> None:
        if not once:
            serve_worker_metrics(metrics_port, settings.WORKER_METRICS_ADDR)
        stop = threading.Event()
        waiter = Waiter(stop)
        if not once:

            def stopping(signum: int, frame: FrameType | None) -> None:
                # The delivery under way finishes (and is recorded) first.
                stop.set()

            signal.signal(signal.SIGTERM, stopping)
            signal.signal(signal.SIGINT, stopping)
            # Listening before the first look: nothing queued in between is missed.
            waiter.listen()
            self.stdout.write("webhook worker started")
            self.stdout.flush()
        pruned_at: float | None = None
        with delivery.client_new() as client:
            while not stop.is_set():
                try:
                    if pruned_at is None or time.monotonic() - pruned_at > PRUNE_EVERY_SECONDS:
                        pruned_at = time.monotonic()
                        delivery.deliveries_prune()
                    taken = delivery.deliveries_process(client, batch)
                except DatabaseError:
                    # The database went away: drop the connection and try again shortly.
                    log.exception("webhook worker: database error")
                    connection.close()
                    if once:
                        raise
                    waiter.wait(settings.WEBHOOK_POLL_SECONDS)
                    continue
                if taken:
                    continue
                if once:
                    break
                # Woken by a queued delivery's NOTIFY (PostgreSQL), or at the next poll.
                waiter.wait(settings.WEBHOOK_POLL_SECONDS)
        waiter.close()
        if not once:
            self.stdout.write("webhook worker stopped")
