"""Events are written in slices: the loop gets turns, later events need not wait, order holds."""

import asyncio

import pytest

from chat.eventlog import EVENTS, Item
from chat.realtime import fanout as fanout_module
from chat.realtime.fanout import Fanout

ROOM = 7
SMALL = 8


class Socket:
    """A subscriber that takes every frame at once, as daphne's sockets do; `log` is shared."""

    def __init__(self, number: int, log: list[tuple[str, int | None]]) -> None:
        self.user_id = number
        self.login_id = f"login-{number}"
        self.frames: list[str] = []
        self.log = log

    def offer(self, text, prepared, seq) -> bool:
        self.frames.append(text)
        self.log.append(("write", self.user_id))
        return True

    async def deliver(self, text, prepared, seq) -> None:
        raise AssertionError("a socket that takes frames at once is never awaited")


class AwaitedSocket(Socket):
    """A socket that is not daphne's: every frame goes through the awaited `deliver`."""

    def offer(self, text, prepared, seq) -> bool:
        return False

    async def deliver(self, text, prepared, seq) -> None:
        await asyncio.sleep(0)  # another turn of the loop before it is written
        self.frames.append(text)
        self.log.append(("write", self.user_id))


class Layer:
    """The channel layer as the fan-out's receive loop sees it: published batches, in order."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[dict] = asyncio.Queue()

    async def receive(self, channel: str) -> dict:
        return await self.queue.get()

    async def group_add(self, group: str, channel: str) -> None:
        return None

    def publish(self, *items: Item) -> None:
        self.queue.put_nowait({"type": EVENTS, "events": [item.to_wire() for item in items]})


async def until(condition, turns: int = 10_000) -> None:
    """Let the loop run until `condition()` holds (a bounded number of turns, no clock)."""
    for _ in range(turns):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("the fan-out did not get there")


@pytest.fixture
async def hub(monkeypatch):
    """A fan-out reading a fake layer, in slices of four sockets; yields (hub, layer, log)."""
    monkeypatch.setattr(fanout_module, "FANOUT_SLICE", 4)
    hub, layer = Fanout(), Layer()
    log: list[tuple[str, int | None]] = []
    task = asyncio.create_task(hub._receive_forever(layer, "fanout-test"))
    yield hub, layer, log
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


def message(seq: int, room: int = ROOM) -> Item:
    return Item(f'{{"type": "message", "seq": {seq}}}', (room,), seq=seq)


def writes(log) -> list[str]:
    return [kind for kind, _ in log]


async def test_other_work_runs_while_a_big_rooms_event_is_written(hub):
    hub, layer, log = hub
    sockets = [Socket(n, log) for n in range(10)]
    hub.by_room[ROOM] = set(sockets)

    async def other_work() -> None:
        while True:
            log.append(("other", None))
            await asyncio.sleep(0)

    other = asyncio.create_task(other_work())
    await asyncio.sleep(0)  # it has started
    try:
        layer.publish(message(1))
        await until(lambda: all(s.frames for s in sockets))
    finally:
        other.cancel()

    kinds = writes(log)
    first, last = kinds.index("write"), len(kinds) - 1 - kinds[::-1].index("write")
    # Ten writes in slices of four: the loop had turns in between, twice.
    assert kinds[first : last + 1].count("other") == 2
    assert all(s.frames == ['{"type": "message", "seq": 1}'] for s in sockets)
    assert hub.unwritten() == 0


async def test_each_socket_gets_a_published_batch_in_order_across_slices(hub):
    hub, layer, log = hub
    sockets = [Socket(n, log) for n in range(10)]
    hub.by_room[ROOM] = set(sockets)
    items = [message(seq) for seq in (1, 2, 3)]

    layer.publish(*items)
    await until(lambda: all(len(s.frames) == 3 for s in sockets))

    assert all(s.frames == [item.text for item in items] for s in sockets)


async def test_a_batch_of_small_rooms_events_is_written_in_slices_too(hub):
    hub, layer, log = hub
    # Five rooms of three sockets: no event alone fills a slice, the batch does.
    rooms = {room: [Socket(room * 10 + n, log) for n in range(3)] for room in range(1, 6)}
    for room, sockets in rooms.items():
        hub.by_room[room] = set(sockets)

    async def other_work() -> None:
        while True:
            log.append(("other", None))
            await asyncio.sleep(0)

    other = asyncio.create_task(other_work())
    await asyncio.sleep(0)
    try:
        layer.publish(*(Item(f'{{"seq": {room}}}', (room,), seq=room) for room in rooms))
        await until(lambda: all(s.frames for ss in rooms.values() for s in ss))
    finally:
        other.cancel()

    kinds = writes(log)
    first, last = kinds.index("write"), len(kinds) - 1 - kinds[::-1].index("write")
    # Fifteen writes in slices of four: three turns for the rest in between.
    assert kinds[first : last + 1].count("other") == 3
    assert all(s.frames == [f'{{"seq": {room}}}'] for room, ss in rooms.items() for s in ss)


async def test_a_small_rooms_event_does_not_wait_for_a_big_rooms_last_socket(hub):
    hub, layer, log = hub
    everyone = [Socket(n, log) for n in range(20)]
    outsider = Socket(99, log)
    hub.by_room[ROOM] = set(everyone)
    # The small room: two of the big room's people and one who is not in it.
    small = [*everyone[:2], outsider]
    hub.by_room[SMALL] = set(small)

    # Published one after the other: the second is read while the first is written.
    layer.publish(message(1))
    layer.publish(message(2, SMALL))
    await until(lambda: all(s.frames for s in everyone) and outsider.frames)

    order = [number for kind, number in log if kind == "write"]
    # Those of the big room not in the small one get one frame each: the big room's event.
    only_big = {s.user_id for s in everyone[2:]}
    last_of_big_room = max(i for i, number in enumerate(order) if number in only_big)
    # The outsider had the small room's event before the big room's was done...
    assert order.index(outsider.user_id) < last_of_big_room
    # ...and everyone had their events in order, each once.
    big, little = message(1).text, message(2, SMALL).text
    assert outsider.frames == [little]
    assert all(s.frames == [big, little] for s in small[:2])
    assert all(s.frames == [big] for s in everyone[2:])
    assert hub.unwritten() == 0


async def test_an_event_to_a_socket_still_owed_an_older_one_writes_that_first(hub):
    hub, layer, log = hub
    sockets = [Socket(n, log) for n in range(12)]
    hub.by_room[ROOM] = set(sockets)
    hub.by_room[SMALL] = set(sockets)  # a second room with the same people

    # The second event reaches every socket, those the first has not reached too.
    layer.publish(message(1))
    layer.publish(message(2, SMALL))
    layer.publish(message(3))
    await until(lambda: all(len(s.frames) == 3 for s in sockets))

    texts = [message(1).text, message(2, SMALL).text, message(3).text]
    assert all(s.frames == texts for s in sockets)
    assert hub.unwritten() == 0


async def test_sockets_that_must_be_awaited_keep_their_order(hub):
    hub, layer, log = hub
    sockets = [AwaitedSocket(n, log) for n in range(10)]
    hub.by_room[ROOM] = set(sockets)
    hub.by_room[SMALL] = set(sockets[:3])

    layer.publish(message(1))
    layer.publish(message(2, SMALL))
    layer.publish(message(3))
    await until(lambda: all(len(s.frames) == (3 if s in sockets[:3] else 2) for s in sockets))

    one, two, three = message(1).text, message(2, SMALL).text, message(3).text
    assert all(s.frames == [one, two, three] for s in sockets[:3])
    assert all(s.frames == [one, three] for s in sockets[3:])
