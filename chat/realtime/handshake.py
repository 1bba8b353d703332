"""What a socket handshake reads, read for many handshakes at once.

(The sessions and users, the rooms, the first page of a catch-up, and the
people a new tab follows.)

When a whole organization connects at once (Monday morning, every tab after
a deploy) each handshake needs its session and its rooms. Read one by one,
each is a query and a hop to the single database thread Channels runs them
on, and the handshakes wait in line behind each other. Here the handshakes
that arrive while a read is under way wait together and are served by the
next read, one query for all of them: an idle server still reads a lone
handshake's data at once.
"""

import asyncio
import contextlib
import dataclasses
from collections.abc import Callable, Hashable
from typing import Any, Generic, TypeVar

from django.conf import settings
from django.http.cookie import parse_cookie

from accounts import session_store

from .. import events, selectors
from ..events import ReplayPage, ReplayRequest
from .perloop import per_event_loop
from .writer import handshake_sync_to_async

K = TypeVar("K", bound=Hashable)
# The longest that reads for open sockets wait for handshakes to be read.
LANE_WAIT_SECONDS = 1.0
V = TypeVar("V")


class _Lane:
    """Handshakes first: what only opened sockets need waits while handshakes are read."""

    def __init__(self) -> None:
        self.busy = 0
        self.idle = asyncio.Event()
        self.idle.set()

    def enter(self) -> None:
        self.busy += 1
        self.idle.clear()

    def leave(self) -> None:
        self.busy -= 1
        if not self.busy:
            self.idle.set()


class BatchLoader(Generic[K, V]):
    """`await get(key)`: `load(keys)` run in the database thread for everyone waiting.

    A loader for handshakes (`lane` given, `first=True`) marks the lane busy
    while it has work; the others wait for it to be idle before reading, so
    a storm of connections opens before the sockets already open catch up.
    """

    def __init__(
        self,
        load: Callable[[set[K]], dict[K, V]],
        lane: "_Lane | None" = None,
        first: bool = False,
    ) -> None:
        self._load = handshake_sync_to_async(load)
        self._waiting: dict[K, list[asyncio.Future[V | None]]] = {}
        self._task: asyncio.Task[None] | None = None
        self._lane = lane
        self._first = first

    async def get(self, key: K) -> V | None:
        """The value for `key` (None when `load` found none)."""
        future: asyncio.Future[V | None] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(key, []).append(future)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run())
        return await future

    async def _run(self) -> None:
        lane = self._lane
        if lane is not None and self._first:
            lane.enter()
        try:
            await self._run_batches()
        finally:
            if lane is not None and self._first:
                lane.leave()

    async def _run_batches(self) -> None:
        await asyncio.sleep(0)  # let the handshakes already on their way join in
        if self._lane is not None and not self._first:
            # Not forever: a steady stream of handshakes must not starve catch-ups.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._lane.idle.wait(), LANE_WAIT_SECONDS)
        while self._waiting:
            batch, self._waiting = self._waiting, {}
            try:
                found = await self._load(set(batch))
            except Exception as exc:
                for futures in batch.values():
                    for future in futures:
                        if not future.done():
                            future.set_exception(exc)
                continue
            for key, futures in batch.items():
                value = found.get(key)
                for future in futures:
                    if not future.done():
                        future.set_result(value)


# Events read at once for the first page of the catch-ups that start together.
REPLAY_BATCH_EVENTS = 2000


def _first_pages(requests: set[ReplayRequest]) -> dict[ReplayRequest, ReplayPage]:
    ordered = list(requests)
    pages = events.replay_pages(ordered, REPLAY_BATCH_EVENTS)
    return dict(zip(ordered, pages, strict=True))


def _users_named(lists: set[frozenset[str]]) -> dict[frozenset[str], dict[int, str]]:
    found = selectors.active_users_named(set().union(*lists))
    by_name = {name: user_id for user_id, name in found.items()}
    return {names: {by_name[name]: name for name in names if name in by_name} for names in lists}


def _loaders() -> dict[str, BatchLoader[Any, Any]]:
    lane = _Lane()
    return {
        "sessions": BatchLoader(lambda keys: session_store.sessions_read_ahead(keys), lane, True),
        "rooms": BatchLoader(lambda user_ids: selectors.rooms_of_members(user_ids), lane, True),
        "replays": BatchLoader(_first_pages, lane),
        "names": BatchLoader(_users_named, lane),
    }


_per_loop = per_event_loop(_loaders)


async def rooms_of(user_id: int) -> list[tuple[int, str, bool, bool]]:
    """(id, slug, private, archived) of the rooms the user belongs to."""
    return await _per_loop()["rooms"].get(user_id) or []


async def users_named(names: frozenset[str]) -> dict[int, str]:
    """id -> username of the active users with these names (a page's follow list).

    Every tab sends one right after it connects; those that arrive together
    are looked up together.
    """
    return await _per_loop()["names"].get(names) or {}


async def first_replay_page(request: ReplayRequest) -> ReplayPage:
    """The start of a socket's catch-up, read with those of the sockets reconnecting with it.

    After a restart every client comes back at once from about the same
    place in the log: their events are read, and each rendered, once.
    """
    page = await _per_loop()["replays"].get(request)
    assert page is not None
    return page


class SessionPreloadMiddleware:
    """Reads the session and user of each socket handshake with those of the others in flight.

    Sits above Channels' AuthMiddlewareStack, which then finds both already
    read (accounts.session_store.preloaded, accounts.backends) and does the
    rest as usual: the backend's checks, the session's auth hash, the scope.
    """

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        key = _session_key(scope)
        if key is not None:
            await _read_ahead(key)
        # This frame lives as long as the socket: it holds nothing read ahead.
        return await self.inner(scope, receive, send)


async def _read_ahead(key: str) -> None:
    found = await _per_loop()["sessions"].get(key)
    # A copy of its own: tabs of one session read together share `found`, and
    # each socket empties its copy when its handshake is over.
    ahead = dataclasses.replace(found) if found else session_store.ReadAhead(key, None)
    session_store.preloaded.set(ahead)


def _session_key(scope: dict[str, Any]) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == b"cookie":
            key = parse_cookie(value.decode("latin1")).get(settings.SESSION_COOKIE_NAME)
            # What Django's stores accept as a key at all; anything else is never looked up.
            if key and 8 <= len(key) <= 40 and key.isalnum():
                return key
            return None
    return None
