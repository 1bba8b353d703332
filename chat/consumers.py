"""The chat socket: parse a frame, call one service, send the result."""

import asyncio
import logging

from channels.consumer import get_handler_name
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from accounts.models import User
from accounts.selectors import login_session_is_valid
from accounts.session_store import LOGIN_ID_KEY

from . import events, selectors, services
from .fanout import local_fanout
from .protocol import FrameError, parse_frame
from .ratelimit import SendRateLimiter
from .transport import PreparedMessage, SocketOutput
from .writer import message_writer

log = logging.getLogger(__name__)

CLOSE_SESSION_ENDED = 4401

send_limiter = SendRateLimiter(settings.CHAT_RATE_LIMIT, settings.CHAT_RATE_BURST)
# Sends a socket may have queued for storage before it stops reading frames.
MAX_SENDS_IN_FLIGHT = 32
_running: set[asyncio.Task[None]] = set()


def _track(task: "asyncio.Task[None]") -> None:
    _running.add(task)  # asyncio keeps only weak references to tasks
    task.add_done_callback(_running.discard)


def _shed_handshake_state(scope: dict) -> User:
    """Free what only the handshake needed, for the socket's lifetime.

    The middleware layers each keep a shallow copy of the scope, so the
    shared header list, cookie dict and decoded session are emptied in place
    rather than dropped from one copy, and the user behind the scope's lazy
    object becomes one that holds only what the socket uses. Nothing reads the
    rest after the handshake; Channels' session wrapper saves sessions only
    on HTTP responses.
    """
    headers = scope.get("headers")
    if isinstance(headers, list):
        headers.clear()
    cookies = scope.get("cookies")
    if isinstance(cookies, dict):
        cookies.clear()
    session = scope.get("session")
    if session is not None:
        session._session_cache = {}
    user = scope["user"]
    # Only these fields are loaded; the socket never reads another one.
    slim = User.from_db(None, ["id", "username", "is_active"], [user.pk, user.username, True])
    if hasattr(user, "_wrapped"):
        user._wrapped = slim
    return slim


class ChatConsumer(AsyncWebsocketConsumer):
    """One socket per browser tab, carrying every room its user belongs to.

    Events reach it from the process's fan-out (chat.fanout), not through a
    channel-layer channel of its own, so it has none.
    """

    channel_layer_alias = None
    groups = ()  # none: no per-socket list either

    user_id: int
    sends_in_flight = 0

    async def dispatch(self, message: dict) -> None:
        # Channels' dispatch first closes stale database connections through the
        # database thread, a thread hop per frame; the database work here runs in
        # database_sync_to_async, which does that itself.
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    async def connect(self) -> None:
        user = self.scope.get("user")
        session = self.scope.get("session")
        login_id = session.get(LOGIN_ID_KEY) if session is not None else None
        if user is None or not user.is_authenticated or not user.is_active or not login_id:
            await self.close()  # before accept: the handshake gets HTTP 403
            return
        self.user_id = user.pk
        self.login_id = login_id
        room_ids = await database_sync_to_async(selectors.room_ids_of_member)(user.pk)
        # Subscribe before accepting, so nothing published meanwhile is missed.
        self.output = SocketOutput(self.base_send)
        await local_fanout().register(self, room_ids)
        await self.accept()
        self.output.start()
        self.user = _shed_handshake_state(self.scope)

    async def disconnect(self, code: int) -> None:
        local_fanout().unregister(self)  # a no-op for a socket never registered

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if text_data is None:
            await self._send_error("binary_not_supported", "Binary frames are not supported.")
            return
        try:
            frame = parse_frame(text_data)
        except FrameError as exc:
            await self._send_error(exc.code, exc.detail, exc.nonce)
            return
        if not send_limiter.allow(self.user_id):
            await self._send_error(
                "rate_limited", "You are sending too fast; nothing was stored.", frame.nonce
            )
            return
        request = services.SendRequest(self.user, frame.room, frame.body, frame.nonce)
        # The next frame is read while this one is being stored, so a client
        # with several sends in flight gets them into one commit; results come
        # back as the writer finishes each batch, in order.
        future = message_writer().submit(request)
        self.sends_in_flight += 1
        _track(asyncio.create_task(self._answer_send(future, frame.nonce)))
        if self.sends_in_flight > MAX_SENDS_IN_FLIGHT:
            await asyncio.wait({future})  # stored in order: all earlier ones are done too

    async def _answer_send(self, future: "asyncio.Future[services.SendResult]", nonce) -> None:
        try:
            result = await future
        except services.ChatError as exc:
            await self._send_error(exc.code, exc.detail, nonce)
            return
        except Exception:
            log.exception("send from user %s failed", self.user_id)
            await self._send_error(
                "unavailable", "The message could not be stored; retry with the same nonce.", nonce
            )
            return
        finally:
            self.sends_in_flight -= 1
        if not result.created:
            # A retried nonce: only this socket hears about it, nothing is re-broadcast.
            event = events.message_event(result.message, result.room_slug)
            await self.send(text_data=events.encode(event))

    async def _send_error(self, code: str, detail: str, nonce: str | None = None) -> None:
        await self.send(text_data=events.encode(events.error_event(code, detail, nonce)))

    # --- called by the fan-out ---------------------------------------------

    async def deliver(self, text: str, prepared: PreparedMessage | None = None) -> None:
        await self.output.write(text, prepared)

    def session_check_soon(self) -> None:
        _track(asyncio.create_task(self._check_session()))

    async def _check_session(self) -> None:
        valid = await database_sync_to_async(login_session_is_valid)(
            login_id=self.login_id, user_id=self.user_id
        )
        if not valid:
            await self.close(code=CLOSE_SESSION_ENDED)
