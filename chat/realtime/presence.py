"""Presence: online (some tab active), away (tabs open, none active) or offline.

Each server process knows the states of its own sockets. What a user is
across processes lives in Redis (when configured) as one hash per user with a
field per process, `state|expires|sockets`, which the process keeps renewing,
so the entries of a process that died fade out by themselves. The socket
counts serve the per-user cap. A change of a user's state is announced to the
people who share a room with them; presence is never stored in the database.

The socket path talks to Redis with redis-py's asyncio client on the event
loop (no thread hop, no connection per call); HTTP views read it with the
blocking client. Without Redis (one process) a dict stands in.
"""

import asyncio
import logging
import time
import uuid
from typing import Any

import redis
import redis.asyncio
from django.conf import settings

from .. import events
from .perloop import per_event_loop

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 30.0
ENTRY_SECONDS = 90.0
ONLINE, AWAY, OFFLINE = "online", "away", "offline"
_RANK = {ONLINE: 2, AWAY: 1, OFFLINE: 0}

# Without Redis: key -> {process: entry}, shared by the one process's threads.
_memory: dict[str, dict[str, str]] = {}
_sync_client: redis.Redis | None = None


def _key(user_id: int) -> str:
    return f"{settings.CHANNEL_LAYER_PREFIX}:presence:{user_id}"


def _entry(state: str, sockets: int) -> str:
    return f"{state}|{time.time() + ENTRY_SECONDS:.0f}|{sockets}"


def _parse(entries: dict[Any, Any] | None) -> list[tuple[str, str, float, int]]:
    """[(process, state, expires, sockets)] of the live entries."""
    now = time.time()
    parsed = []
    for process, value in (entries or {}).items():
        process = process.decode() if isinstance(process, bytes) else process
        value = value.decode() if isinstance(value, bytes) else value
        state, expires, sockets = value.split("|")
        if float(expires) > now:
            parsed.append((process, state, float(expires), int(sockets)))
    return parsed


def _best(entries: dict[Any, Any] | None) -> str:
    best = OFFLINE
    for _, state, _, _ in _parse(entries):
        if _RANK[state] > _RANK[best]:
            best = state
    return best


def states(user_ids: list[int]) -> dict[int, str]:
    """Each user's state across every server process. One round trip."""
    global _sync_client
    if not settings.REDIS_URL:
        return {u: _best(_memory.get(_key(u))) for u in user_ids}
    if _sync_client is None:
        _sync_client = redis.Redis.from_url(settings.REDIS_URL)
    pipe = _sync_client.pipeline(transaction=False)
    for user_id in user_ids:
        pipe.hgetall(_key(user_id))
    return {u: _best(found) for u, found in zip(user_ids, pipe.execute(), strict=True)}


class LocalPresence:
    """The presence of this process's sockets, by user, and its entries in the shared store."""

    def __init__(self) -> None:
        self.process = uuid.uuid4().hex
        self.sockets: dict[int, dict[Any, str]] = {}
        # Sockets counted against the per-user cap, from handshake to close.
        self.open: dict[int, int] = {}
        self._client: redis.asyncio.Redis | None = None
        if settings.REDIS_URL:
            # A bounded pool: a burst of handshakes queues for a few
            # connections instead of opening one each.
            pool = redis.asyncio.BlockingConnectionPool.from_url(
                settings.REDIS_URL, max_connections=16, timeout=10
            )
            self._client = redis.asyncio.Redis(connection_pool=pool)
        # Other processes' socket counts by user: (count, when read).
        self._remote: dict[int, tuple[int, float]] = {}
        # Entries to write, gathered so that a burst of changes is one round trip.
        self._dirty: dict[int, tuple[str | None, int]] = {}
        self._flushing: asyncio.Task[None] | None = None
        # Reads in flight by user: a burst of handshakes of one account shares one.
        self._reads: dict[int, asyncio.Future[dict[Any, Any]]] = {}
        self._heartbeat: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    # --- the shared store ------------------------------------------------------

    async def _read(self, user_id: int) -> dict[Any, Any]:
        if self._client is None:
            return dict(_memory.get(_key(user_id), {}))
        pending = self._reads.get(user_id)
        if pending is None:
            pending = asyncio.ensure_future(self._client.hgetall(_key(user_id)))
            self._reads[user_id] = pending
            pending.add_done_callback(lambda _: self._reads.pop(user_id, None))
        return await asyncio.shield(pending)

    async def _write(self, entries: dict[int, tuple[str | None, int]]) -> None:
        """Set (or, for a None state, remove) this process's entry for each user."""
        if self._client is None:
            for user_id, (state, sockets) in entries.items():
                found = _memory.setdefault(_key(user_id), {})
                if state is None:
                    found.pop(self.process, None)
                else:
                    found[self.process] = _entry(state, sockets)
            return
        pipe = self._client.pipeline(transaction=False)
        for user_id, (state, sockets) in entries.items():
            if state is None:
                pipe.hdel(_key(user_id), self.process)
            else:
                pipe.hset(_key(user_id), self.process, _entry(state, sockets))
                pipe.expire(_key(user_id), int(ENTRY_SECONDS * 2))
        await pipe.execute()

    # --- sockets ----------------------------------------------------------------

    async def admit(self, user_id: int, cap: int) -> bool:
        """Count a new socket of the user unless they already have `cap` open (all processes).

        Other processes' counts are as they last reported them (read at most
        once a second per user, so a burst of handshakes costs one read);
        this process's is exact, and is taken in the same step as the check.
        """
        now = time.monotonic()
        cached = self._remote.get(user_id)
        if cached is not None and now - cached[1] < 1.0:
            remote = cached[0]
        else:
            try:
                entries = await self._read(user_id)
                remote = sum(n for p, _, _, n in _parse(entries) if p != self.process)
            except Exception:  # the store being down must not lock everyone out
                log.warning("could not read socket counts; applying the cap to this process only")
                remote = 0
            self._remote[user_id] = (remote, now)
            if len(self._remote) > 10_000:
                self._remote.clear()
        if remote + self.open.get(user_id, 0) >= cap:
            return False
        self.open[user_id] = self.open.get(user_id, 0) + 1
        return True

    def release(self, user_id: int) -> None:
        left = self.open.get(user_id, 0) - 1
        if left > 0:
            self.open[user_id] = left
        else:
            self.open.pop(user_id, None)

    @staticmethod
    def _local(by_socket: dict[Any, str] | None) -> str | None:
        if not by_socket:
            return None
        return ONLINE if "active" in by_socket.values() else AWAY

    def update(self, sock: Any, state: str | None, room_ids: set[int] | frozenset = frozenset()):
        """Record a socket's state ("active", "away", or None when it closed).

        Every change is written to the store (the socket count serves the
        per-user cap); only a change of the user's state is announced.
        """
        user_id = sock.user_id
        by_socket = self.sockets.setdefault(user_id, {})
        before = self._local(by_socket)
        if state is None:
            by_socket.pop(sock, None)
            if not by_socket:
                del self.sockets[user_id]
        else:
            by_socket[sock] = state
        after = self._local(self.sockets.get(user_id))
        if self._heartbeat is None or self._heartbeat.done():
            self._heartbeat = asyncio.create_task(self._renew_forever())
        self._dirty[user_id] = (after, self.open.get(user_id, 0))
        if self._flushing is None or self._flushing.done():
            self._flushing = asyncio.create_task(self._flush())
        if before != after and room_ids:
            task = asyncio.create_task(self._announce(user_id, sock.user.username, set(room_ids)))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _flush(self) -> None:
        await asyncio.sleep(0)  # let the rest of a burst of changes gather
        while self._dirty:
            batch, self._dirty = self._dirty, {}
            try:
                await self._write(batch)
            except Exception:
                log.warning("could not record presence for %s user(s)", len(batch))

    async def _announce(self, user_id: int, username: str, rooms: set[int]) -> None:
        try:
            if self._flushing is not None:
                await asyncio.shield(self._flushing)
            overall = _best(await self._read(user_id))
            event = {"type": "presence", "user": username, "state": overall, "seq": None}
            await events.apublish([[sorted(rooms), None, None, events.encode(event), None]])
        except Exception:
            log.warning("could not announce the presence of user %s", user_id)

    async def _renew_forever(self) -> None:
        while self.sockets:
            await asyncio.sleep(HEARTBEAT_SECONDS)
            current = {u: (self._local(s), self.open.get(u, 0)) for u, s in self.sockets.items()}
            try:
                await self._write(current)
            except Exception:
                log.warning("could not renew presence entries")


local_presence = per_event_loop(LocalPresence)
