"""Per-process fan-out of events to the sockets open in this process.

The stock Channels design sends one channel-layer message per recipient
socket, each dispatched through the consumer (with a thread hop in
Channels >= 4.2) and encoded to JSON again. Here every server process
subscribes ONE channel to one group; an event is encoded once by its
publisher, crosses the layer once per process, and is written straight to
the local sockets of its room from memory.
"""

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any, Protocol

from channels.db import database_sync_to_async
from django.conf import settings

from teamchat import metrics

from ..eventlog import (
    EVENTS,
    FANOUT_GROUP,
    PRESENCE,
    SESSION_CHECK,
    Item,
    Op,
    PresenceChange,
    channel_layer,
    publish_failures,
)
from ..selectors import LoggedChange, events_between, latest_seq, room_member_count
from . import layerreceive
from .perloop import per_event_loop
from .transport import PreparedMessage, WriteBatch, prepare, write_batch
from .writer import side_sync_to_async

log = logging.getLogger(__name__)

# Channel layers forget group members after `group_expiry` (a day by default).
REJOIN_SECONDS = 600.0
# A gap holding more events than this is not read row by row: every local
# socket's rooms are read again instead (their replays tell a socket that far
# behind to reload).
GAP_ROWS_MAX = 10_000
# How long a process trusts a room's member count it read (membership
# events heard meanwhile keep it current; this bounds what it may miss).
ROOM_SIZE_SECONDS = 60.0


STATUS_DEGRADED = '{"type":"status","live":false,"seq":null}'
STATUS_LIVE = '{"type":"status","live":true,"seq":null}'


class Subscriber(Protocol):
    user_id: int
    login_id: str

    async def deliver(self, text: str, prepared: PreparedMessage, seq: int | None) -> None: ...

    def offer(
        self,
        text: str,
        prepared: PreparedMessage,
        seq: int | None,
        batch: WriteBatch | None = None,
    ) -> bool: ...

    def session_check_soon(self) -> None: ...

    def session_ended(self) -> None: ...

    def catch_up_soon(self, after: int, notice: bool = True) -> None: ...


# Sockets written between two turns of the event loop by the fan-out
# (about 5 ms on loopback, where a write costs about 10 us, most of it the
# send system call). Writing an event to #general's thousands of sockets in
# one go held up for 50 ms everything else the loop does: reading frames,
# handing finished database work back, acknowledging sends, reading the next
# events from Redis. Each send went through several of those turns, so it
# waited behind such a fan-out several times. The count runs on across the
# events of one published batch (a dozen events to rooms of a few hundred are
# as long a turn as one to #general). Slicing keeps each socket's events in
# order: the next event is written only after this one is.
FANOUT_SLICE = 500
# Messages the fan-out takes off the channel layer in one round trip at most
# (chat.realtime.layerreceive): a process that fell behind takes its backlog
# in a few round trips instead of three per message.
RECEIVE_MOST = 200
# Logins checked in one turn of the database thread by the periodic re-check.
RECHECK_SLICE = 500


@dataclass(frozen=True, slots=True)
class RoomRef:
    """What a process keeps about a room its sockets carry, to check frames without a query."""

    id: int
    private: bool


class Fanout:
    """The sockets of this process by room and by user, fed from one layer channel."""

    def __init__(self) -> None:
        self.by_room: dict[int, set[Subscriber]] = {}
        self.by_user: dict[int, set[Subscriber]] = {}
        self.rooms_of: dict[Subscriber, set[int]] = {}
        # Rooms by slug (slugs never change) and the archived ones among them,
        # kept current by the events that change them.
        self.rooms_by_slug: dict[str, RoomRef] = {}
        self.archived: set[int] = set()
        # Member counts read from the database: room id -> (count, when read).
        self._sizes: dict[int, tuple[int, float]] = {}
        self._sizing: dict[int, asyncio.Future[int]] = {}
        # What the periodic re-check (or the handshake) found each open login
        # valid with (accounts.selectors.logins_still_valid).
        self._verified: dict[tuple[str, int], tuple[str, str]] = {}
        # Sockets written since the fan-out last gave the event loop a turn.
        self._written = 0
        # Sockets registered whose rooms are still being read: changes meanwhile.
        self._pending: dict[Subscriber, list[tuple[str, int]]] = {}
        self._started: asyncio.Future[None] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._layer: Any = None
        self._channel = ""
        # True while the channel layer fails: live events may be missing.
        self.degraded = False
        # Why: "receive" (this process hears nothing) and/or "publish" (what
        # it committed reached nobody).
        self._degraded_by: set[str] = set()
        # The log's newest seq seen at the last watch, if it was not here yet,
        # and how far the live stream had come then.
        self._suspect: int | None = None
        self._suspect_seen = 0
        # The highest seq this process has handed out; sockets catch up from
        # here when the channel layer comes back.
        self.last_seq = 0
        self.resume_from = 0

    async def register(self, sock: Subscriber) -> None:
        """Start delivering its user's events to `sock`; its rooms follow with `set_rooms`.

        Membership changes for the user that arrive in between are recorded
        and applied on top of the rooms read from the database, so none is
        lost whichever came first.
        """
        await self._start()
        self.rooms_of[sock] = set()
        self._pending[sock] = []
        self.by_user.setdefault(sock.user_id, set()).add(sock)

    def set_rooms(self, sock: Subscriber, room_ids: list[int]) -> None:
        rooms = set(room_ids)
        for kind, room_id in self._pending.pop(sock, ()):
            if kind == "sub":
                rooms.add(room_id)
            else:
                rooms.discard(room_id)
        self.rooms_of[sock] = rooms
        for room_id in rooms:
            self.by_room.setdefault(room_id, set()).add(sock)

    def unregister(self, sock: Subscriber) -> None:
        self._pending.pop(sock, None)
        for room_id in self.rooms_of.pop(sock, ()):
            self._discard(self.by_room, room_id, sock)
        self._discard(self.by_user, sock.user_id, sock)

    def sockets_of(self, user_id: int) -> set[Subscriber]:
        return self.by_user.get(user_id, set())

    def subscribe(self, user_id: int, room_id: int) -> None:
        """Every socket of the user in this process carries the room from now on."""
        for sock in self.by_user.get(user_id, ()):
            if sock in self._pending:
                self._pending[sock].append(("sub", room_id))
                continue
            self.rooms_of[sock].add(room_id)
            self.by_room.setdefault(room_id, set()).add(sock)

    def unsubscribe(self, user_id: int, room_id: int) -> None:
        for sock in self.by_user.get(user_id, ()):
            if sock in self._pending:
                self._pending[sock].append(("unsub", room_id))
                continue
            self.rooms_of[sock].discard(room_id)
            self._discard(self.by_room, room_id, sock)

    @staticmethod
    def _discard(index: dict[int, set[Subscriber]], key: int, sock: Subscriber) -> None:
        members = index.get(key)
        if members is not None:
            members.discard(sock)
            if not members:
                del index[key]

    async def room_size(self, room_id: int) -> int:
        """How many members the room has: one count per room a minute, shared by all who ask."""
        known = self._sizes.get(room_id)
        if known is not None and time.monotonic() - known[1] < ROOM_SIZE_SECONDS:
            return known[0]
        pending = self._sizing.get(room_id)
        if pending is None:
            pending = asyncio.ensure_future(self._count(room_id))
            self._sizing[room_id] = pending
        return await asyncio.shield(pending)

    async def _count(self, room_id: int) -> int:
        try:
            count = await database_sync_to_async(room_member_count)(room_id)
            self._sizes[room_id] = (count, time.monotonic())
            return count
        finally:
            del self._sizing[room_id]

    def _resize(self, room_id: int, change: int) -> None:
        known = self._sizes.get(room_id)
        if known is not None:
            self._sizes[room_id] = (max(known[0] + change, 0), known[1])

    async def _start(self) -> None:
        if self._started is None:
            self._started = asyncio.get_running_loop().create_future()
            try:
                self.last_seq = await database_sync_to_async(latest_seq)()
                layer = channel_layer()
                # The default "specific." prefix: channels-redis pops every
                # process-local channel from one key with one blocking read,
                # and a channel under another prefix would wait behind it.
                channel = await layer.new_channel()
                await layer.group_add(FANOUT_GROUP, channel)
                self._layer, self._channel = layer, channel
            except BaseException as exc:
                self._started.set_exception(exc)
                self._started = None
                raise
            self._tasks = [
                asyncio.create_task(self._receive_forever(layer, channel)),
                asyncio.create_task(self._rejoin_forever(layer, channel)),
                asyncio.create_task(self._recheck_sessions_forever()),
                asyncio.create_task(self._watch_log_forever()),
            ]
            self._started.set_result(None)
        await self._started

    async def _rejoin_forever(self, layer, channel: str) -> None:
        while True:
            await asyncio.sleep(REJOIN_SECONDS)
            try:
                await layer.group_add(FANOUT_GROUP, channel)
            except Exception:
                metrics.CHANNEL_LAYER_FAILURES.labels("subscribe").inc()
                log.exception("could not renew the fan-out subscription")

    async def _receive_forever(self, layer, channel: str) -> None:
        failures = 0
        many = layerreceive.supported(layer)
        while True:
            try:
                if failures:
                    # Also tells whether the layer is back: a restarted Redis
                    # has forgotten the group, and a blocked receive would
                    # never say that it returned.
                    await layer.group_add(FANOUT_GROUP, channel)
                    failures = 0
                    await self._recovered("receive")
                if many:
                    events = await layerreceive.receive_many(layer, channel, RECEIVE_MOST)
                else:
                    events = [await layer.receive(channel)]
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failures += 1
                metrics.CHANNEL_LAYER_FAILURES.labels("receive").inc()
                self._set_degraded("receive")
                # One line, no traceback, on every failure after the first:
                # an outage must not flood the log.
                if failures == 1:
                    log.exception("fan-out receive failed; the live path is degraded")
                else:
                    name = type(exc).__name__
                    log.warning("fan-out still failing (%s in a row): %s", failures, name)
                await asyncio.sleep(min(0.1 * 2**failures, 2.0))
                continue
            for event in events:
                try:
                    await self.handle(event)
                except Exception:
                    log.exception("fan-out of a %s event failed", event.get("type"))

    def _set_degraded(self, reason: str) -> None:
        """Tell every local socket that live delivery stopped (`status` live:false)."""
        was = self.degraded
        self._degraded_by.add(reason)
        self.degraded = True
        metrics.LIVE_DEGRADED.set(1)
        if was:
            return
        self.resume_from = self.last_seq
        prepared = prepare(STATUS_DEGRADED)
        for sock in tuple(self.rooms_of):
            task = asyncio.ensure_future(sock.deliver(STATUS_DEGRADED, prepared, None))
            task.add_done_callback(_log_failure)

    async def _recovered(self, reason: str) -> None:
        """One cause of degradation is gone; once none is left, every socket catches up.

        Back means caught up: each socket is told `status` live:true and sent
        what it missed from the database, so clients need not reconnect.
        """
        if reason not in self._degraded_by:
            return
        self._degraded_by.discard(reason)
        if self._degraded_by:
            return
        log.warning("the live path works again; sockets catch up from the log")
        upto = await database_sync_to_async(latest_seq)()
        await self._fill(self.resume_from, upto, notice=True)
        self.degraded = False
        metrics.LIVE_DEGRADED.set(0)

    async def _watch_log_forever(self) -> None:
        """Notice events this process was never sent, and its own failed publishes.

        Published seqs arrive in order, so a gap is seen when the next event
        arrives (`handle`). This watch covers the rest: a publish of this
        process that failed (its sockets are told the live path is down until
        the layer answers again), and events committed elsewhere whose publish
        failed with nothing after them: the log's newest seq, still not here
        one interval later while nothing else arrived either, is sent from
        the log.

        A stream that still moves is only behind (a busy process, a burst):
        what it has not handed out yet is on its way, and a hole in it shows
        when the event after the hole arrives. Filling it from the log would
        start a catch-up on every socket of the process, more work for a
        process already behind, so it is left to arrive.
        """
        while True:
            await asyncio.sleep(settings.CHAT_GAP_CHECK_SECONDS)
            try:
                await self.watch_log()
            except Exception:
                log.warning("could not compare the live stream with the log", exc_info=True)

    async def watch_log(self) -> None:
        """One look at failed publishes and at the log's newest seq (see `_watch_log_forever`)."""
        if publish_failures.take() is not None:
            self._set_degraded("publish")
        if "publish" in self._degraded_by:
            # Raises while the layer still fails.
            await self._layer.group_add(FANOUT_GROUP, self._channel)
            await self._recovered("publish")
            return
        if self.degraded:
            return  # the recovery's catch-up covers everything meanwhile
        newest = await database_sync_to_async(latest_seq)()
        suspect, seen = self._suspect, self._suspect_seen
        if suspect is not None and self.last_seq < suspect and self.last_seq == seen:
            log.warning("events up to seq %s never arrived; sending them from the log", suspect)
            await self._fill(self.last_seq, suspect, notice=False)
        self._suspect = newest if newest > self.last_seq else None
        self._suspect_seen = self.last_seq

    async def _fill(self, after: int, upto: int, *, notice: bool) -> None:
        """Send every local socket what the log holds after `after` (a gap, or an outage).

        What the process keeps in memory (who carries which room, archived
        rooms) is brought up to date first; each socket's catch-up then reads
        the log from `after` and holds live events until it is done, so each
        event arrives once and in order.
        """
        if upto > after:
            # Counted in rows, not in numbers: a long run of numbers can hold
            # no event at all (rolled-back changes, a log pruned or emptied
            # while the sequence went on).
            rows = await database_sync_to_async(events_between)(after, upto, GAP_ROWS_MAX + 1)
            if not rows and not notice:
                return  # numbers no committed change holds: nothing is missing
            await self._refresh_memory(rows if len(rows) <= GAP_ROWS_MAX else None)
        if not notice:
            metrics.GAP_FILLS.inc()
        self.last_seq = max(self.last_seq, upto)
        for sock in tuple(self.rooms_of):
            sock.catch_up_soon(after, notice)

    async def _refresh_memory(self, rows: "list[LoggedChange] | None") -> None:
        """Apply the membership and archive changes among missed events (all, for None)."""
        from . import handshake  # handshake reads through this module's sockets

        if rows is None:
            users = set(self.by_user)
        else:
            named = {r["user_id"] for r in rows if r["kind"] == "member" and r["user_id"]}
            users = {user_id for user_id in named if user_id in self.by_user}
            for row in rows:
                room = row["data"].get("room") if row["kind"] == "room" else None
                if isinstance(room, dict) and row["room_id"] is not None:
                    if room.get("archived"):
                        self.archived.add(row["room_id"])
                    else:
                        self.archived.discard(row["room_id"])
        for user_id in users:
            rooms = await handshake.rooms_of(user_id)
            self.remember_rooms(rooms)
            for sock in tuple(self.by_user.get(user_id, ())):
                if sock in self._pending:
                    continue  # its rooms are being read now, after these changes
                watched = set(getattr(sock, "watched", ()))
                for room_id in self.rooms_of.get(sock, set()) - watched:
                    self._discard(self.by_room, room_id, sock)
                self.rooms_of[sock] = {room[0] for room in rooms} | watched
                for room_id in self.rooms_of[sock]:
                    self.by_room.setdefault(room_id, set()).add(sock)

    async def _recheck_sessions_forever(self) -> None:
        while True:
            await asyncio.sleep(settings.CHAT_SESSION_RECHECK_SECONDS)
            try:
                await self.recheck_sessions()
            except Exception:
                log.exception("could not re-check the sessions of open sockets")

    def login_verified(self, pair: tuple[str, int], memo: tuple[str, str]) -> None:
        """A handshake found this login signed in, with this session data and password hash.

        Remembered as the periodic re-check remembers what it found valid
        (accounts.selectors.logins_still_valid): the first re-check after
        thousands of handshakes does not decode and hash their sessions again.
        """
        self._verified[pair] = memo

    async def recheck_sessions(self) -> None:
        """Close sockets whose session ended without anyone saying so (it expired)."""
        from accounts.selectors import logins_still_valid  # accounts imports chat

        pairs = {(s.login_id, s.user_id) for s in self.rooms_of}
        for gone in self._verified.keys() - pairs:
            del self._verified[gone]
        if not pairs:
            return
        # On the side thread, in slices: on the thread every send, handshake
        # and catch-up waits for, even one slice of 500 held them all up for
        # a third of a second while the process was busy.
        valid: set[tuple[str, int]] = set()
        listed = list(pairs)  # any order: logins_still_valid sorts what it queries
        check = side_sync_to_async(logins_still_valid)
        for start in range(0, len(listed), RECHECK_SLICE):
            chunk = set(listed[start : start + RECHECK_SLICE])
            valid |= await check(chunk, self._verified)
        for sock in tuple(self.rooms_of):
            # A socket opened meanwhile was not checked: its handshake just was.
            pair = (sock.login_id, sock.user_id)
            if pair in pairs and pair not in valid:
                sock.session_ended()

    def remember_rooms(self, rooms: "list[tuple[int, str, bool, bool]]") -> None:
        """Note (id, slug, private, archived) of rooms read from the database."""
        for room_id, slug, private, archived in rooms:
            self.rooms_by_slug[slug] = RoomRef(room_id, private)
            if archived:
                self.archived.add(room_id)
            else:
                self.archived.discard(room_id)

    async def handle(self, event: dict) -> None:
        kind = event.get("type")
        if kind == EVENTS:
            # When the batch was published (wall clock: another host's, maybe).
            published_at = event.get("at")
            for wire in event["events"]:
                item = Item.from_wire(wire)
                seq = item.seq
                if seq is not None and seq <= self.last_seq:
                    # Already handed out: a late copy of an event a gap fill
                    # sent from the log (its publish timed out here but reached
                    # Redis after the next one), or one from before this
                    # process's start. Every socket's catch-up carried it;
                    # applying its membership change now would undo newer ones.
                    metrics.LATE_EVENTS_DROPPED.inc()
                    continue
                if seq is not None and seq > self.last_seq + 1:
                    # Published in order: what lies between was not sent here.
                    # Also while degraded (this process's publish failed, it
                    # still hears the others): the recovery's catch-up comes
                    # later, and the socket must not see this one first.
                    await self._fill(self.last_seq, seq - 1, notice=False)
                if await self.deliver(item) and published_at is not None:
                    metrics.FANOUT_LATENCY.observe(max(time.time() - published_at, 0.0))
        elif kind == PRESENCE:
            from .presence import local_presence  # presence delivers through this module

            changes = [PresenceChange.from_wire(wire) for wire in event["changes"]]
            await local_presence().changes_received(changes)
        elif kind == SESSION_CHECK:
            for sock in tuple(self.by_user.get(event["user"], ())):
                sock.session_check_soon()

    async def deliver(self, item: Item) -> int:
        """Write one event to the local sockets it is for, applying its membership change.

        Returns how many sockets it was for.
        """
        seq, op, user, arg = item.seq, item.op, item.user, item.arg
        if seq is not None and seq > self.last_seq:
            self.last_seq = seq
        # A membership change names its user and room; the others their room (`arg`).
        if op is Op.SUBSCRIBE and user is not None and arg is not None:
            self.subscribe(user, arg)
            self._resize(arg, +1)
        elif op is Op.ARCHIVE and arg is not None:
            self.archived.add(arg)
        elif op is Op.UNARCHIVE and arg is not None:
            self.archived.discard(arg)
        targets: set[Subscriber] | None
        if len(item.rooms) == 1 and user is None:  # a room's event: the common case
            targets = self.by_room.get(item.rooms[0])
        elif op is Op.EVERYONE:
            targets = set(self.rooms_of)  # every registered socket
        else:
            targets = set(self.by_user.get(user, ())) if user is not None else set()
            for room_id in item.rooms:
                targets |= self.by_room.get(room_id, set())
        if op is Op.SKIP_USER and targets and arg is not None:
            targets = targets - self.by_user.get(arg, set())
        if targets:
            text = item.text
            prepared = prepare(text)
            # One plain loop: under daphne every socket takes the frame at once
            # (a big room's in batches of one system call each, `write_batch`,
            # flushed before anything else may write). The loop gets a turn
            # every FANOUT_SLICE sockets written.
            batch = write_batch(len(targets))
            for sock in tuple(targets):
                try:
                    if not sock.offer(text, prepared, seq, batch):
                        if batch is not None:
                            batch.flush()
                        await sock.deliver(text, prepared, seq)
                except Exception:
                    log.exception("delivery to a socket failed")
                self._written += 1
                if self._written >= FANOUT_SLICE:
                    self._written = 0
                    if batch is not None:
                        batch.flush()
                    await asyncio.sleep(0)
            if batch is not None:
                batch.flush()
            metrics.EVENTS_DELIVERED.inc(len(targets))
        if op is Op.UNSUBSCRIBE and user is not None and arg is not None:
            self.unsubscribe(user, arg)
            self._resize(arg, -1)
        return len(targets) if targets else 0


def _log_failure(task: "asyncio.Future[None]") -> None:
    if not task.cancelled() and task.exception() is not None:
        log.warning("status delivery to a socket failed: %r", task.exception())


# This process's (this event loop's) fan-out.
local_fanout = per_event_loop(Fanout)
