"""Presence: online (some tab active), away (tabs open, none active) or offline.

Each server process knows the states of its own sockets. What a user is
across processes lives in the cache (Redis when configured) as one entry per
process with an expiry that the process keeps renewing, so the entries of a
process that died fade out by themselves. A change of a user's state is
announced to the people who share a room with them; it is never stored in the
database.
"""

import asyncio
import logging
import time
import uuid
from typing import Any

from asgiref.sync import sync_to_async
from django.core.cache import cache

from . import events
from .perloop import per_event_loop

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 30.0
ENTRY_SECONDS = 90.0
ONLINE, AWAY, OFFLINE = "online", "away", "offline"
_RANK = {ONLINE: 2, AWAY: 1, OFFLINE: 0}


def _key(user_id: int) -> str:
    return f"presence:{user_id}"


def _best(entries: dict[str, Any] | None, now: float) -> str:
    best = OFFLINE
    for state, expires, _ in (entries or {}).values():
        if expires > now and _RANK[state] > _RANK[best]:
            best = state
    return best


def states(user_ids: list[int]) -> dict[int, str]:
    """Each user's state across every server process. One cache round trip."""
    now = time.time()
    found = cache.get_many([_key(u) for u in user_ids])
    return {u: _best(found.get(_key(u)), now) for u in user_ids}


def _store(process: str, user_id: int, state: str | None, sockets: int) -> str:
    """Write this process's entry for the user; return the user's overall state."""
    now = time.time()
    key = _key(user_id)
    entries = {p: v for p, v in (cache.get(key) or {}).items() if v[1] > now}
    if state is None:
        entries.pop(process, None)
    else:
        entries[process] = (state, now + ENTRY_SECONDS, sockets)
    cache.set(key, entries, timeout=int(ENTRY_SECONDS * 2))
    return _best(entries, now)


def _remote_sockets(user_id: int, process: str) -> int:
    now = time.time()
    entries = cache.get(_key(user_id)) or {}
    return sum(n for p, (_, expires, n) in entries.items() if p != process and expires > now)


class LocalPresence:
    """The presence of this process's sockets, by user."""

    def __init__(self) -> None:
        self.process = uuid.uuid4().hex
        self.sockets: dict[int, dict[Any, str]] = {}
        # Sockets counted against the per-user cap, from handshake to close.
        self.open: dict[int, int] = {}
        self._heartbeat: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def admit(self, user_id: int, cap: int) -> bool:
        """Count a new socket of the user unless they already have `cap` open (all processes).

        Other processes' counts are as they last reported them; this
        process's is exact, and is taken in the same step as the check.
        """
        try:
            remote = await sync_to_async(_remote_sockets, thread_sensitive=False)(
                user_id, self.process
            )
        except Exception:  # the cache being down must not lock everyone out
            log.warning("could not read socket counts; applying the cap to this process only")
            remote = 0
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

        Every change is written to the cache (the socket count serves the
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
        count = self.open.get(user_id, 0)
        announce = set(room_ids) if before != after else set()
        task = asyncio.create_task(
            self._announce(user_id, sock.user.username, after, count, announce)
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _announce(
        self, user_id: int, username: str, local: str | None, sockets: int, rooms: set[int]
    ) -> None:
        try:
            overall = await sync_to_async(_store, thread_sensitive=False)(
                self.process, user_id, local, sockets
            )
            event = {"type": "presence", "user": username, "state": overall, "seq": None}
            if rooms:
                await events.apublish([[sorted(rooms), None, None, events.encode(event), None]])
        except Exception:
            log.exception("could not announce the presence of user %s", user_id)

    async def _renew_forever(self) -> None:
        while self.sockets:
            await asyncio.sleep(HEARTBEAT_SECONDS)
            current = {u: (self._local(s), self.open.get(u, 0)) for u, s in self.sockets.items()}
            try:
                await sync_to_async(self._renew, thread_sensitive=False)(current)
            except Exception:
                log.exception("could not renew presence entries")

    def _renew(self, current: dict[int, tuple[str | None, int]]) -> None:
        for user_id, (state, sockets) in current.items():
            _store(self.process, user_id, state, sockets)


local_presence = per_event_loop(LocalPresence)
