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
on a plain TCP transport, the frame is sent at once; only what the kernel does
not take goes through Twisted's queue, so order and backpressure are kept.

Anything that is not daphne (the test communicator) gets plain ASGI sends.
"""

import functools
import logging
from collections.abc import Callable
from typing import Any

import txaio
from autobahn.websocket.protocol import PreparedMessage
from twisted.internet.interfaces import IPushProducer
from zope.interface import implementer

log = logging.getLogger(__name__)

# How much may be written to a socket whose client has stopped reading.
SLOW_SOCKET_BYTES = 1024 * 1024
CLOSE_TOO_SLOW = 4008
CLOSE_SERVICE_RESTART = 1012


def prepare(text: str) -> PreparedMessage:
    """A text frame ready to be written to any number of sockets."""
    return PreparedMessage(text.encode(), isBinary=False, applyMask=False, doNotCompress=True)


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

        def fire(_: Any) -> None:
            try:
                callback()
            except Exception:
                log.exception("cleaning up after a closed socket failed")

        # txaio binds its functions once a framework is chosen (daphne: Twisted).
        txaio.add_callbacks(closed, fire, None)  # type: ignore[attr-defined]

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
        self._watch = _ReadWatch(inner)
        transport.registerProducer(self._watch, True)
        if _is_plain_tcp(transport):
            self._transport = transport

    async def write(self, text: str, prepared: PreparedMessage | None = None) -> None:
        ws, watch = self._ws, self._watch
        if ws is None or watch is None:
            await self._asgi_send({"type": "websocket.send", "text": text})
            return
        if ws.state != ws.STATE_OPEN or self.closed_for_slowness:
            return
        frame = prepared if prepared is not None else prepare(text)
        if watch.paused:
            watch.written_while_paused += len(frame.payloadHybi)
            if watch.written_while_paused > SLOW_SOCKET_BYTES:
                self.closed_for_slowness = True
                ws.sendClose(code=CLOSE_TOO_SLOW, reason="Not reading fast enough; catch up.")
                return
        transport = self._transport
        if transport is None:
            ws.sendPreparedMessage(frame)
        else:
            _send_now(transport, frame.payloadHybi)

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


def _is_plain_tcp(transport: Any) -> bool:
    return (
        not getattr(transport, "TLS", True)
        and hasattr(transport, "socket")
        and hasattr(transport, "dataBuffer")
        and hasattr(transport, "_tempDataLen")
    )


def _send_now(transport: Any, data: bytes) -> None:
    """transport.write(data), but straight to the socket when nothing is queued."""
    if (
        transport.connected
        and not transport.disconnecting
        and not transport.dataBuffer
        and not transport._tempDataLen
    ):
        try:
            sent = transport.socket.send(data)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            sent = 0  # Twisted meets the same error on its own write and closes.
        if sent == len(data):
            return
        data = data[sent:]
    transport.write(data)


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
