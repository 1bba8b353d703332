"""Group names, event payloads, and broadcasting them after commit.

Each event is encoded to JSON once, here, and the encoded text travels through
the channel layer; consumers forward it without decoding or re-encoding.
"""

import json
import logging
from datetime import UTC, datetime
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from .models import Message

log = logging.getLogger(__name__)

# Channel-layer message types (consumer handler names are these with "." -> "_").
DELIVER = "chat.deliver"
SESSION_CHECK = "session.check"


def room_group(room_id: int) -> str:
    return f"room.{room_id}"


def user_group(user_id: int) -> str:
    return f"user.{user_id}"


def format_time(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def encode(event: dict[str, Any]) -> str:
    return json.dumps(event, ensure_ascii=False, separators=(",", ":"))


def message_data(message: Message, room_slug: str) -> dict[str, Any]:
    """A message as the history API returns it (the `message` event without `type`)."""
    return {
        "room": room_slug,
        "id": message.id,
        "user": message.author.username,
        "body": message.body,
        "created": format_time(message.created),
        "nonce": message.nonce,
    }


def message_event(message: Message, room_slug: str) -> dict[str, Any]:
    return {"type": "message", **message_data(message, room_slug)}


def error_event(code: str, detail: str, nonce: str | None = None) -> dict[str, Any]:
    return {"type": "error", "code": code, "detail": detail, "nonce": nonce}


def _group_send(group: str, payload: dict[str, Any]) -> None:
    async_to_sync(get_channel_layer().group_send)(group, payload)


def message_created(message: Message, room_slug: str) -> None:
    """Deliver a committed message to every open socket of every member of its room."""
    _group_send(
        room_group(message.room_id),
        {"type": DELIVER, "text": encode(message_event(message, room_slug))},
    )


def user_sockets_recheck(user_id: int) -> None:
    """Ask each open socket of the user to re-check the session it was opened with."""
    try:
        _group_send(user_group(user_id), {"type": SESSION_CHECK})
    except Exception:
        # Losing this only delays the close until the socket's periodic check.
        log.exception("could not ask the sockets of user %s to re-check their sessions", user_id)
