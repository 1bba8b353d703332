"""Helpers to talk to the real ASGI application over WebsocketCommunicator."""

import json

from channels.testing import WebsocketCommunicator

from teamchat.asgi import application

ORIGIN = "http://localhost"


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
    return connected, Socket(comm)


async def connect(cookie: str, path: str = "/ws/chat/") -> Socket:
    connected, sock = await open_socket(cookie, path=path)
    assert connected, "the handshake was refused"
    return sock
