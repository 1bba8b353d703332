"""Events are written in slices: the loop gets turns, each socket's order holds."""

import asyncio

import pytest

from chat.eventlog import EVENTS, Item
from chat.realtime import fanout as fanout_module
from chat.realtime.fanout import Fanout

ROOM = 7


class Socket:
    """A subscriber that takes every frame at once, as daphne's sockets do; `log` is shared."""

    def __init__(self, number: int, log: list[tuple[str, int | None]]) -> None:
        self.user_id = number
        self.login_id = f"login-{number}"
        self.frames: list[str] = []
        self.log = log

    def offer(self, text, prepared, seq, batch=None) -> bool:
        self.frames.append(text)
        self.log.append(("write", self.user_id))
        return True

    async def deliver(self, text, prepared, seq) -> None:
        raise AssertionError("a socket that takes frames at once is never awaited")


@pytest.fixture
def room(monkeypatch):
    monkeypatch.setattr(fanout_module, "FANOUT_SLICE", 4)
    log: list[tuple[str, int | None]] = []
    sockets = [Socket(n, log) for n in range(10)]
    hub = Fanout()
    hub.by_room[ROOM] = set(sockets)
    return hub, sockets, log


async def test_other_work_runs_while_a_big_rooms_event_is_written(room):
    hub, sockets, log = room

    async def other_work() -> None:
        while True:
            log.append(("other", None))
            await asyncio.sleep(0)

    other = asyncio.create_task(other_work())
    await asyncio.sleep(0)  # it has started
    try:
        await hub.deliver(Item('{"type": "message", "seq": 1}', (ROOM,), seq=1))
    finally:
        other.cancel()

    kinds = [kind for kind, _ in log]
    first, last = kinds.index("write"), len(kinds) - 1 - kinds[::-1].index("write")
    # Ten writes in slices of four: the loop had turns in between, twice.
    assert kinds[first : last + 1].count("other") == 2
    assert all(s.frames == ['{"type": "message", "seq": 1}'] for s in sockets)


async def test_each_socket_gets_a_published_batch_in_order_across_slices(room):
    hub, sockets, _ = room
    texts = [f'{{"type": "message", "seq": {seq}}}' for seq in (1, 2, 3)]
    batch = [Item(text, (ROOM,), seq=seq).to_wire() for seq, text in enumerate(texts, 1)]

    await hub.handle({"type": EVENTS, "events": batch})

    assert all(s.frames == texts for s in sockets)


async def test_a_batch_of_small_rooms_events_is_written_in_slices_too(monkeypatch):
    monkeypatch.setattr(fanout_module, "FANOUT_SLICE", 4)
    log: list[tuple[str, int | None]] = []
    hub = Fanout()
    # Five rooms of three sockets: no event alone fills a slice, the batch does.
    rooms = {room: [Socket(room * 10 + n, log) for n in range(3)] for room in range(1, 6)}
    for room, sockets in rooms.items():
        hub.by_room[room] = set(sockets)
    batch = [Item(f'{{"seq": {room}}}', (room,), seq=room).to_wire() for room in rooms]

    async def other_work() -> None:
        while True:
            log.append(("other", None))
            await asyncio.sleep(0)

    other = asyncio.create_task(other_work())
    await asyncio.sleep(0)
    try:
        await hub.handle({"type": EVENTS, "events": batch})
    finally:
        other.cancel()

    kinds = [kind for kind, _ in log]
    first, last = kinds.index("write"), len(kinds) - 1 - kinds[::-1].index("write")
    # Fifteen writes in slices of four: three turns for the rest in between.
    assert kinds[first : last + 1].count("other") == 3
    assert all(s.frames == [f'{{"seq": {room}}}'] for room, ss in rooms.items() for s in ss)
