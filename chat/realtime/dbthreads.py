"""The database threads of a server process besides Channels' own.

Channels runs all database work of a process on one thread, so whatever else
runs there makes every send wait behind it. On PostgreSQL two kinds of work
get a thread and a pooled connection of their own:

- read-marker writes (and thread read markers): a stream of them would hold
  up sends; the ordering lock (chat.eventlog.ordered) still puts their events
  in the one order with every other change;
- what handshakes and catch-ups read (sessions, rooms, the pages of a
  catch-up): reads only, each one up to thousands of events, which a send
  would otherwise wait for (five reconnects a second cost sends tens of
  milliseconds each in an organization's day).

SQLite keeps one thread for everything (one writer, and the tests' in-memory
and file databases are opened by that thread).
"""

from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

from channels.db import database_sync_to_async
from django.db import connection

_P = ParamSpec("_P")
_R = TypeVar("_R")

_markers_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="teamchat-read-markers")
_reads_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="teamchat-reads")


def close_thread_connections() -> None:
    """Close the database connections these threads hold (before dropping a database)."""
    from django.db import connections

    for thread in (_markers_thread, _reads_thread):
        thread.submit(connections.close_all).result()


def _on(executor: ThreadPoolExecutor, func: Callable[_P, _R]) -> Callable[_P, Awaitable[_R]]:
    if connection.vendor == "postgresql":
        return database_sync_to_async(func, thread_sensitive=False, executor=executor)
    return database_sync_to_async(func)


def marker_sync_to_async(func: Callable[_P, _R]) -> Callable[_P, Awaitable[_R]]:
    """`database_sync_to_async` for read-marker writes: off the send thread on PostgreSQL."""
    return _on(_markers_thread, func)


def reads_sync_to_async(func: Callable[_P, _R]) -> Callable[_P, Awaitable[_R]]:
    """`database_sync_to_async` for what handshakes and catch-ups read: off the send thread."""
    return _on(_reads_thread, func)
