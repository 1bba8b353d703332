"""Per-process fan-out of events to the sockets open in this process.

The stock Channels design sends one channel-layer message per recipient
socket, each dispatched through the consumer (with a thread hop in
Channels >= 4.2) and encoded to JSON again. Here every server process
subscribes ONE channel to one group; an event is encoded once by its
publisher, crosses the layer once per process, and is written straight to
the local sockets of its room from memory.
"""

import asyncio
import logging
from typing import Protocol

from channels.layers import get_channel_layer

from .perloop import per_event_loop
from .transport import PreparedMessage, prepare

log = logging.getLogger(__name__)

FANOUT_GROUP = "teamchat.fanout"
# Channel layers forget group members after `group_expiry` (a day by default).
REJOIN_SECONDS = 600.0

# Channel-layer message types.
EVENTS = "fanout.events"
SESSION_CHECK = "fanout.session_check"


class Subscriber(Protocol):
    user_id: int

    async def deliver(self, text: str, prepared: PreparedMessage, seq: int | None) -> None: ...

    def session_check_soon(self) -> None: ...


class Fanout:
    """The sockets of this process by room and by user, fed from one layer channel."""

    def __init__(self) -> None:
        self.by_room: dict[int, set[Subscriber]] = {}
        self.by_user: dict[int, set[Subscriber]] = {}
        self.rooms_of: dict[Subscriber, set[int]] = {}
        self._started: asyncio.Future[None] | None = None
        self._tasks: list[asyncio.Task[None]] = []

    async def register(self, sock: Subscriber, room_ids: list[int]) -> None:
        """Start delivering these rooms' events, and its user's, to `sock`."""
        await self._start()
        self.rooms_of[sock] = set(room_ids)
        self.by_user.setdefault(sock.user_id, set()).add(sock)
        for room_id in room_ids:
            self.by_room.setdefault(room_id, set()).add(sock)

    def unregister(self, sock: Subscriber) -> None:
        for room_id in self.rooms_of.pop(sock, ()):
            self._discard(self.by_room, room_id, sock)
        self._discard(self.by_user, sock.user_id, sock)

    def sockets_of(self, user_id: int) -> set[Subscriber]:
        return self.by_user.get(user_id, set())

    def subscribe(self, user_id: int, room_id: int) -> None:
        """Every socket of the user in this process carries the room from now on."""
        for sock in self.by_user.get(user_id, ()):
            self.rooms_of[sock].add(room_id)
            self.by_room.setdefault(room_id, set()).add(sock)

    def unsubscribe(self, user_id: int, room_id: int) -> None:
        for sock in self.by_user.get(user_id, ()):
            self.rooms_of[sock].discard(room_id)
            self._discard(self.by_room, room_id, sock)

    @staticmethod
    def _discard(index: dict[int, set[Subscriber]], key: int, sock: Subscriber) -> None:
        members = index.get(key)
        if members is not None:
            members.discard(sock)
            if not members:
                del index[key]

    async def _start(self) -> None:
        if self._started is None:
            self._started = asyncio.get_running_loop().create_future()
            try:
                layer = get_channel_layer()
                # The default "specific." prefix: channels-redis pops every
                # process-local channel from one key with one blocking read,
                # and a channel under another prefix would wait behind it.
                channel = await layer.new_channel()
                await layer.group_add(FANOUT_GROUP, channel)
            except BaseException as exc:
                self._started.set_exception(exc)
                self._started = None
                raise
            self._tasks = [
                asyncio.create_task(self._receive_forever(layer, channel)),
                asyncio.create_task(self._rejoin_forever(layer, channel)),
            ]
            self._started.set_result(None)
        await self._started

    async def _rejoin_forever(self, layer, channel: str) -> None:
        while True:
            await asyncio.sleep(REJOIN_SECONDS)
            try:
                await layer.group_add(FANOUT_GROUP, channel)
            except Exception:
                log.exception("could not renew the fan-out subscription")

    async def _receive_forever(self, layer, channel: str) -> None:
        failures = 0
        while True:
            try:
                event = await layer.receive(channel)
                failures = 0
            except asyncio.CancelledError:
                raise
            except Exception:
                failures += 1
                log.exception("fan-out receive failed (%s in a row)", failures)
                await asyncio.sleep(min(0.1 * 2**failures, 5.0))
                continue
            try:
                await self.handle(event)
            except Exception:
                log.exception("fan-out of a %s event failed", event.get("type"))

    async def handle(self, event: dict) -> None:
        kind = event.get("type")
        if kind == EVENTS:
            for room_ids, user_id, seq, text, op in event["events"]:
                if op is not None and op[0] == "sub":
                    self.subscribe(user_id, op[1])
                if len(room_ids) == 1 and user_id is None:  # a room's event: the common case
                    targets = self.by_room.get(room_ids[0])
                else:
                    targets = set(self.by_user.get(user_id, ()))
                    for room_id in room_ids:
                        targets |= self.by_room.get(room_id, set())
                if targets:
                    prepared = prepare(text)
                    for sock in tuple(targets):
                        try:
                            await sock.deliver(text, prepared, seq)
                        except Exception:
                            log.exception("delivery to a socket failed")
                if op is not None and op[0] == "unsub":
                    self.unsubscribe(user_id, op[1])
        elif kind == SESSION_CHECK:
            for sock in tuple(self.by_user.get(event["user"], ())):
                sock.session_check_soon()


# This process's (this event loop's) fan-out.
local_fanout = per_event_loop(Fanout)
