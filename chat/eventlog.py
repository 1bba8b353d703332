"""The event log: the one ordering lock, logged changes, and publishing them.

Every change a client must know about is a row in `chat.Event`, written in
the same transaction as the change, and published to every server process
after the commit. Commits and publishes happen one at a time in one global
order (`ordered`), so a socket sees events in `seq` order and message ids grow
in commit order. Every writer goes through here: the message writer's batches,
and every other service through `logged_change`.

What crosses processes has a type: `Item` (an event for some sockets) and
`PresenceChange`, each with `to_wire`/`from_wire`, carried by one of the
channel-layer messages whose `type` is below.
"""

import asyncio
import concurrent.futures
import enum
import functools
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import psycopg
from asgiref.sync import async_to_sync
from channels.layers import BaseChannelLayer, get_channel_layer
from django.core.exceptions import ImproperlyConfigured
from django.db import connection, transaction

from teamchat import metrics

from .models import Event, EventLogHorizon, Room
from .realtime import groupsend

log = logging.getLogger(__name__)

# The group every server process's fan-out channel belongs to.
FANOUT_GROUP = "teamchat.fanout"
# Channel-layer message types.
EVENTS = "fanout.events"
SESSION_CHECK = "fanout.session_check"
PRESENCE = "fanout.presence"


class Op(enum.IntEnum):
    """What a process does besides delivering an item's text."""

    NONE = 0
    # The user's sockets carry room `arg` from now on (applied before delivery).
    SUBSCRIBE = 1
    # The user's sockets stop carrying room `arg` (applied after delivery).
    UNSUBSCRIBE = 2
    # The sockets of user `arg` are left out (a typing hint is not echoed).
    SKIP_USER = 3
    # Room `arg` became read-only, or writable again.
    ARCHIVE = 4
    UNARCHIVE = 5
    # Every socket of every process (a profile change: everyone shows people).
    EVERYONE = 6


@dataclass(frozen=True, slots=True)
class Item:
    """One encoded event, and the sockets it goes to: members of `rooms` and/or `user`'s."""

    text: str
    rooms: tuple[int, ...] = ()
    user: int | None = None
    seq: int | None = None
    op: Op = Op.NONE
    arg: int | None = None

    def to_wire(self) -> list[Any]:
        return [self.text, list(self.rooms), self.user, self.seq, int(self.op), self.arg]

    @classmethod
    def from_wire(cls, wire: list[Any]) -> "Item":
        text, rooms, user, seq, op, arg = wire
        return cls(text, tuple(rooms), user, seq, Op(op), arg)


@dataclass(frozen=True, slots=True)
class PresenceChange:
    """A user's state across all processes, as read at `version` (higher is newer)."""

    user_id: int
    username: str
    state: str
    version: int

    def to_wire(self) -> list[Any]:
        return [self.user_id, self.username, self.state, self.version]

    @classmethod
    def from_wire(cls, wire: list[Any]) -> "PresenceChange":
        user_id, username, state, version = wire
        return cls(user_id, username, state, version)


# --- the one order ------------------------------------------------------------

# Across processes PostgreSQL's advisory lock provides the order; a thread lock
# does it within one process (the only case on SQLite).
_ORDER_LOCK_KEY = 0x7E43_0001
_local_order = threading.Lock()


@dataclass(eq=False)
class Read:
    """A query a change reads first, run as soon as the lock is held: `rows` holds its answer.

    On PostgreSQL the lock and every read go in one round trip (psycopg's
    pipeline mode): each round trip inside the lock holds up every write of
    every process, and under load each also waits for the GIL.
    """

    sql: str
    params: Sequence[Any]
    rows: list[tuple[Any, ...]] = field(default_factory=list)


@contextmanager
def ordered(
    *, reads: Sequence[Read] = (), then: Callable[[], None] | None = None
) -> Iterator[None]:
    """Hold the global order over one transaction: its commit, then `then`, before the next.

    The body runs inside `transaction.atomic()`, after `reads` are answered;
    `then` (the publish) runs once the transaction has committed, still inside
    the order. Keep inside only what must be ordered; validation, rendering and
    reads that need no order go before it.
    """
    if connection.in_atomic_block:
        # An outer transaction would commit (and publish) after the lock is gone.
        raise RuntimeError("Logged changes commit themselves; call them outside a transaction.")
    if not connection.get_autocommit():
        # Left so by a transaction whose end failed after its COMMIT (the
        # connection dropped, or database access was refused meanwhile).
        # Django's atomic() would then only release a savepoint: the change
        # would be acknowledged, never committed, and rolled back when the
        # connection is closed.
        raise RuntimeError("This connection is not in autocommit mode: a change would not commit.")
    asked = time.perf_counter()
    with _local_order:
        holder: Any = None
        held = False
        try:
            with transaction.atomic():
                if connection.vendor == "postgresql":
                    connection.ensure_connection()
                    holder = connection.connection  # the database session that takes it
                    _lock_and_read(holder, reads)
                else:
                    _read(reads)
                _held(asked)
                held = True
                yield
            if then is not None:
                then()
        finally:
            if held:
                _released()
            if holder is not None:
                _unlock(holder, surely_held=held)


def _lock_and_read(holder: Any, reads: Sequence[Read]) -> None:
    """Take the lock, then run `reads`, in one round trip (inside the transaction).

    The transaction's BEGIN goes first, on its own, before the lock is taken.
    Under READ COMMITTED (Django's default) each read sees every change
    committed before the lock was granted.
    """
    if holder.isolation_level not in (None, psycopg.IsolationLevel.READ_COMMITTED):
        # A snapshot taken when the lock was asked for would miss what
        # committed while waiting for it: a retry stored twice.
        raise ImproperlyConfigured("Logged changes need PostgreSQL's READ COMMITTED isolation.")
    answers = []
    started = time.monotonic()
    with holder.pipeline() if reads and psycopg.Pipeline.is_supported() else nullcontext():
        psycopg.Cursor(holder).execute(_LOCK_SQL, [_ORDER_LOCK_KEY])
        for read in reads:
            answer = psycopg.Cursor(holder)
            answer.execute(read.sql, read.params)
            answers.append(answer)
    for read, answer in zip(reads, answers, strict=True):
        read.rows = answer.fetchall()
    metrics.DB_QUERIES.inc(1 + len(reads))  # as Django's cursor counts its statements
    _log_queries(
        [(_LOCK_SQL, [_ORDER_LOCK_KEY]), *((r.sql, r.params) for r in reads)],
        time.monotonic() - started,
    )


_LOCK_SQL = "SELECT pg_advisory_lock(%s)"
_UNLOCK_SQL = "SELECT pg_advisory_unlock(%s)"


def _log_queries(statements: Sequence[tuple[str, Any]], seconds: float) -> None:
    """Show statements run on the raw connection where Django's own would show.

    The lock and its reads go through psycopg directly, so Django's debug
    cursor (settings.DEBUG, `CaptureQueriesContext`) does not see them:
    they join `connection.queries_log` as its statements do, their time
    shared out.
    """
    if not connection.queries_logged or not statements:
        return
    each = f"{seconds / len(statements):.3f}"
    for sql, params in statements:
        connection.queries_log.append({"sql": f"{sql} -- {params!r}", "time": each})


def _read(reads: Sequence[Read]) -> None:
    with connection.cursor() as cursor:
        for read in reads:
            cursor.execute(read.sql, read.params)
            read.rows = cursor.fetchall()


def _unlock(holder: Any, *, surely_held: bool = True) -> None:
    """Release the ordering lock on the session that took it, straight on that connection.

    A session-level lock belongs to the session, not to the thread or to
    Django's connection object. Should the connection be closed inside
    (psycopg's pool takes it back still open, lock and all), unlocking on the
    thread's next connection would release nothing; and Django's cursor may
    refuse to run at all (pytest-django refuses database access once a test
    has ended, while work the test started can still be inside the lock).
    Either way every writer of every process would then wait for ever.
    `surely_held` is false when taking it failed: whether it was taken is
    not known, and unlocking finds out.
    """
    if connection.connection is not holder:
        log.error("the connection holding the ordering lock was closed inside it")
    try:
        started = time.monotonic()
        (released,) = holder.execute(_UNLOCK_SQL, [_ORDER_LOCK_KEY]).fetchone()
        _log_queries([(_UNLOCK_SQL, [_ORDER_LOCK_KEY])], time.monotonic() - started)
    except Exception:
        # A session that cannot run it must not keep the lock: ending it does.
        log.error("could not release the ordering lock; closing its session", exc_info=True)
        holder.close()
        return
    metrics.DB_QUERIES.inc()  # counted as a statement through Django's cursor is
    if surely_held and not released:
        log.error("the ordering lock was not held by the session that took it")


_held_since = threading.local()


def _held(asked: float) -> None:
    now = time.perf_counter()
    metrics.ORDER_LOCK_WAIT.observe(now - asked)
    _held_since.at = now


def _released() -> None:
    metrics.ORDER_LOCK_HELD.observe(time.perf_counter() - _held_since.at)


@contextmanager
def logged_change(*, reads: Sequence[Read] = ()) -> Iterator[list[Item]]:
    """Commit a change and the events it logs, then publish them, in the one global order.

    The caller appends items (from `record`) to the yielded list; they are
    published only if the transaction commits, before the next change may
    commit. A change that logs nothing publishes nothing. `reads` are
    answered (their `rows`) when the body starts.
    """
    items: list[Item] = []
    with ordered(reads=reads, then=lambda: publish_quietly(items, f"{len(items)} event(s)")):
        yield items


def record(
    kind: str,
    data: dict[str, Any],
    *,
    room: Room | None = None,
    user_id: int | None = None,
    to_room: bool = True,
    op: Op = Op.NONE,
    arg: int | None = None,
) -> Item:
    """Write one event row (inside `logged_change`) and return its item.

    It goes to the members of `room` (unless `to_room` is false) and to the
    sockets of `user_id`; its payload is stored as sent.
    """
    event = Event.objects.create(
        kind=kind, room=room if to_room else None, user_id=user_id, data=data
    )
    text = encode({"type": kind, **data, "seq": event.seq})
    rooms = (room.id,) if room is not None and to_room else ()
    return Item(text, rooms, user_id, event.seq, op, arg)


def record_for_users(
    kind: str,
    payloads: Sequence[tuple[int, dict[str, Any]]],
    *,
    op: Op = Op.NONE,
    arg: int | None = None,
) -> list[Item]:
    """Write one event row per (user id, payload) (inside `logged_change`) and return their items.

    Each goes to its user's sockets only and its row names no room, so it
    outlives a room deleted in the same change. One statement however many
    users.
    """
    rows = Event.objects.bulk_create(
        [Event(kind=kind, user_id=user_id, data=data) for user_id, data in payloads]
    )
    return [
        Item(encode({"type": kind, **row.data, "seq": row.seq}), (), row.user_id, row.seq, op, arg)
        for row in rows
    ]


def record_for_everyone(kind: str, data: dict[str, Any]) -> Item:
    """Write one event row for every user (inside `logged_change`) and return its item.

    The row names neither a room nor a user, which is what "everyone" means
    in the log; one row and one item however many people there are.
    """
    event = Event.objects.create(kind=kind, data=data)
    text = encode({"type": kind, **data, "seq": event.seq})
    return Item(text, (), None, event.seq, Op.EVERYONE)


def encode(event: dict[str, Any]) -> str:
    """An event as the JSON text every socket gets, encoded once."""
    return json.dumps(event, ensure_ascii=False, separators=(",", ":"))


# --- publishing -----------------------------------------------------------------


def channel_layer() -> BaseChannelLayer:
    """The channel layer; settings always configure one (in memory without Redis)."""
    layer = get_channel_layer()
    if layer is None:
        raise ImproperlyConfigured("CHANNEL_LAYERS has no default layer.")
    return layer


# How long a publish may take before the change counts as not published (the
# fan-outs then fill it from the log); Redis's own timeouts normally come first.
PUBLISH_TIMEOUT_SECONDS = 10.0


class _PublishLoop:
    """An event loop on a thread of its own that publishes for the threads that commit.

    `async_to_sync` runs a publish on the server's main event loop, which may
    be in the middle of writing an event to thousands of sockets: the publish
    waited for that, while holding the global ordering lock (every commit of
    every process waited in turn). channels-redis keeps connections per event
    loop, so this loop has its own, and a publish is two Redis round trips
    (`chat.realtime.groupsend`).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def _running(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None or self._thread is None or not self._thread.is_alive():
                loop = asyncio.new_event_loop()
                thread = threading.Thread(
                    target=loop.run_forever, name="teamchat-publish", daemon=True
                )
                thread.start()
                self._loop, self._thread = loop, thread
            return self._loop

    def group_send(self, layer: BaseChannelLayer, payload: dict[str, Any]) -> None:
        send = (
            groupsend.group_send(layer, FANOUT_GROUP, payload)
            if groupsend.supported(layer)
            else layer.group_send(FANOUT_GROUP, payload)
        )
        future = asyncio.run_coroutine_threadsafe(send, self._running())
        try:
            future.result(timeout=PUBLISH_TIMEOUT_SECONDS)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise


_publish_loop = _PublishLoop()


@functools.cache
def _publish_client() -> Any:
    """A synchronous Redis client for the threads that commit: a publish without a thread hop.

    Used when the layer is channels-redis on one Redis (as settings configure
    it), which is then the Redis `REDIS_URL` (or the sentinels) name. Bounded
    like the loop's publish: a dead Redis fails the publish in about
    `PUBLISH_TIMEOUT_SECONDS`, and only a lost connection is retried (once,
    on a new one: after a restart or failover the pooled ones are dead).
    """
    from redis.backoff import NoBackoff
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.retry import Retry

    from teamchat import redisconn

    return redisconn.sync_client(
        socket_connect_timeout=1,
        socket_timeout=PUBLISH_TIMEOUT_SECONDS / 2 - 1,
        retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
    )


def _group_send(payload: dict[str, Any]) -> None:
    layer = channel_layer()
    if groupsend.supported(layer) and getattr(layer, "ring_size", 0) == 1:
        groupsend.group_send_sync(_publish_client(), layer, FANOUT_GROUP, payload)
    elif _connects_per_loop(layer):
        _publish_loop.group_send(layer, payload)
    else:
        # The in-memory layer lives on the loop that receives: publish there.
        async_to_sync(layer.group_send)(FANOUT_GROUP, payload)


def _connects_per_loop(layer: BaseChannelLayer) -> bool:
    """Whether the layer may be used from another event loop at the same time (Redis)."""
    return type(layer).__module__.startswith("channels_redis.")


def publish(items: Iterable[Item]) -> None:
    """Deliver committed events, in order, to the sockets they are for, in every process."""
    wire = [item.to_wire() for item in items]
    if wire:
        # `at`: the fan-out measures its latency from here (right after the commit).
        _group_send({"type": EVENTS, "events": wire, "at": time.time()})
        metrics.EVENTS_PUBLISHED.inc(len(wire))


class PublishFailures:
    """The highest `seq` this process failed to publish, until its fan-out has dealt with it.

    Written by the threads that publish, read by the fan-out's watch: the
    process marks its live path degraded, and every process (this one
    included) fills the gap from the log.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seq: int | None = None

    def note(self, items: Iterable[Item]) -> None:
        seqs = [item.seq for item in items if item.seq is not None]
        with self._lock:
            self._seq = max([*seqs, self._seq or 0])

    def take(self) -> int | None:
        """The highest failed `seq` since the last call (0 for unlogged events), or None."""
        with self._lock:
            seq, self._seq = self._seq, None
        return seq


publish_failures = PublishFailures()


def publish_quietly(items: Iterable[Item], what: str) -> None:
    """`publish` for callers that must not fail when the channel layer does.

    The change is committed either way: on failure every process's fan-out
    notices the missing `seq` and sends it from the log (`chat.realtime.fanout`).
    """
    items = list(items)
    try:
        publish(items)
    except Exception:
        publish_failures.note(items)
        metrics.PUBLISH_FAILURES.inc()
        metrics.CHANNEL_LAYER_FAILURES.labels("publish").inc()
        log.exception("could not broadcast %s", what)


async def _agroup_send(payload: dict[str, Any]) -> None:
    layer = channel_layer()
    if groupsend.supported(layer):
        await groupsend.group_send(layer, FANOUT_GROUP, payload)
    else:
        await layer.group_send(FANOUT_GROUP, payload)


async def apublish(items: list[Item]) -> None:
    """`publish` from async code, for events that are never stored (typing)."""
    payload = {"type": EVENTS, "events": [item.to_wire() for item in items], "at": time.time()}
    await _agroup_send(payload)


async def apublish_presence(changes: list[PresenceChange]) -> None:
    """Tell every process these users' new states (presence is never stored)."""
    payload = {"type": PRESENCE, "changes": [change.to_wire() for change in changes]}
    await _agroup_send(payload)


def user_sockets_recheck(user_id: int) -> None:
    """Ask each open socket of the user to re-check the session it was opened with."""
    try:
        _group_send({"type": SESSION_CHECK, "user": user_id})
    except Exception:
        # Not fatal for the request that caused it; the sockets stay open meanwhile.
        metrics.CHANNEL_LAYER_FAILURES.labels("session_check").inc()
        log.exception("could not ask the sockets of user %s to re-check their sessions", user_id)


# --- retention --------------------------------------------------------------------


@dataclass(frozen=True)
class PruneResult:
    """What `events_prune` found (and, unless a dry run, deleted)."""

    cutoff_seq: int
    deleted: int
    batches: int


def _oldest_seq_kept_before(before: Any) -> int:
    """The highest `seq` whose event, and every one before it, was logged before `before`.

    A binary search on the primary key (events are logged in `seq` order,
    so their times grow with it): a few index lookups, no scan.
    """
    first = Event.objects.order_by("seq").values_list("seq", "created").first()
    if first is None or first[1] >= before:
        return 0
    low = first[0]
    high = Event.objects.order_by("-seq").values_list("seq", flat=True).first() or low
    while low < high:
        middle = (low + high + 1) // 2
        row = Event.objects.filter(seq__gte=middle).order_by("seq").values_list("seq", "created")
        found = row.first()
        if found is not None and found[1] < before:
            low = found[0]
        else:
            high = middle - 1
    return low


def events_prune(*, keep: timedelta, batch: int = 5000, dry_run: bool = False) -> PruneResult:
    """Delete logged events older than `keep`, oldest first, `batch` rows per transaction.

    The horizon is raised first: from then on a socket resuming from before
    it is told to reload (PROTOCOL: too far behind), never sent a catch-up
    with a hole. Each batch is its own short transaction on the primary key,
    outside the ordering lock, so writers never wait on a prune. Messages,
    reactions and read markers are not events: they stay.
    """
    from django.utils import timezone

    cutoff = _oldest_seq_kept_before(timezone.now() - keep)
    if dry_run or not cutoff:
        count = Event.objects.filter(seq__lte=cutoff).count() if cutoff else 0
        return PruneResult(cutoff, count, 0)
    horizon, _ = EventLogHorizon.objects.get_or_create(pk=1)
    if horizon.pruned_upto < cutoff:
        EventLogHorizon.objects.filter(pk=1).update(pruned_upto=cutoff)
    table = connection.ops.quote_name(Event._meta.db_table)
    deleted = batches = 0
    while True:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                f"DELETE FROM {table} WHERE seq IN "  # noqa: S608  (no user input)
                f"(SELECT seq FROM {table} WHERE seq <= %s ORDER BY seq LIMIT %s)",
                [cutoff, batch],
            )
            done = cursor.rowcount
        if not done:
            break
        deleted += done
        batches += 1
        metrics.EVENTS_PRUNED.inc(done)
    return PruneResult(cutoff, deleted, batches)
