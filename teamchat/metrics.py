"""The server's Prometheus metrics (prometheus-client), one set per server process.

Counted where the work happens and exposed by `teamchat.ops.metrics`; the
names all start with `teamchat_`. The client library's default collectors add
the process's CPU time, memory and open files.

Each daphne process serves its own numbers at its own `/metrics` (Prometheus
scrapes every process and sums), so no multi-process file directory is needed;
the worker commands can serve theirs on a port of their own (`serve_worker_metrics`).
Labels only ever take a fixed set of values (frame types, error codes,
reasons): never a user, a room or a token.
"""

import logging
from collections.abc import Iterator

from prometheus_client import REGISTRY, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from chat.errors import Code

log = logging.getLogger(__name__)

OPEN_SOCKETS = Gauge("teamchat_open_sockets", "Sockets open in this process.")
HANDSHAKES = Counter(
    "teamchat_handshakes_total", "Socket handshakes: accepted, or why refused.", ["outcome"]
)
# Every `code` an error frame can carry is a fixed word of the protocol.
ERRORS = Counter("teamchat_errors_total", "Error frames sent to clients, by code.", ["code"])
for _code in Code:
    ERRORS.labels(_code.value)  # shown at 0, so rates exist before the first error
TOKEN_AUTH = Counter(
    "teamchat_token_auth_total", "Bearer-token authentications (API and socket).", ["outcome"]
)
FRAMES_IN = Counter("teamchat_frames_in_total", "Client frames received, by type.", ["type"])
RATE_LIMITED = Counter(
    "teamchat_rate_limited_frames_total", "Client frames refused as too fast, by type.", ["type"]
)
MESSAGES_STORED = Counter("teamchat_messages_stored_total", "Messages committed to the database.")
COMMIT_BATCH = Histogram(
    "teamchat_commit_batch_messages",
    "Messages per group commit.",
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500),
)
COMMIT_SECONDS = Histogram(
    "teamchat_commit_seconds",
    "Time to store one group-commit batch, access checks to publish.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
ORDER_LOCK_WAIT = Histogram(
    "teamchat_order_lock_wait_seconds",
    "Time a logged change waited for the global ordering lock (its BEGIN included).",
    buckets=(0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1),
)
ORDER_LOCK_HELD = Histogram(
    "teamchat_order_lock_held_seconds",
    "Time the global ordering lock was held (first reads, writes, commit and publish).",
    buckets=(0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1),
)
EVENTS_PUBLISHED = Counter(
    "teamchat_events_published_total", "Logged events published to the server processes."
)
PUBLISH_FAILURES = Counter(
    "teamchat_publish_failures_total",
    "Publishes of committed events the channel layer refused or timed out.",
)
TRANSACTIONS_LEFT_OPEN = Counter(
    "teamchat_transactions_left_open_total",
    "Database connections of the side and handshake threads found inside a transaction "
    "between two pieces of work, and closed.",
)
EVENTS_PRUNED = Counter(
    "teamchat_events_pruned_total", "Logged events deleted past the retention horizon."
)
GAP_FILLS = Counter(
    "teamchat_gap_fills_total",
    "Times this process found logged events it was never sent and sent them from the log.",
)
LATE_EVENTS_DROPPED = Counter(
    "teamchat_late_events_dropped_total",
    "Live events that arrived after a gap fill had already sent them from the log.",
)
EVENTS_DELIVERED = Counter(
    "teamchat_events_delivered_total", "Event frames written to this process's sockets."
)
PRESENCE_FRAMES = Counter(
    "teamchat_presence_frames_total", "Presence frames written to this process's sockets."
)
REPLAYS = Counter("teamchat_replays_total", "Catch-up replays of the event log run for sockets.")
REPLAYED_EVENTS = Counter("teamchat_replayed_events_total", "Events sent by catch-up replays.")
REPLAY_SIZE = Histogram(
    "teamchat_replay_events",
    "Events sent by one catch-up replay (those told to reload included).",
    buckets=(0, 1, 10, 100, 500, 1000, 2500, 5000, 10000),
)
REPLAY_RELOADS = Counter(
    "teamchat_replay_reloads_total",
    "Catch-ups too far behind: the client was told to reload (close 4410).",
)
FANOUT_LATENCY = Histogram(
    "teamchat_fanout_latency_seconds",
    "From an event's publish (right after its commit) to its frame handed to the last "
    "local socket it is for; one observation per event and process.",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
GC_PAUSE = Histogram(
    "teamchat_gc_pause_seconds",
    "How long each garbage collection of the server process took (every thread waits for it).",
    ["generation"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
READS_HELD = Counter(
    "teamchat_socket_reads_held_total",
    "Times a socket sent frames past CHAT_SOCKET_FRAME_RATE and was not read for a while.",
)
SLOW_CLIENT_CLOSES = Counter(
    "teamchat_slow_client_closes_total",
    "Sockets closed (4008) because their client stopped reading.",
)
CHANNEL_LAYER_FAILURES = Counter(
    "teamchat_channel_layer_failures_total",
    "Channel-layer calls that failed or timed out, by operation.",
    ["operation"],
)
for _operation in ("receive", "publish", "subscribe", "typing", "presence", "session_check"):
    CHANNEL_LAYER_FAILURES.labels(_operation)
LIVE_DEGRADED = Gauge(
    "teamchat_live_degraded",
    "1 while this process's live path is down (channel layer failing): sockets were told "
    "status live:false and catch up from the log when it returns.",
)
SESSIONS_ENDED = Counter(
    "teamchat_sessions_ended_total",
    "Sockets closed (4401) because their login ended: `expired` found by the periodic "
    "re-check, `ended` when told (sign-out, password change, deactivation, token revoked).",
    ["reason"],
)
for _reason in ("expired", "ended"):
    SESSIONS_ENDED.labels(_reason)
DB_QUERIES = Counter("teamchat_db_queries_total", "SQL statements this process ran.")
READ_MARKERS = Counter(
    "teamchat_read_markers_total", "Read-marker requests, by what became of them.", ["outcome"]
)

# Counted by the worker commands (exports also where a server runs one itself).
WEBHOOK_ATTEMPTS = Counter(
    "teamchat_webhook_attempts_total",
    "Outgoing webhook delivery attempts, by what became of the delivery.",
    ["result"],
)
for _result in ("delivered", "retry", "failed", "lost"):
    WEBHOOK_ATTEMPTS.labels(_result)
EXPORTS = Counter("teamchat_exports_total", "Export jobs run, by result.", ["result"])
for _result in ("done", "failed"):
    EXPORTS.labels(_result)


class DatabasePoolCollector(Collector):
    """Django's psycopg pool of this process (the `default` database), read at scrape time.

    Reads the pool only if something has already made it: a scrape never
    opens a database connection.
    """

    def collect(self) -> Iterator[Metric]:
        from django.db import connections

        pools = getattr(type(connections["default"]), "_connection_pools", None)
        pool = pools.get("default") if pools else None
        if pool is None:
            return
        stats = pool.get_stats()
        size, available = stats.get("pool_size", 0), stats.get("pool_available", 0)
        gauges = (
            ("teamchat_db_pool_max", "Connections the pool may open.", pool.max_size),
            ("teamchat_db_pool_size", "Connections the pool holds now.", size),
            ("teamchat_db_pool_in_use", "Connections lent out now.", max(size - available, 0)),
            (
                "teamchat_db_pool_waiting",
                "Requests waiting for a connection now.",
                stats.get("requests_waiting", 0),
            ),
        )
        for name, documentation, value in gauges:
            yield GaugeMetricFamily(name, documentation, value=value)
        counters = (
            (
                "teamchat_db_pool_requests_queued",
                "Requests that had to wait for a connection.",
                stats.get("requests_queued", 0),
            ),
            (
                "teamchat_db_pool_timeouts",
                "Requests that got no connection in time (PoolTimeout).",
                stats.get("requests_errors", 0),
            ),
        )
        for name, documentation, value in counters:
            yield CounterMetricFamily(name, documentation, value=value)


REGISTRY.register(DatabasePoolCollector())


def serve_worker_metrics(port: int, addr: str) -> None:
    """Serve this (worker) process's metrics at http://addr:port/metrics; port 0: not at all.

    The servers' `/metrics` answers loopback, or a bearer token; this plain
    listener has no token, so it binds to loopback unless told otherwise.
    """
    if port:
        start_http_server(port, addr=addr)
        log.info("metrics at http://%s:%s/metrics", addr, port)


# Set once at start-up by chat.realtime.transport.report_internals.
TRANSPORT_FAST_PATH = Gauge(
    "teamchat_transport_fast_path",
    "1 when the socket transport found the daphne, Twisted and autobahn internals its direct "
    "send and slow-client bound need; 0 when it fell back to plain sends (see the log).",
)
