"""Helpers to talk to the real ASGI application over WebsocketCommunicator."""

import json

from channels.testing import WebsocketCommunicator

from teamchat.asgi import application

ORIGIN = "http://localhost"
# Sockets opened and not closed yet: the suite closes what a test left open,
# so its consumers do not stay registered in the fan-out for later tests.
_left_open: set["Socket"] = set()


class Socket:
    """A test client socket with JSON helpers and a timeout on every wait."""

    def __init__(self, communicator: WebsocketCommunicator) -> None:
        self.comm = communicator

    async def send(self, frame: dict) -> None:
        await self.comm.send_to(text_data=json.dumps(frame))

    async def send_text(self, text: str) -> None:
        await self.comm.send_to(text_data=text)

    async def send_bytes(self, data: bytes) -> None:
        await self.comm.send_to(bytes_data=data)

    async def receive(self, timeout: float = 5, skip: tuple[str, ...] = ("presence",)) -> dict:
        """The next event, leaving out presence changes (they come whenever people connect)."""
        while True:
            event = json.loads(await self.comm.receive_from(timeout=timeout))
            if event.get("type") not in skip:
                return event

    async def receive_close(self, timeout: float = 5) -> int:
        """The close code, after any events still on the way."""
        output = await self.comm.receive_output(timeout=timeout)
        while output["type"] == "websocket.send":
            output = await self.comm.receive_output(timeout=timeout)
        assert output["type"] == "websocket.close", output
        return output.get("code", 1000)

    async def close(self) -> None:
        _left_open.discard(self)
        await self.comm.disconnect()


async def open_socket(cookie: str | None, origin: str | None = ORIGIN, path: str = "/ws/chat/"):
    """Handshake; returns (connected, Socket). `path` may carry `?seq=` and `?watch=`."""
    headers = [(b"host", b"localhost")]
    if cookie:
        headers.append((b"cookie", cookie.encode()))
    if origin:
        headers.append((b"origin", origin.encode()))
    comm = WebsocketCommunicator(application, path, headers=headers)
    connected, _ = await comm.connect(timeout=5)
    sock = Socket(comm)
    if connected:
        _left_open.add(sock)
    return connected, sock


async def close_left_open() -> None:
    """Close every socket a test opened and did not close."""
    while _left_open:
        sock = _left_open.pop()
        if sock.comm.future.done():
            # Its app already ended: closed by the server, or cancelled by a
            # receive that timed out (re-raising that here would fail the
            # teardown, and with it the database flush every later test needs).
            continue
        try:
            await sock.comm.disconnect()
        except Exception:  # noqa: S110  (closed by the server meanwhile, or its app failed)
            pass


async def connect(cookie: str, path: str = "/ws/chat/") -> Socket:
    connected, sock = await open_socket(cookie, path=path)
    assert connected, "the handshake was refused"
    return sock
