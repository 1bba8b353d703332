"""Real WebSocket clients for tests on real server processes.

`Peer` keeps every event it hears, in order; `Streamer` sends numbered
messages a few at a time and, when its connection ends, reconnects (with
`?seq=` when it keeps its position) and sends again what was not
acknowledged, with the same nonce: what a page does.
"""

import asyncio
import json
from collections.abc import Callable

import websockets

from tests.servers import ServerProcess


class Peer:
    """A socket client: every event it receives (presence and typing left out), in order."""

    ping_every: float = 20  # seconds, as the websockets library's default

    def __init__(self, name: str, cookie: str) -> None:
        self.name = name
        self.cookie = cookie
        self.hosts: list[str] = []  # the address of each server it connected to
        self.events: list[dict] = []
        self.ws: websockets.ClientConnection | None = None
        self._changed = asyncio.Event()
        self._reader: asyncio.Task | None = None
        # How each of its connections was closed by the server (None: dropped).
        self.close_codes: list[int | None] = []

    async def open(self, server: ServerProcess, seq: int | None = None) -> "Peer":
        url = server.ws_url + (f"?seq={seq}" if seq is not None else "")
        self.ws = await websockets.connect(
            url,
            additional_headers={"Cookie": self.cookie, "Origin": server.http_url},
            open_timeout=10,
            max_size=None,
            # A peer that vanished (a cut link) is noticed by an unanswered ping.
            ping_interval=self.ping_every,
            ping_timeout=self.ping_every,
            close_timeout=min(10, self.ping_every),
        )
        self.hosts.append(server.host)
        self._reader = asyncio.create_task(self._read(self.ws))
        return self

    async def _read(self, ws) -> None:
        try:
            async for raw in ws:
                event = json.loads(raw)
                if event.get("type") not in ("presence", "typing"):
                    self.events.append(event)
                    self._changed.set()
        except websockets.ConnectionClosed:
            pass
        finally:
            self.close_codes.append(ws.close_code)
            self._changed.set()

    @property
    def is_open(self) -> bool:
        return self._reader is not None and not self._reader.done()

    async def send(self, frame: dict) -> None:
        assert self.ws is not None
        await self.ws.send(json.dumps(frame))

    async def say(self, body: str, nonce: str) -> None:
        await self.send({"type": "send", "room": "general", "body": body, "nonce": nonce})

    async def until(self, predicate: Callable[[list[dict]], bool], what: str, timeout=15.0):
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            self._changed.clear()
            if predicate(self.events):
                return
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(
                    f"{self.name} never got {what}; last events: {self.events[-8:]}"
                )
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except TimeoutError:
                pass

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self._reader is not None:
            await self._reader

    def messages(self, nonce: str | None = None) -> list[dict]:
        return [
            e for e in self.events if e["type"] == "message" and nonce in (None, e.get("nonce"))
        ]

    def errors(self, nonce: str) -> list[dict]:
        return [e for e in self.events if e["type"] == "error" and e.get("nonce") == nonce]


def got_message(nonce: str) -> Callable[[list[dict]], bool]:
    return lambda events: any(e["type"] == "message" and e.get("nonce") == nonce for e in events)


def got(event: dict) -> Callable[[list[dict]], bool]:
    return lambda events: event in events


async def eventually(check: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    """Poll something observable (the database) until it holds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await asyncio.to_thread(check):
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


PER_CLIENT = 30
IN_FLIGHT = 4


class Streamer(Peer):
    """Sends `count` numbered messages, a few in flight, and reconnects when cut off.

    A client that keeps its position reconnects with `?seq=`, waits for the
    catch-up to say what got through, then resends the rest (same nonce). One
    that keeps none (a simple bot) reconnects plainly and resends at once
    everything it has not seen acknowledged: what was stored comes back as the
    retry's answer.
    """

    pace = 0.02  # seconds between sends

    def __init__(
        self, name: str, cookie: str, keeps_position: bool = True, count: int = PER_CLIENT
    ) -> None:
        super().__init__(name, cookie)
        self.keeps_position = keeps_position
        self.nonces = [f"{name}-{i}" for i in range(count)]
        self.sent: list[str] = []
        self.resent: list[str] = []
        self.reconnects = 0

    @property
    def last_seq(self) -> int:
        return max((e["seq"] for e in self.events if e.get("seq") is not None), default=0)

    def acked(self) -> set[str]:
        mine = set(self.nonces)
        return {e["nonce"] for e in self.messages() if e.get("nonce") in mine}

    async def resume(self, current: Callable[[], ServerProcess]) -> None:
        """Reconnect with backoff to whatever server is current (and catch up)."""
        resumes = sum(1 for e in self.events if e["type"] == "resumed")
        while True:
            try:
                await self.open(current(), seq=self.last_seq if self.keeps_position else None)
                break
            except (OSError, websockets.InvalidHandshake, TimeoutError):
                await asyncio.sleep(0.2)
        self.reconnects += 1
        if self.keeps_position:
            await self.until(
                lambda events: sum(1 for e in events if e["type"] == "resumed") > resumes,
                "the catch-up after reconnecting",
            )

    async def stream(self, current: Callable[[], ServerProcess]) -> None:
        await self.resume(current)
        while True:
            if not self.is_open:
                await self.resume(current)
                unacked = [n for n in self.sent if n not in self.acked()]
                for nonce in unacked:
                    self.resent.append(nonce)
                    await self._send_numbered(nonce)
                continue
            acked = self.acked()
            if len(acked) == len(self.nonces):
                return
            in_flight = [n for n in self.sent if n not in acked]
            count = len(acked)
            if len(self.sent) < len(self.nonces) and len(in_flight) < IN_FLIGHT:
                nonce = self.nonces[len(self.sent)]
                self.sent.append(nonce)
                await self._send_numbered(nonce)
                await asyncio.sleep(self.pace)  # a person-like pace, so faults land mid-stream
                continue
            await self.until(
                lambda _, before=count: len(self.acked()) > before or not self.is_open,
                "an acknowledgement",
                timeout=20,
            )

    async def _send_numbered(self, nonce: str) -> None:
        try:
            await self.say(f"message {nonce}", nonce)
        except websockets.ConnectionClosed:
            pass  # the reader notices; unacknowledged sends are resent after the reconnect
