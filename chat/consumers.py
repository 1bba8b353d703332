"""The chat socket: parse a frame, call one service, send the result."""

import logging

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from accounts.selectors import login_session_is_valid
from accounts.session_store import LOGIN_ID_KEY

from . import events, selectors, services
from .protocol import FrameError, parse_frame
from .ratelimit import SendRateLimiter

log = logging.getLogger(__name__)

CLOSE_SESSION_ENDED = 4401

send_limiter = SendRateLimiter(settings.CHAT_RATE_LIMIT, settings.CHAT_RATE_BURST)


class ChatConsumer(AsyncWebsocketConsumer):
    """One socket per browser tab, subscribed to every room its user belongs to."""

    groups_joined: list[str]

    async def connect(self) -> None:
        self.groups_joined = []
        user = self.scope.get("user")
        session = self.scope.get("session")
        login_id = session.get(LOGIN_ID_KEY) if session is not None else None
        if user is None or not user.is_authenticated or not user.is_active or not login_id:
            await self.close()  # before accept: the handshake gets HTTP 403
            return
        self.user = user
        self.login_id = login_id
        room_ids = await database_sync_to_async(selectors.room_ids_of_member)(user.pk)
        # Subscribe before accepting so nothing published meanwhile is missed.
        for group in [events.user_group(user.pk), *map(events.room_group, room_ids)]:
            await self.channel_layer.group_add(group, self.channel_name)
            self.groups_joined.append(group)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        for group in self.groups_joined:
            await self.channel_layer.group_discard(group, self.channel_name)
        self.groups_joined = []

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if text_data is None:
            await self._send_error("binary_not_supported", "Binary frames are not supported.")
            return
        try:
            frame = parse_frame(text_data)
        except FrameError as exc:
            await self._send_error(exc.code, exc.detail, exc.nonce)
            return
        if not send_limiter.allow(self.user.pk):
            await self._send_error(
                "rate_limited", "You are sending too fast; nothing was stored.", frame.nonce
            )
            return
        try:
            result = await database_sync_to_async(services.message_send)(
                author=self.user, room=frame.room, body=frame.body, nonce=frame.nonce
            )
        except services.ChatError as exc:
            await self._send_error(exc.code, exc.detail, frame.nonce)
            return
        except Exception:
            log.exception("send from user %s failed", self.user.pk)
            await self._send_error(
                "unavailable",
                "The message could not be stored; retry with the same nonce.",
                frame.nonce,
            )
            return
        if not result.created:
            # A retried nonce: only this socket hears about it, nothing is re-broadcast.
            event = events.message_event(result.message, result.room_slug)
            await self.send(text_data=events.encode(event))

    async def _send_error(self, code: str, detail: str, nonce: str | None = None) -> None:
        await self.send(text_data=events.encode(events.error_event(code, detail, nonce)))

    # --- channel-layer events ---------------------------------------------

    async def chat_deliver(self, event: dict) -> None:
        await self.send(text_data=event["text"])

    async def session_check(self, event: dict) -> None:
        valid = await database_sync_to_async(login_session_is_valid)(
            login_id=self.login_id, user_id=self.user.pk
        )
        if not valid:
            await self.close(code=CLOSE_SESSION_ENDED)
