"""Event payloads: what each kind of event carries, and catching up from the log.

Each event is encoded to JSON once and the encoded text travels through the
channel layer (chat.eventlog); the fan-out forwards it to sockets without
decoding it.
"""

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from . import access, selectors
from .eventlog import encode
from .formatting import render
from .models import Event, Message, Room
from .threads import selectors as thread_selectors

log = logging.getLogger(__name__)


def format_time(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def room_data(room: Room) -> dict[str, Any]:
    return {
        "slug": room.slug,
        "name": room.name,
        "topic": room.topic,
        "kind": room.kind,
        "private": not access.is_public(room),
        "archived": room.is_archived,
    }


def message_data(
    message: Message,
    room_slug: str,
    *,
    reactions: dict[str, list[str]] | None = None,
    mentions: list[str] | None = None,
    attachments: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A message as the history API returns it (the `message` event without `type` and `seq`).

    A deleted root whose thread still has replies is a placeholder: `deleted`
    true, no text, its author kept, so its replies stay reachable.
    """
    data = {
        "room": room_slug,
        "id": message.id,
        "user": message.author.username,
        "body": message.body,
        "created": format_time(message.created),
        "nonce": message.nonce,
        "html": message.html or render(message.body),
        "edited": format_time(message.edited) if message.edited else None,
        "mentions": mentions or [],
        "broadcast": message.broadcast or None,
        "reactions": reactions or {},
        "attachments": attachments or [],
        "deleted": message.is_deleted,
        "thread": message.thread_id,
        "in_channel": message.in_channel,
    }
    if message.thread_id is None:
        data.update(thread_summary(message))
    return data


def thread_summary(root: Message) -> dict[str, Any]:
    """A root's thread at a glance, as message objects and `thread` events carry it."""
    return {
        "replies": root.reply_count,
        "last_reply": format_time(root.last_reply_at) if root.last_reply_at else None,
        "repliers": list(root.repliers),
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
        # An edit may add or take back @channel/@here: pages follow it live.
        "broadcast": message.broadcast or None,
        "seq": seq,
    }


def error_event(code: str, detail: str, nonce: str | None = None) -> dict[str, Any]:
    return {"type": "error", "code": code, "detail": detail, "nonce": nonce, "seq": None}


def stored_event(kind: str, data: dict[str, Any], seq: int) -> dict[str, Any]:
    """An event whose payload the log keeps as it was sent (everything but messages)."""
    return {"type": kind, **data, "seq": seq}


def message_retry_answer(message: Message) -> tuple[int | None, str]:
    """The `seq` of the message's event in the log (None if pruned) and `message_retry_text`.

    The socket that asked uses the seq to send the message once: the answer
    and the event, when both reach it, are the same message.
    """
    seq = (
        Event.objects.filter(message_id=message.id, kind="message")
        .values_list("seq", flat=True)
        .first()
    )
    return seq, message_retry_text(message)


def message_retry_text(message: Message) -> str:
    """The answer to a retried send: the stored message as it is now, to one socket.

    A message deleted since is answered with its deletion, not as an empty message.
    """
    if message.is_deleted:
        return encode(
            {"type": "message_deleted", "room": message.room.slug, "id": message.id, "seq": None}
        )
    reactions, mentions = selectors.message_extras([message.id])
    files = selectors.message_attachments([message.id])
    event = message_event(
        message,
        message.room.slug,
        None,
        reactions=reactions.get(message.id),
        mentions=mentions.get(message.id),
        attachments=files.get(message.id),
    )
    return encode(event)


@dataclass(frozen=True)
class ReplayRequest:
    """A reconnecting socket's catch-up: its user, the last `seq` it saw, the rooms it watches."""

    user_id: int
    after: int
    watched: tuple[int, ...] = ()


@dataclass(frozen=True)
class ReplayPage:
    texts: list[tuple[int, str]]
    last_seq: int
    complete: bool
    # The `resumed` event, once the page reached the end of the log.
    resumed: str | None = None
    # Events after the socket's position were pruned: it must reload.
    pruned: bool = False


def replay_pages(requests: list[ReplayRequest], limit: int) -> list[ReplayPage]:
    """The next logged events for each of these reconnecting sockets, encoded, in one go.

    The events of all of them are read together (from the oldest position
    among them, at most `limit`) and each event is rendered once, however
    many sockets get it: after a restart thousands of sockets reconnect at
    once, mostly from the same place. Each socket gets what its user may see
    now: the rooms they belong to, those it watches, events addressed to
    them. Message events are rendered from the message as it is now; those
    of messages deleted since are left out (their deletion follows). A page
    that reaches the end of the log carries the `resumed` event with the
    user's counts. A constant number of queries, whatever the sockets and
    events, all in one snapshot.
    """
    users = {r.user_id for r in requests}
    start = min(r.after for r in requests)
    # Who belongs where and what happened there, as of the same moment: an
    # event of a room joined in between is then neither missed nor doubled.
    with selectors.one_snapshot():
        rooms_of = selectors.member_room_ids(users)
        rooms = set().union(*rooms_of.values(), *(r.watched for r in requests))
        pruned_upto = selectors.log_pruned_upto()
        logged = selectors.events_since(rooms, users, start, limit)
        complete = len(logged) < limit
        last = logged[-1].seq if logged else start
        message_ids = [e.message_id for e in logged if e.message_id is not None]
        reactions, mentions = selectors.message_extras(message_ids)
        files = selectors.message_attachments(message_ids)
        counts = selectors.unread_rooms_of(users) if complete else {}
        threads = thread_selectors.threads_unread_of(users) if complete else {}
    texts: dict[int, str | None] = {}

    def text(event: Event) -> str | None:
        if event.seq not in texts:
            texts[event.seq] = _replayed(event, reactions, mentions, files)
        return texts[event.seq]

    pages = []
    for request in requests:
        if request.after < pruned_upto:
            pages.append(ReplayPage([], request.after, False, pruned=True))
            continue
        allowed = rooms_of.get(request.user_id, set()) | set(request.watched)
        mine = []
        for event in logged:
            if event.seq > request.after and (
                event.room_id in allowed
                or event.user_id == request.user_id
                or (event.room_id is None and event.user_id is None)  # for everyone
            ):
                encoded = text(event)
                if encoded is not None:
                    mine.append((event.seq, encoded))
        upto = max(request.after, last)
        resumed = None
        if complete:
            resumed = encode(
                {
                    "type": "resumed",
                    "seq": upto,
                    "rooms": counts.get(request.user_id, []),
                    "threads": threads.get(request.user_id, []),
                }
            )
        pages.append(ReplayPage(mine, upto, complete, resumed))
    return pages


def _replayed(
    event: Event,
    reactions: dict[int, dict[str, list[str]]],
    mentions: dict[int, list[str]],
    files: dict[int, list[dict[str, Any]]],
) -> str | None:
    message = event.message
    if message is None:
        return encode(stored_event(event.kind, event.data, event.seq))
    if message.is_deleted and not (event.kind == "message" and message.reply_count > 0):
        # Gone, unless it is a root whose replies live on: then its placeholder.
        return None
    if event.kind == "message":
        data = message_event(
            message,
            message.room.slug,
            event.seq,
            reactions=reactions.get(message.id),
            mentions=mentions.get(message.id),
            attachments=files.get(message.id),
        )
    else:
        data = message_edited_event(
            message, message.room.slug, event.seq, mentions.get(message.id, [])
        )
    return encode(data)
