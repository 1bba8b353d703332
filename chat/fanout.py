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
MESSAGES = "fanout.messages"
SESSION_CHECK = "fanout.session_check"


class Subscriber(Protocol):
    user_id: int

    async def deliver(self, text: str, prepared: PreparedMessage) -> None: ...

    def session_check_soon(self) -> None: ...


class Fanout:
    """The sockets of this process by room and by user, fed from one layer channel."""

    def __init__(self) -> None:
        self.by_room: dict[int, set[Subscriber]] = {}
        # No index by user: session checks are rare, and scanning the
        # process's sockets for them costs less than an entry per socket.
        self.rooms_of: dict[Subscriber, tuple[int, ...]] = {}
        self._started: asyncio.Future[None] | None = None
        self._tasks: list[asyncio.Task[None]] = []

    async def register(self, sock: Subscriber, room_ids: list[int]) -> None:
        """Start delivering these rooms' events, and its user's, to `sock`."""
        await self._start()
        self.rooms_of[sock] = tuple(room_ids)
        for room_id in room_ids:
            self.by_room.setdefault(room_id, set()).add(sock)

    def unregister(self, sock: Subscriber) -> None:
        for room_id in self.rooms_of.pop(sock, ()):
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
        if kind == MESSAGES:
            for room_id, text in event["events"]:
                members = self.by_room.get(room_id)
                if not members:
                    continue
                prepared = prepare(text)
                for sock in tuple(members):
                    try:
                        await sock.deliver(text, prepared)
                    except Exception:
                        log.exception("delivery to a socket failed")
        elif kind == SESSION_CHECK:
            user_id = event["user"]
            for sock in [s for s in self.rooms_of if s.user_id == user_id]:
                sock.session_check_soon()


# This process's (this event loop's) fan-out.
local_fanout = per_event_loop(Fanout)
