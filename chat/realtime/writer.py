"""Group commit for socket sends and read markers.

Sends from every socket of the process queue here; one task stores them in
batches, each batch in one transaction (`services.message_send_many`), so the
database sees one round trip per batch rather than per message. A batch is
whatever queued while the previous one was being written: an idle server
writes a lone message at once, a busy one writes many per commit.
"""

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ParamSpec, TypeVar

from channels.db import database_sync_to_async
from django.db import InterfaceError, OperationalError, connection
from psycopg.pq import TransactionStatus
from psycopg_pool import PoolTimeout

from teamchat import metrics

from .. import services
from ..services import ReadRequest, SendRequest, SendResult
from .perloop import per_event_loop

log = logging.getLogger(__name__)

MAX_BATCH = 500
# How long a read-marker move waits for others to share its batch.
READ_BATCH_SECONDS = 0.1

_P = ParamSpec("_P")
_R = TypeVar("_R")

# Channels runs all database work of a process on one thread, so a stream of
# read-marker writes would make every send wait behind them. On PostgreSQL
# work that must not queue in front of sends gets a thread and a pooled
# connection of its own, the side thread: read markers (and thread read
# markers), whose events the ordering lock (chat.eventlog.ordered) still puts
# in the one order with every other change, and the periodic re-check of
# every open socket's session (chat.realtime.fanout), which for thousands of
# sockets held the send thread for a third of a second at a time. The
# handshakes' reads (sessions, rooms, the first page of each catch-up) get a
# thread of their own, the handshake thread: at five reconnects a second
# among 5,000 people they took a sixth of the send thread's time (bench
# scenario K), and sends queued behind them. SQLite keeps one database thread.
_side_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="teamchat-side-db")
_handshake_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="teamchat-handshake-db")


def close_side_connections() -> None:
    """Close the database connections the side and handshake threads hold (before dropping a
    database)."""
    from django.db import connections

    for thread in (_side_thread, _handshake_thread):
        thread.submit(connections.close_all).result()


def side_sync_to_async(func: Callable[_P, _R]) -> Callable[_P, Awaitable[_R]]:
    """`database_sync_to_async` for work that must not hold up sends (the side thread)."""
    return _on(_side_thread, func)


def handshake_sync_to_async(func: Callable[_P, _R]) -> Callable[_P, Awaitable[_R]]:
    """`database_sync_to_async` for the handshakes' reads (the handshake thread)."""
    return _on(_handshake_thread, func)


def _on(thread: ThreadPoolExecutor, func: Callable[_P, _R]) -> Callable[_P, Awaitable[_R]]:
    if connection.vendor == "postgresql":
        return database_sync_to_async(
            _no_transaction_left(func), thread_sensitive=False, executor=thread
        )
    return database_sync_to_async(func)


def _no_transaction_left(func: Callable[_P, _R]) -> Callable[_P, _R]:
    """`func`, after which its thread's connection is never left inside a transaction.

    These threads only read, or commit through `atomic()`; between two calls
    their connection must be idle. One left inside a transaction (an
    `atomic()` whose end could not restore autocommit, say with database
    access refused meanwhile) would hold its locks and snapshot for as long
    as the thread has nothing to do: every DDL and TRUNCATE, and the
    vacuuming of every table it read, would wait for it. So it is checked
    (a flag libpq keeps, no round trip), and such a connection is closed, and
    the pool rolls it back, naming the work that left it so.
    """

    @functools.wraps(func)
    def run(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return func(*args, **kwargs)
        finally:
            _end_transaction_left_open(func)

    return run


def _end_transaction_left_open(func: Callable[..., Any]) -> None:
    held = connection.connection
    if held is None or connection.in_atomic_block:
        return
    status = held.info.transaction_status
    if status == TransactionStatus.IDLE and connection.autocommit:
        return
    metrics.TRANSACTIONS_LEFT_OPEN.inc()
    log.error(
        "%s left its connection in a transaction (%s, autocommit %s); closing it",
        getattr(func, "__qualname__", func),
        status.name,
        connection.autocommit,
    )
    try:
        connection.close()
    except Exception:
        log.exception("could not close the connection left in a transaction")
        connection.connection = None
        held.close()


class MessageWriter:
    def __init__(self) -> None:
        self._queue: list[tuple[SendRequest, asyncio.Future[SendResult]]] = []
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def submit(self, request: SendRequest) -> "asyncio.Future[SendResult]":
        """Queue one message; the future gives its result or raises ChatError.

        Requests are stored in the order they are submitted.
        """
        future: asyncio.Future[SendResult] = asyncio.get_running_loop().create_future()
        self._queue.append((request, future))
        self._wakeup.set()
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run())
        return future

    async def _run(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._queue:
                batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
                self._writing = True
                try:
                    await self._write(batch)
                finally:
                    self._writing = False

    _writing = False

    def busy(self) -> bool:
        """Whether sends are queued or being stored (a draining server waits for them)."""
        return bool(self._queue) or self._writing

    @classmethod
    async def _write(cls, batch: list[tuple[SendRequest, asyncio.Future[SendResult]]]) -> None:
        metrics.COMMIT_BATCH.observe(len(batch))
        with metrics.COMMIT_SECONDS.time():
            results = await cls._write_results([request for request, _ in batch])
        for (_, future), result in zip(batch, results, strict=True):
            if future.done():  # the socket went away meanwhile
                continue
            if isinstance(result, BaseException):
                future.set_exception(result)
            else:
                future.set_result(result)

    @staticmethod
    async def _write_results(
        requests: list[SendRequest],
    ) -> list[SendResult | services.ChatError | BaseException]:
        """Store a batch; one result (or exception) per request, in order."""
        try:
            return [*await database_sync_to_async(services.message_send_many)(requests)]
        except Exception as exc:
            if len(requests) == 1 or _database_unreachable(exc):
                return [exc] * len(requests)
            # One message the database refuses must not fail the others it
            # was batched with: store them one by one instead.
            return await database_sync_to_async(_send_each)(requests)


def _database_unreachable(exc: BaseException) -> bool:
    # Then every message would fail again, each after its own wait.
    return isinstance(exc, OperationalError | InterfaceError | PoolTimeout)


def _send_each(requests: list[SendRequest]) -> list[SendResult | BaseException]:
    results: list[SendResult | BaseException] = []
    for request in requests:
        result: SendResult | BaseException
        try:
            [result] = services.message_send_many([request])
        except Exception as exc:
            result = exc
        results.append(result)
    return results


# This process's (this event loop's) writer.
message_writer = per_event_loop(MessageWriter)


class ReadMarkerWriter:
    """Read markers from every socket of the process, written in batches, the last one winning.

    A tab reading a busy room asks to move its marker every few messages,
    and every tab of a user may ask at once; only where each marker ends up
    matters. Requests that queue while a batch is written form the next one
    (`services.read_markers_set`): a marker that does not move costs no lock
    and no event, and those that move share one commit.
    """

    def __init__(self) -> None:
        self._queue: list[tuple[ReadRequest, asyncio.Future[dict | None]]] = []
        self._task: asyncio.Task[None] | None = None

    def submit(self, request: ReadRequest) -> "asyncio.Future[dict | None]":
        """Queue one request; the future gives the `read` event data, None, or raises ChatError."""
        future: asyncio.Future[dict | None] = asyncio.get_running_loop().create_future()
        self._queue.append((request, future))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run())
        return future

    def busy(self) -> bool:
        """Whether markers are queued or being stored."""
        return bool(self._queue) or (self._task is not None and not self._task.done())

    async def _run(self) -> None:
        # Gather what comes in the next moment: a tab (or many people) moving
        # markers quickly makes one batch of these, the last move per marker
        # winning, instead of one write each. Every batch waits so, not only
        # the first (unless a full one is queued): each holds the global
        # ordering lock, and the moves that came in while the last one was
        # written are only a few.
        while True:
            if len(self._queue) < MAX_BATCH:
                await asyncio.sleep(READ_BATCH_SECONDS)
            if not self._queue:
                return
            batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
            requests = [request for request, _ in batch]
            results: list[dict[str, Any] | BaseException | None]
            try:
                results = [*await side_sync_to_async(services.read_markers_set)(requests)]
            except Exception as exc:
                results = [exc] * len(batch)
            for (_, future), result in zip(batch, results, strict=True):
                if future.done():
                    continue
                if isinstance(result, BaseException):
                    future.set_exception(result)
                else:
                    future.set_result(result)


read_marker_writer = per_event_loop(ReadMarkerWriter)
