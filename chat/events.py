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

from . import fanout
from .models import Message

log = logging.getLogger(__name__)


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


def _group_send(payload: dict[str, Any]) -> None:
    async_to_sync(get_channel_layer().group_send)(fanout.FANOUT_GROUP, payload)


def messages_created(created: list[tuple[Message, str]]) -> None:
    """Deliver committed messages, in order, to every open socket of their rooms' members."""
    _group_send(
        {
            "type": fanout.MESSAGES,
            "events": [[m.room_id, encode(message_event(m, slug))] for m, slug in created],
        }
    )


def user_sockets_recheck(user_id: int) -> None:
    """Ask each open socket of the user to re-check the session it was opened with."""
    try:
        _group_send({"type": fanout.SESSION_CHECK, "user": user_id})
    except Exception:
        # Not fatal for the request that caused it; the sockets stay open meanwhile.
        log.exception("could not ask the sockets of user %s to re-check their sessions", user_id)
