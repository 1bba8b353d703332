"""Writing events to sockets: framed once per event, and never piling up.

Under daphne each socket is an autobahn protocol on a Twisted transport. An
event that goes to many sockets is framed once (`prepare`) and the same bytes
are written to every transport, instead of being encoded and framed again for
each socket by daphne. Each socket also registers as a producer on its
transport, so Twisted says when the client stops reading (its buffer passes
64 KiB); a socket whose client keeps not reading past `SLOW_SOCKET_BYTES` is
closed, and the client catches up from the database when it reconnects.

Twisted queues every write and asks the event loop to say when the socket
is writable, which on the asyncio reactor costs two epoll changes and a
callback per write: most of the cost of a broadcast. When nothing is queued
on a plain TCP transport, the frame is sent at once (`chat.realtime.sendnow`,
with the GIL kept); only what the kernel does not take goes through Twisted's
queue, so order and backpressure are kept.

Anything that is not daphne (the test communicator) gets plain ASGI sends.

What this relies on in daphne, Twisted and autobahn is checked when the
server starts (`check_internals`, called by `teamchat.server`): an upgrade
that moves any of it is logged as an error and shown by the
`teamchat_transport_fast_path` metric, and the server refuses to start when
TEAMCHAT_TRANSPORT_REQUIRED is set, rather than silently losing the speed
and the slow-client bound. pyproject.toml bounds the three versions.
"""

import asyncio
import functools
import inspect
import logging
import socket
from collections.abc import Callable
from typing import Any

from autobahn.websocket.protocol import PreparedMessage, WebSocketServerFactory
from twisted.internet.interfaces import IPushProducer
from zope.interface import implementer

from chat.realtime import uring
from chat.realtime.sendnow import SEND, send_now

log = logging.getLogger(__name__)

# How much may be written to a socket whose client has stopped reading.
SLOW_SOCKET_BYTES = 1024 * 1024
CLOSE_TOO_SLOW = 4008
CLOSE_SERVICE_RESTART = 1012
# What is read at a time from a socket once it has sent too fast.
HELD_READ_BYTES = 1024


# autobahn's public way to frame a message once for many server sockets is
# the factory's `prepareMessage` (an unmasked frame, as a server sends). It
# keeps no per-connection state, so one factory serves every process's sockets.
_FACTORY = WebSocketServerFactory()


def prepare(text: str) -> PreparedMessage:
    """A text frame ready to be written to any number of sockets."""
    return _FACTORY.prepareMessage(text.encode(), isBinary=False, doNotCompress=True)


@implementer(IPushProducer)
class _ReadWatch:
    """Told by Twisted when the transport's buffer fills (pause) and drains (resume).

    Takes the place of the producer already registered on the transport (the
    HTTP channel the socket was upgraded from) and passes every call on to it.
    """

    __slots__ = ("inner", "paused", "written_while_paused")

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.paused = False
        self.written_while_paused = 0

    def pauseProducing(self) -> None:  # noqa: N802  (Twisted's interface)
        self.paused = True
        if self.inner is not None:
            self.inner.pauseProducing()

    def resumeProducing(self) -> None:  # noqa: N802
        self.paused = False
        self.written_while_paused = 0
        if self.inner is not None:
            self.inner.resumeProducing()

    def stopProducing(self) -> None:  # noqa: N802
        self.paused = True
        if self.inner is not None:
            self.inner.stopProducing()


class SocketOutput:
    """The write side of one socket."""

    __slots__ = ("_asgi_send", "_ws", "_transport", "_watch", "closed_for_slowness")

    def __init__(self, asgi_send: Any) -> None:
        self._asgi_send = asgi_send
        self._ws = _daphne_protocol(asgi_send)
        self._transport: Any = None
        self._watch: _ReadWatch | None = None
        self.closed_for_slowness = False

    def when_closed(self, callback: Callable[[], None]) -> None:
        """Call `callback` once the connection has closed, however it ended.

        Under daphne that is autobahn's `is_closed`, which fires with the
        transport even when the application is still busy (or is killed for
        being busy too long); elsewhere nothing, and disconnect() does.
        """
        closed = getattr(self._ws, "is_closed", None)
        if closed is None:
            return
        # A Twisted Deferred under daphne: the callback rides along as an
        # argument of one module-level function, no closure per socket.
        closed.addCallback(_fire_closed, callback)

    def start(self) -> None:
        """Call once the socket is accepted."""
        transport = getattr(self._ws, "transport", None)
        if transport is None:
            return
        inner = getattr(transport, "producer", None)
        if inner is not None:
            if not getattr(transport, "streamingProducer", True):
                return  # a pull producer cannot be told to pause; leave it alone
            transport.unregisterProducer()
        self._watch = _ReadWatch(_passed_on(inner))
        transport.registerProducer(self._watch, True)
        if _is_plain_tcp(transport):
            self._transport = transport

    async def write(self, text: str, prepared: PreparedMessage | None = None) -> None:
        if not self.write_now(text, prepared):
            await self._asgi_send({"type": "websocket.send", "text": text})

    def write_now(
        self,
        text: str,
        prepared: PreparedMessage | None = None,
        batch: "WriteBatch | None" = None,
    ) -> bool:
        """Write (or drop, on a closing socket) at once; False where only `write` can.

        Under daphne nothing here waits, so a fan-out to thousands of sockets
        runs as one plain loop, with no coroutine per socket. With a `batch`,
        the write may wait in it until its `flush`.
        """
        ws, watch = self._ws, self._watch
        if ws is None or watch is None:
            return False
        if ws.state != ws.STATE_OPEN or self.closed_for_slowness:
            return True
        frame = prepared if prepared is not None else prepare(text)
        if watch.paused:
            watch.written_while_paused += len(frame.payloadHybi)
            if watch.written_while_paused > SLOW_SOCKET_BYTES:
                self.closed_for_slowness = True
                ws.sendClose(code=CLOSE_TOO_SLOW, reason="Not reading fast enough; catch up.")
                return True
        transport = self._transport
        if transport is None:
            ws.sendPreparedMessage(frame)
        else:
            _send_now(transport, frame.payloadHybi, batch)
        return True

    def hold_reading(self, seconds: float) -> bool:
        """Read nothing more from the client for `seconds`; False where that cannot be done.

        Twisted stops reading the transport, so what the client sends meanwhile
        waits in its own TCP buffers (and, once they fill, its sends block)
        instead of costing this process the framing, parsing and answers.
        """
        transport = getattr(self._ws, "transport", None)
        if transport is None or not hasattr(transport, "pauseProducing"):
            return False
        if self._transport is not None:
            # Twisted reads up to 64 KiB at a time, a thousand small frames
            # that would all be handled at once after each hold: from now on
            # this socket is read in small pieces.
            transport.bufferSize = HELD_READ_BYTES
        transport.pauseProducing()
        asyncio.get_running_loop().call_later(seconds, _resume_reading, transport)
        return True

    def close_for_restart(self) -> bool:
        """Close with 1012 (service restart) under daphne; False elsewhere (use ASGI's close).

        autobahn's `sendClose` accepts only 1000 and 3000-4999, which is all
        daphne's `websocket.close` passes on; `sendCloseFrame` sends any code
        and moves the protocol to closing as `sendClose` would.
        """
        ws = self._ws
        if ws is None:
            return False
        if ws.state == ws.STATE_OPEN:
            ws.sendCloseFrame(
                code=CLOSE_SERVICE_RESTART,
                reasonUtf8=b"Server restarting; reconnect.",
                isReply=False,
            )
        return True


def _passed_on(inner: Any) -> Any:
    """The producer a socket's `_ReadWatch` passes pauses on to; None when that does nothing.

    daphne upgrades a socket from an HTTP request that Twisted's HTTPChannel
    never sees finish. While a channel handles a request with no producer of
    its own, its pause and resume touch neither the transport nor anything
    else; holding it would keep the channel, its request and their headers
    alive for as long as the socket is open.
    """
    if getattr(inner, "_handlingRequest", False) and getattr(inner, "_requestProducer", 1) is None:
        return None
    return inner


def _resume_reading(transport: Any) -> None:
    if transport.connected and not transport.disconnecting:
        transport.resumeProducing()


def _fire_closed(_: Any, callback: Callable[[], None]) -> None:
    try:
        callback()
    except Exception:
        log.exception("cleaning up after a closed socket failed")


def _is_plain_tcp(transport: Any) -> bool:
    return (
        not getattr(transport, "TLS", True)
        and hasattr(transport, "socket")
        and hasattr(transport, "dataBuffer")
        and hasattr(transport, "_tempDataLen")
    )


def _send_now(transport: Any, data: bytes, batch: "WriteBatch | None" = None) -> None:
    """transport.write(data), but straight to the socket when nothing is queued.

    With a `batch`, a write that would go straight to the socket goes with
    the batch's others when it is flushed.
    """
    if (
        transport.connected
        and not transport.disconnecting
        and not transport.dataBuffer
        and not transport._tempDataLen
    ):
        if batch is not None:
            batch.add(transport, data)
            return
        # Any error other than "would block" Twisted meets again on its own
        # write of the rest, and closes the connection.
        sent = send_now(transport.socket, data)
        if sent == len(data):
            return
        data = data[sent:]
    transport.write(data)


# The fewest sockets a batch hands to the kernel in one call. Letting the GIL
# go costs the event loop a wait to get it back when another thread runs
# Python meanwhile (up to the switch interval, 0.5 ms): worth it only for
# a write that long. Fewer are written one `send` each, the GIL kept.
BATCH_LEAST = 64


class WriteBatch:
    """One frame's writes to many sockets, handed to the kernel in one call.

    The fan-out's writes of one event to a big room (`chat.realtime.uring`:
    one system call for up to a slice of sockets, at least BATCH_LEAST, with
    the GIL let go while the kernel does them). `add` takes a transport
    that `_send_now` would write at once; `flush` writes them all and queues
    on its transport, in Twisted's usual way, whatever a socket did not
    take. Nothing else may be written to an added transport before the
    flush: the fan-out flushes before each turn it gives the event loop, and
    before any write that is not the batch's.
    """

    __slots__ = ("_ring", "_data", "_transports", "_added")

    def __init__(self, ring: uring.Ring) -> None:
        self._ring = ring
        self._data = b""
        self._transports: list[Any] = []
        self._added: set[int] = set()

    def add(self, transport: Any, data: bytes) -> None:
        key = id(transport)
        if key in self._added:
            # This socket's second write: after the first, which may have left
            # a rest in Twisted's queue.
            self.flush()
            _send_now(transport, data)
            return
        if data is not self._data:
            self.flush()
            self._data = data
        self._transports.append(transport)
        self._added.add(key)
        if len(self._transports) >= self._ring.capacity:
            self.flush()

    def flush(self) -> None:
        """Write everything added; never raises (a write it could not do goes Twisted's way)."""
        transports, data = self._transports, self._data
        if not transports:
            return
        self._transports, self._added = [], set()
        size = len(data)
        if len(transports) < BATCH_LEAST:
            for transport in transports:
                try:
                    _send_now(transport, data)
                except Exception:
                    log.exception("writing to a socket failed")
            return
        try:
            taken = self._ring.send_all([t.socket.fileno() for t in transports], data)
        except Exception:
            log.exception("writing a batch of sockets failed; queueing them on their transports")
            taken = [0] * len(transports)
        for transport, took in zip(transports, taken, strict=True):
            if took != size:
                try:
                    transport.write(data[took:] if took else data)
                except Exception:
                    log.exception("writing to a socket failed")


def write_batch(sockets: int) -> WriteBatch | None:
    """A batch for a fan-out's writes to `sockets` on this thread; None: each goes at once.

    None for fewer than BATCH_LEAST sockets (a small room's event costs no
    more than before), where io_uring cannot be used, or where writes cannot
    go straight to sockets at all (`SEND`).
    """
    if sockets < BATCH_LEAST or SEND is None:
        return None
    ring = uring.ring()
    return None if ring is None else WriteBatch(ring)


def _daphne_protocol(send: Any) -> Any | None:
    # Channels' session middleware wraps `send` in a method of an object that
    # keeps the next one as `real_send`; under it all, daphne hands each
    # application `partial(server.handle_reply, protocol)`.
    for _ in range(8):
        inner = getattr(getattr(send, "__self__", None), "real_send", None)
        if inner is None:
            break
        send = inner
    if isinstance(send, functools.partial) and send.args:
        protocol = send.args[0]
        if hasattr(protocol, "sendPreparedMessage") and hasattr(protocol, "STATE_OPEN"):
            return protocol
    return None


def versions() -> dict[str, str]:
    """The installed versions of what the transport reaches into."""
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in ("daphne", "Twisted", "autobahn", "channels"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "not installed"
    return found


def check_internals() -> list[str]:
    """What the fast path and the slow-client bound need but do not find; empty when all is there.

    Each entry names one missing or changed piece (module, class, attribute),
    so that the log after an upgrade says what moved. Builds a prepared frame
    and a Twisted TCP connection on a local socket pair (no reactor needed),
    the same shapes `SocketOutput` meets on a real socket.
    """
    missing: list[str] = []

    def need(obj: Any, owner: str, *names: str) -> None:
        for name in names:
            if not hasattr(obj, name):
                missing.append(f"{owner}.{name}")

    # daphne hands each application `partial(server.handle_reply, protocol)`.
    try:
        import daphne.server
        import daphne.ws_protocol

        need(daphne.server.Server, "daphne.server.Server", "handle_reply", "create_application")
        source = inspect.getsource(daphne.server.Server.create_application)
        if "partial(self.handle_reply, protocol)" not in source:
            missing.append("daphne.server.Server.create_application: send=partial(handle_reply)")
        need(
            daphne.ws_protocol.WebSocketProtocol,
            "daphne.ws_protocol.WebSocketProtocol",
            "sendPreparedMessage",
            "sendClose",
            "sendCloseFrame",
            "STATE_OPEN",
            "_connectionMade",
        )
    except Exception as error:  # an import or a source lookup that fails is the finding
        missing.append(f"daphne: {error!r}")

    # Channels' session middleware keeps the next `send` as `real_send`.
    try:
        from channels.sessions import InstanceSessionWrapper

        if "real_send" not in inspect.getsource(InstanceSessionWrapper.__init__):
            missing.append("channels.sessions.InstanceSessionWrapper.real_send")
    except Exception as error:
        missing.append(f"channels: {error!r}")

    # autobahn: the prepared frame's bytes, written as they are.
    try:
        frame = prepare("é")
        data = getattr(frame, "payloadHybi", None)
        if data != b"\x81\x02" + "é".encode():
            missing.append("autobahn PreparedMessage.payloadHybi (an unmasked text frame)")
    except Exception as error:
        missing.append(f"autobahn WebSocketServerFactory.prepareMessage: {error!r}")

    # Twisted: a plain TCP transport's socket, write queue and producer.
    try:
        from twisted.internet import tcp

        left, right = socket.socketpair()
        try:
            # Any truthy reactor: the global one must not be installed here
            # (daphne installs its asyncio reactor later).
            connection = tcp.Connection(left, None, reactor=object())  # type: ignore[arg-type]
            need(
                connection,
                "twisted.internet.tcp.Connection",
                "socket",
                "dataBuffer",
                "_tempDataLen",
                "connected",
                "disconnecting",
                "producer",
                "streamingProducer",
                "registerProducer",
                "unregisterProducer",
                "write",
                "bufferSize",  # how much one read takes (hold_reading lowers it)
            )
            if getattr(connection, "TLS", True):
                missing.append("twisted.internet.tcp.Connection.TLS (False on plain TCP)")
        finally:
            left.close()
            right.close()
    except Exception as error:
        missing.append(f"twisted.internet.tcp.Connection: {error!r}")

    # Twisted's HTTP channel: what `_passed_on` reads to let an upgraded one go.
    try:
        from twisted.web import http

        need(
            http.HTTPChannel(),
            "twisted.web.http.HTTPChannel",
            "_handlingRequest",
            "_requestProducer",
        )
    except Exception as error:
        missing.append(f"twisted.web.http.HTTPChannel: {error!r}")
    return missing


def report_internals() -> list[str]:
    """Run `check_internals`, log what it finds and set the fast-path metric."""
    from teamchat.metrics import TRANSPORT_FAST_PATH

    missing = check_internals()
    installed = ", ".join(f"{name} {v}" for name, v in versions().items())
    if missing:
        log.error(
            "socket transport: fast path and slow-client bound unavailable, missing %s "
            "(installed: %s); sockets fall back to plain ASGI sends",
            "; ".join(missing),
            installed,
        )
        TRANSPORT_FAST_PATH.set(0)
    else:
        log.info(
            "socket transport: direct send (%s%s) and slow-client bound (%d bytes) on (%s)",
            "libc send, keeping the GIL" if SEND is not None else "socket.send",
            "; a big room's writes batched through io_uring"
            if write_batch(BATCH_LEAST) is not None
            else "",
            SLOW_SOCKET_BYTES,
            installed,
        )
        TRANSPORT_FAST_PATH.set(1)
    return missing
