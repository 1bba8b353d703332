"""Event payloads: what each kind of event carries, and catching up from the log.

Each event is encoded to JSON once and the encoded text travels through the
channel layer (chat.eventlog); the fan-out forwards it to sockets without
decoding it.
"""

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from . import selectors
from .eventlog import encode
from .formatting import render
from .models import Message, Room

log = logging.getLogger(__name__)

def format_time(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def room_data(room: Room) -> dict[str, Any]:
    return {
        "slug": room.slug,
        "name": room.name,
        "topic": room.topic,
        "kind": room.kind,
        "private": room.is_private,
        "archived": room.is_archived,
    }


def message_data(
    message: Message,
    room_slug: str,
    *,
    reactions: dict[str, list[str]] | None = None,
    mentions: list[str] | None = None,
) -> dict[str, Any]:
    """A message as the history API returns it (the `message` event without `type` and `seq`)."""
    return {
        "room": room_slug,
        "id": message.id,
        "user": message.author.username,
        "body": message.body,
        "created": format_time(message.created),
        "nonce": message.nonce,
        "html": message.html or render(message.body),
        "edited": format_time(message.edited) if message.edited else None,
        "mentions": mentions or [],
        "reactions": reactions or {},
    }


def message_event(message: Message, room_slug: str, seq: int | None, **extras: Any) -> dict:
    return {"type": "message", **message_data(message, room_slug, **extras), "seq": seq}


def message_edited_event(
    message: Message, room_slug: str, seq: int | None, mentions: list[str]
) -> dict:
    return {
        "type": "message_edited",
        "room": room_slug,
        "id": message.id,
        "body": message.body,
        "html": message.html or render(message.body),
        "edited": format_time(message.edited) if message.edited else None,
        "mentions": mentions,
        "seq": seq,
    }


def error_event(code: str, detail: str, nonce: str | None = None) -> dict[str, Any]:
    return {"type": "error", "code": code, "detail": detail, "nonce": nonce, "seq": None}


def stored_event(kind: str, data: dict[str, Any], seq: int) -> dict[str, Any]:
    """An event whose payload the log keeps as it was sent (everything but messages)."""
    return {"type": kind, **data, "seq": seq}


def message_retry_text(message: Message) -> str:
    """The answer to a retried send: the stored message as it is now, to one socket.

    A message deleted since is answered with its deletion, not as an empty message.
    """
    if message.is_deleted:
        return encode(
            {"type": "message_deleted", "room": message.room.slug, "id": message.id, "seq": None}
        )
    reactions, mentions = selectors.message_extras([message.id])
    event = message_event(
        message,
        message.room.slug,
        None,
        reactions=reactions.get(message.id),
        mentions=mentions.get(message.id),
    )
    return encode(event)


@dataclass(frozen=True)
class ReplayPage:
    texts: list[tuple[int, str]]
    last_seq: int
    complete: bool


def replay_page(user_id: int, after: int, watched: list[int], limit: int) -> ReplayPage:
    """The next logged events after `after` for a reconnecting socket, encoded.

    Message events are rendered from the message as it is now; those of
    messages deleted since are left out (their deletion follows in the log).
    A constant number of queries per page.
    """
    logged = selectors.events_after(user_id, after, watched, limit)
    message_ids = [e.message_id for e in logged if e.message_id is not None]
    reactions, mentions = selectors.message_extras(message_ids)
    texts: list[tuple[int, str]] = []
    for event in logged:
        message = event.message
        if message is None:
            texts.append((event.seq, encode(stored_event(event.kind, event.data, event.seq))))
        elif message.is_deleted:
            continue
        elif event.kind == "message":
            data = message_event(
                message,
                message.room.slug,
                event.seq,
                reactions=reactions.get(message.id),
                mentions=mentions.get(message.id),
            )
            texts.append((event.seq, encode(data)))
        else:
            data = message_edited_event(
                message, message.room.slug, event.seq, mentions.get(message.id, [])
            )
            texts.append((event.seq, encode(data)))
    last = logged[-1].seq if logged else after
    return ReplayPage(texts, last, complete=len(logged) < limit)


def unread_rooms(user_id: int) -> list[dict[str, Any]]:
    """The server's read marker, unread and mention counts for each joined room."""
    slugs = dict(selectors.rooms_of_member_ids(user_id))
    counts = selectors.unread_counts(user_id)
    return [
        {"room": slugs[room_id], "last_read_id": marker, "unread": unread, "mentions": m}
        for room_id, (marker, unread, m) in counts.items()
        if room_id in slugs
    ]


def resumed_event(user_id: int, seq: int) -> str:
    """Sent when a reconnecting socket has caught up: where it stands, and its counts."""
    return encode({"type": "resumed", "seq": seq, "rooms": unread_rooms(user_id)})
