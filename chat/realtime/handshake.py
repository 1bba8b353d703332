"""What a socket handshake reads, read for many handshakes at once.

When a whole organization connects at once (Monday morning, every tab after
a deploy) each handshake needs its session and its rooms. Read one by one,
each is a query and a hop to the single database thread Channels runs them
on, and the handshakes wait in line behind each other. Here the handshakes
that arrive while a read is under way wait together and are served by the
next read, one query for all of them: an idle server still reads a lone
handshake's data at once.
"""

import asyncio
from collections.abc import Callable, Hashable
from typing import Any, Generic, TypeVar

from channels.db import database_sync_to_async
from django.conf import settings
from django.http.cookie import parse_cookie

from accounts import session_store

from .. import selectors
from .perloop import per_event_loop

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class BatchLoader(Generic[K, V]):
    """`await get(key)`: `load(keys)` run in the database thread for everyone waiting."""

    def __init__(self, load: Callable[[set[K]], dict[K, V]]) -> None:
        self._load = database_sync_to_async(load)
        self._waiting: dict[K, list[asyncio.Future[V | None]]] = {}
        self._task: asyncio.Task[None] | None = None

    async def get(self, key: K) -> V | None:
        """The value for `key` (None when `load` found none)."""
        future: asyncio.Future[V | None] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(key, []).append(future)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run())
        return await future

    async def _run(self) -> None:
        await asyncio.sleep(0)  # let the handshakes already on their way join in
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


def _loaders() -> dict[str, BatchLoader[Any, Any]]:
    return {
        "sessions": BatchLoader(lambda keys: session_store.sessions_read_ahead(keys)),
        "rooms": BatchLoader(lambda user_ids: selectors.rooms_of_members(user_ids)),
    }


_per_loop = per_event_loop(_loaders)


async def rooms_of(user_id: int) -> list[tuple[int, str, bool, bool]]:
    """(id, slug, private, archived) of the rooms the user belongs to."""
    return await _per_loop()["rooms"].get(user_id) or []


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
            found = await _per_loop()["sessions"].get(key)
            session_store.preloaded.set(found or session_store.ReadAhead(key, None))
        return await self.inner(scope, receive, send)


def _session_key(scope: dict[str, Any]) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == b"cookie":
            key = parse_cookie(value.decode("latin1")).get(settings.SESSION_COOKIE_NAME)
            # What Django's stores accept as a key at all; anything else is never looked up.
            if key and 8 <= len(key) <= 40 and key.isalnum():
                return key
            return None
    return None
