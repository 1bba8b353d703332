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
    for state, expires in (entries or {}).values():
        if expires > now and _RANK[state] > _RANK[best]:
            best = state
    return best


def states(user_ids: list[int]) -> dict[int, str]:
    """Each user's state across every server process. One cache round trip."""
    now = time.time()
    found = cache.get_many([_key(u) for u in user_ids])
    return {u: _best(found.get(_key(u)), now) for u in user_ids}


def _store(process: str, user_id: int, state: str | None) -> str:
    """Write this process's entry for the user; return the user's overall state."""
    now = time.time()
    key = _key(user_id)
    entries = {p: v for p, v in (cache.get(key) or {}).items() if v[1] > now}
    if state is None:
        entries.pop(process, None)
    else:
        entries[process] = (state, now + ENTRY_SECONDS)
    cache.set(key, entries, timeout=int(ENTRY_SECONDS * 2))
    return _best(entries, now)


class LocalPresence:
    """The presence of this process's sockets, by user."""

    def __init__(self) -> None:
        self.process = uuid.uuid4().hex
        self.sockets: dict[int, dict[Any, str]] = {}
        self._heartbeat: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @staticmethod
    def _local(by_socket: dict[Any, str] | None) -> str | None:
        if not by_socket:
            return None
        return ONLINE if "active" in by_socket.values() else AWAY

    def update(self, sock: Any, state: str | None, room_ids: set[int] | frozenset = frozenset()):
        """Record a socket's state ("active", "away", or None when it closed)."""
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
        if before == after:
            return
        if self._heartbeat is None or self._heartbeat.done():
            self._heartbeat = asyncio.create_task(self._renew_forever())
        task = asyncio.create_task(
            self._announce(user_id, sock.user.username, after, set(room_ids))
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _announce(self, user_id: int, username: str, local: str | None, rooms: set[int]):
        try:
            overall = await sync_to_async(_store, thread_sensitive=False)(
                self.process, user_id, local
            )
            event = {"type": "presence", "user": username, "state": overall, "seq": None}
            if rooms:
                await events.apublish([[sorted(rooms), None, None, events.encode(event), None]])
        except Exception:
            log.exception("could not announce the presence of user %s", user_id)

    async def _renew_forever(self) -> None:
        while self.sockets:
            await asyncio.sleep(HEARTBEAT_SECONDS)
            current = {u: self._local(s) for u, s in self.sockets.items()}
            try:
                await sync_to_async(self._renew, thread_sensitive=False)(current)
            except Exception:
                log.exception("could not renew presence entries")

    def _renew(self, current: dict[int, str | None]) -> None:
        for user_id, state in current.items():
            _store(self.process, user_id, state)


local_presence = per_event_loop(LocalPresence)
