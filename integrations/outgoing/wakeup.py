"""Waking the webhook worker as soon as a delivery is queued: LISTEN/NOTIFY on PostgreSQL.

The queuing transaction sends `NOTIFY`, which PostgreSQL delivers to
listening workers when (and only if) it commits; a worker waits on its
`LISTEN` connection instead of sleeping, so an event goes out at once rather
than at the next poll. Polling stays the safety net (a lost listening
connection, other databases).
"""

import logging
import threading
import time
from typing import Any

import psycopg
from django.db import connection

log = logging.getLogger(__name__)

CHANNEL = "teamchat_webhook_outbox"
# Longest single wait, so a stop request is seen within it.
_SLICE_SECONDS = 1.0
# After losing its listening connection, a worker tries again this often.
_RELISTEN_SECONDS = 30.0


def outbox_notify() -> None:
    """Inside the transaction that queued deliveries: wake the workers when it commits."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(f"NOTIFY {CHANNEL}")


def _listen_params() -> dict[str, Any]:
    params = connection.get_connection_params()
    for django_only in ("cursor_factory", "context", "prepare_threshold"):
        params.pop(django_only, None)
    return params


class Waiter:
    """Waits for a notification, at most `timeout` seconds, or until `stop` is set."""

    def __init__(self, stop: threading.Event) -> None:
        self._stop = stop
        self._conn: psycopg.Connection[Any] | None = None
        self._listening = False
        self._relisten_at = 0.0

    def listen(self) -> None:
        """Start listening (PostgreSQL only); on failure the worker just polls."""
        if connection.vendor != "postgresql" or self._conn is not None:
            return
        self._listening = True
        self._relisten_at = time.monotonic() + _RELISTEN_SECONDS
        try:
            self._conn = psycopg.connect(**_listen_params(), autocommit=True)
            self._conn.execute(f"LISTEN {CHANNEL}")
        except psycopg.Error:
            log.warning("webhook worker: cannot LISTEN, polling only", exc_info=True)
            self.close()

    def wait(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not self._stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            if self._conn is None:
                if self._listening and time.monotonic() >= self._relisten_at:
                    self.listen()
                    continue
                self._stop.wait(min(left, _SLICE_SECONDS))
                continue
            try:
                for _ in self._conn.notifies(timeout=min(left, _SLICE_SECONDS), stop_after=1):
                    return
            except psycopg.Error:
                log.warning("webhook worker: lost the LISTEN connection, polling only")
                self.close()

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None
