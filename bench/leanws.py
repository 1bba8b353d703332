"""A lean WebSocket client for the organization-scale load generator (bench/orgload.py).

The `websockets` library gives every connection a reader task and hands each
frame through a queue to it: for a message to #general, each of the
generator's processes woke thousands of tasks one after another, and what the
benchmark timed was largely its own queue (its event loop lagged by more than
the server's whole fan-out). Here a frame is parsed in `data_received` and
handed to the client code at once, with its arrival time, in the same step.

What it speaks: the client side of RFC 6455 that TeamChat's socket needs:
the upgrade with an Origin and a cookie, masked text frames out, unmasked text
frames in (fragmented ones reassembled), pings answered, the close handshake
from either side. Nothing else (no extensions, no binary frames out).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import struct
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
HIGH_WATER = 64 * 1024  # like `websockets`: `send` waits while more than this is unsent
MAX_HEAD = 16 * 1024
CLOSE_WAIT_S = 3.0  # a closing handshake the server does not finish is cut off after this

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0, 1, 2, 8, 9, 10


class ConnectionClosed(Exception):
    """A send on a connection that is closing or closed."""


class InvalidStatus(Exception):
    """The server answered the upgrade with something other than 101."""

    def __init__(self, status_code: int) -> None:
        super().__init__(f"HTTP {status_code}")
        self.status_code = status_code


class HandshakeDropped(Exception):
    """The connection ended before the server's answer to the upgrade was complete."""


def _xor(payload: bytes, key: bytes) -> bytes:
    """RFC 6455 masking (and unmasking): payload XOR the 4-byte key repeated."""
    n = len(payload)
    stream = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "little") ^ int.from_bytes(stream, "little")).to_bytes(
        n, "little"
    )


def _mask(payload: bytes) -> bytes:
    key = os.urandom(4)
    return key + _xor(payload, key) if payload else key


def _frame(opcode: int, payload: bytes) -> bytes:
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
    elif n < 65536:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
    return head + _mask(payload)


class LeanSocket(asyncio.Protocol):
    """One client connection; frames go to `on_text(text)` as they are parsed."""

    def __init__(self, request: bytes, key: bytes) -> None:
        self._request = request
        # RFC 6455 fixes SHA-1 for the accept key.
        self._accept = base64.b64encode(hashlib.sha1(key + GUID).digest())  # noqa: S324
        self._buf = bytearray()
        self._open = False
        self._parts: list[bytes] = []
        self._early: list[str] = []
        self._on_text: Callable[[str], None] | None = None
        self._drained: asyncio.Future[None] | None = None
        loop = asyncio.get_running_loop()
        self.handshake: asyncio.Future[None] = loop.create_future()
        self.closed: asyncio.Future[None] = loop.create_future()
        self.transport: Any = None
        self.close_code: int | None = None
        self.closing = False

    # --- asyncio.Protocol --------------------------------------------------

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        transport.write(self._request)

    def data_received(self, data: bytes) -> None:
        buf = self._buf
        buf += data
        if not self._open:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > MAX_HEAD:
                    self._fail_handshake(HandshakeDropped("response head too long"))
                return
            head = bytes(buf[:end]).decode("latin-1")
            del buf[: end + 4]
            error = self._check_head(head)
            if error is not None:
                self._fail_handshake(error)
                return
            self._open = True
            if not self.handshake.done():
                self.handshake.set_result(None)
        self._parse()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.handshake.done():
            self.handshake.set_exception(HandshakeDropped(str(exc or "closed")))
        if self.close_code is None:
            self.close_code = 1006
        self.closing = True
        self._wake_writer()
        if not self.closed.done():
            self.closed.set_result(None)

    def pause_writing(self) -> None:
        if self._drained is None:
            self._drained = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        self._wake_writer()

    # --- the connection ------------------------------------------------------

    def start(self, on_text: Callable[[str], None]) -> None:
        """Hand frames to `on_text` from now on (the ones already here first)."""
        self._on_text = on_text
        early, self._early = self._early, []
        for text in early:
            on_text(text)

    async def send(self, text: str) -> None:
        """Write a text frame; wait while the kernel's and asyncio's buffers are full.

        On a connection that is closing, wait until it has ended, then raise
        ConnectionClosed: by then its end has been handled (the connection's
        `closed` waiters run first), so a caller that retries sees it closed.
        """
        if self.closing or self.transport.is_closing():
            await self._ended()
        self.transport.write(_frame(OP_TEXT, text.encode()))
        drained = self._drained
        if drained is not None:
            await asyncio.shield(drained)
            if self.closing:
                await self._ended()

    async def _ended(self) -> None:
        try:
            await asyncio.wait_for(asyncio.shield(self.closed), CLOSE_WAIT_S)
        except TimeoutError:
            self.transport.abort()  # the server never finished closing
            await asyncio.shield(self.closed)
        raise ConnectionClosed(f"closed ({self.close_code})")

    async def close(self, code: int = 1000) -> None:
        """The closing handshake: send a close frame, wait for the server's and the end."""
        if not self.closing:
            self.closing = True
            self.transport.write(_frame(OP_CLOSE, struct.pack("!H", code)))
        try:
            await self._ended()
        except ConnectionClosed:
            pass

    # --- inside ---------------------------------------------------------------

    def _check_head(self, head: str) -> Exception | None:
        status_line, *lines = head.split("\r\n")
        parts = status_line.split(" ", 2)
        try:
            status = int(parts[1])
        except (IndexError, ValueError):
            return HandshakeDropped(f"not an HTTP response: {status_line!r}")
        if status != 101:
            return InvalidStatus(status)
        headers = {}
        for line in lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if headers.get("sec-websocket-accept", "").encode() != self._accept:
            return HandshakeDropped("wrong Sec-WebSocket-Accept")
        return None

    def _fail_handshake(self, error: Exception) -> None:
        if not self.handshake.done():
            self.handshake.set_exception(error)
        self.transport.abort()

    def _parse(self) -> None:
        buf = self._buf
        size = len(buf)
        pos = 0
        while size - pos >= 2:
            b0, b1 = buf[pos], buf[pos + 1]
            length = b1 & 0x7F
            head = 2
            if length == 126:
                if size - pos < 4:
                    break
                length = (buf[pos + 2] << 8) | buf[pos + 3]
                head = 4
            elif length == 127:
                if size - pos < 10:
                    break
                length = int.from_bytes(buf[pos + 2 : pos + 10], "big")
                head = 10
            masked = b1 & 0x80
            if masked:
                head += 4
            end = pos + head + length
            if end > size:
                break
            payload = bytes(buf[pos + head : end])
            if masked:  # servers do not mask; unmask anyway
                payload = _xor(payload, bytes(buf[pos + head - 4 : pos + head]))
            pos = end
            self._frame_in(b0 & 0x0F, bool(b0 & 0x80), payload)
        if pos:
            del buf[:pos]

    def _frame_in(self, opcode: int, fin: bool, payload: bytes) -> None:
        if opcode == OP_TEXT or opcode == OP_BINARY or opcode == OP_CONT:
            if not fin or self._parts:
                self._parts.append(payload)
                if not fin:
                    return
                payload, self._parts = b"".join(self._parts), []
            text = payload.decode()
            on_text = self._on_text
            if on_text is None:
                self._early.append(text)
            else:
                on_text(text)
        elif opcode == OP_PING:
            if not self.closing:
                self.transport.write(_frame(OP_PONG, payload))
        elif opcode == OP_CLOSE:
            self.close_code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
            if not self.closing:
                self.closing = True
                self.transport.write(_frame(OP_CLOSE, payload[:2]))
            self._wake_writer()
            # The server closes the TCP connection; connection_lost finishes.

    def _wake_writer(self) -> None:
        drained, self._drained = self._drained, None
        if drained is not None and not drained.done():
            drained.set_result(None)


async def connect(url: str, *, origin: str, cookie: str, open_timeout: float) -> LeanSocket:
    """Open a socket: TCP, the upgrade, the 101. Raises like `websockets.connect` would."""
    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    port = parts.port or (443 if parts.scheme == "wss" else 80)
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    key = base64.b64encode(os.urandom(16))
    request = (
        f"GET {path} HTTP/1.1\r\n"
        f"Host: {parts.netloc}\r\n"
        "Upgrade: websocket\r\n"
        "Connection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key.decode()}\r\n"
        "Sec-WebSocket-Version: 13\r\n"
        f"Origin: {origin}\r\n"
        f"Cookie: {cookie}\r\n"
        "\r\n"
    ).encode("latin-1")
    loop = asyncio.get_running_loop()

    async def opening() -> LeanSocket:
        _, protocol = await loop.create_connection(lambda: LeanSocket(request, key), host, port)
        try:
            await protocol.handshake
        except BaseException:
            protocol.transport.abort()
            raise
        return protocol

    return await asyncio.wait_for(opening(), open_timeout)
