"""Writes straight to a non-blocking socket, keeping the GIL, for the event loop's hot writes.

`socket.send` lets the GIL go for every write. While another thread runs
Python (a database thread building a query), each write from the event loop
then hands the interpreter over and waits up to the switch interval to get it
back: thousands of waits a second for a busy server. The sockets written here
are non-blocking (and MSG_DONTWAIT says so again), so a write never waits in
the kernel and keeping the GIL through it costs nobody anything.

Two writers use it: the socket transport (`chat.realtime.transport`, frames to
clients) and the Redis connections of the channel layer and of the project's
own clients (`RedisConnection` here, wired in settings and
`teamchat.redisconn`), whose every command the fan-out, presence and rate
limits send.

This module imports nothing of Django, so settings can name its classes.
"""

import asyncio
import asyncio.selector_events
import ctypes
import socket
import sys
from collections.abc import Iterable
from typing import Any

import redis.asyncio
import redis.asyncio.sentinel


def _libc_send() -> Any:
    """libc's `send`, called with the GIL kept (ctypes' PyDLL); None where there is none."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        send = ctypes.PyDLL(None).send
    except (OSError, AttributeError):
        return None
    send.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_int)
    send.restype = ctypes.c_ssize_t
    return send


SEND = _libc_send()
# A closed peer is an error, not a SIGPIPE (both flags exist wherever SEND does).
_SEND_FLAGS = getattr(socket, "MSG_DONTWAIT", 0) | getattr(socket, "MSG_NOSIGNAL", 0)


def send_now(sock: Any, data: bytes) -> int:
    """Write what the kernel takes of `data` at once; how many bytes it took (0 on any error).

    An error other than "would block" is met again by the caller's ordinary
    write of the rest, which reports it the way it always does.
    """
    if SEND is not None:
        return max(SEND(sock.fileno(), data, len(data), _SEND_FLAGS), 0)
    try:
        return sock.send(data)
    except OSError:
        return 0  # BlockingIOError and InterruptedError included


# asyncio's plain TCP transport: only there is the socket ours to write beside
# the transport (a TLS transport's socket carries encrypted records).
_PLAIN_TRANSPORT = getattr(asyncio.selector_events, "_SelectorSocketTransport", None)


def _transport_send_now(transport: Any, data: bytes) -> int:
    """send_now on an asyncio transport's socket, when nothing is queued on it; else 0."""
    if (
        SEND is None
        or type(transport) is not _PLAIN_TRANSPORT
        or transport.is_closing()
        or transport.get_write_buffer_size()
    ):
        return 0
    sock = transport.get_extra_info("socket")
    return 0 if sock is None else send_now(sock, data)


class _CommandsSentNow:
    """A redis-py asyncio connection whose commands go straight to the socket.

    redis-py writes a command through asyncio's stream writer, whose transport
    calls `socket.send` (the GIL handed over, above). With a socket timeout
    set (the channel layer's is 30 s), it also wraps each write in
    `asyncio.wait_for`, which on Python 3.11 starts a task per command. Here a
    command the kernel takes whole is written at once with neither; whatever
    it does not take (a large message, a full buffer) goes the ordinary way,
    after the part it took, with redis-py's own timeout and error handling.
    """

    async def send_packed_command(
        self, command: bytes | str | Iterable[bytes], check_health: bool = True
    ) -> None:
        # A health check would send a PING: never between two parts of a command.
        # (A redis-py without `_writer` would just take the ordinary way.)
        writer = getattr(self, "_writer", None)
        if writer is not None and not self.health_check_interval:  # type: ignore[attr-defined]
            if isinstance(command, str):
                command = command.encode()
            data = command if isinstance(command, bytes) else b"".join(command)
            sent = _transport_send_now(writer.transport, data)
            if sent == len(data):
                return
            command = data[sent:] if sent else data
            check_health = check_health and not sent
        await super().send_packed_command(command, check_health)  # type: ignore[misc]


class RedisConnection(_CommandsSentNow, redis.asyncio.Connection):
    """A plain Redis connection (REDIS_URL) whose commands are sent at once."""


class SentinelRedisConnection(_CommandsSentNow, redis.asyncio.sentinel.SentinelManagedConnection):
    """A connection to the primary Sentinel names, whose commands are sent at once."""
