"""The server's Prometheus metrics (prometheus-client), one set per server process.

Counted where the work happens and exposed by `teamchat.ops.metrics`; the
names all start with `teamchat_`. The client library's default collectors add
the process's CPU time, memory and open files.
"""

from prometheus_client import Counter, Gauge, Histogram

OPEN_SOCKETS = Gauge("teamchat_open_sockets", "Sockets open in this process.")
HANDSHAKES = Counter(
    "teamchat_handshakes_total", "Socket handshakes: accepted, or why refused.", ["outcome"]
)
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
    "Time a logged change waited for the global ordering lock.",
    buckets=(0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1),
)
ORDER_LOCK_HELD = Histogram(
    "teamchat_order_lock_held_seconds",
    "Time the global ordering lock was held (commit and publish).",
    buckets=(0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1),
)
EVENTS_PUBLISHED = Counter(
    "teamchat_events_published_total", "Logged events published to the server processes."
)
PUBLISH_FAILURES = Counter(
    "teamchat_publish_failures_total",
    "Publishes of committed events the channel layer refused or timed out.",
)
EVENTS_PRUNED = Counter(
    "teamchat_events_pruned_total", "Logged events deleted past the retention horizon."
)
GAP_FILLS = Counter(
    "teamchat_gap_fills_total",
    "Times this process found logged events it was never sent and sent them from the log.",
)
EVENTS_DELIVERED = Counter(
    "teamchat_events_delivered_total", "Event frames written to this process's sockets."
)
PRESENCE_FRAMES = Counter(
    "teamchat_presence_frames_total", "Presence frames written to this process's sockets."
)
REPLAYS = Counter("teamchat_replays_total", "Catch-up replays of the event log run for sockets.")
REPLAYED_EVENTS = Counter("teamchat_replayed_events_total", "Events sent by catch-up replays.")
DB_QUERIES = Counter("teamchat_db_queries_total", "SQL statements this process ran.")
READ_MARKERS = Counter(
    "teamchat_read_markers_total", "Read-marker requests, by what became of them.", ["outcome"]
)
