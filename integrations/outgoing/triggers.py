"""When a stored message is an event for an outgoing webhook: its delivery, in the same transaction.

A message triggers the webhook of an account (a bot) that is a member of
its room when it is a direct message to the account (`dm`), mentions it by
`@username` (`mention`), or contains one of the webhook's trigger words as a
whole word, in any room or only in the rooms the webhook lists (`word`). An
account's own messages never trigger its webhook, and the replies the
worker posts for webhooks trigger none (two bots would otherwise answer each
other forever).

The send path pays one query per batch for this when no webhook matches
(none exist, or no bot with one is in the batch's rooms), sent with the
ordering lock in the same round trip (`hooks_in_rooms_read`); then one more for
the rooms of webhooks with trigger words, one insert for the deliveries and
a NOTIFY that wakes the worker at commit.
"""

import json
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from chat.eventlog import Read
from chat.events import format_time
from chat.formatting import mentions as mentioned_names
from chat.hooks import StoredMessage
from chat.models import Message, Room
from chat.reusable import ReusableQuery

from ..models import Delivery, OutgoingWebhook
from .wakeup import outbox_notify


class Trigger:
    MENTION = "mention"
    DM = "dm"
    WORD = "word"


_suppressed: ContextVar[bool] = ContextVar("outgoing_webhook_triggers_suppressed", default=False)


@contextmanager
def triggers_suppressed() -> Iterator[None]:
    """Messages stored inside trigger no webhook (the worker posts webhook replies in it)."""
    token = _suppressed.set(True)
    try:
        yield
    finally:
        _suppressed.reset(token)


def words_pattern(words: list[str]) -> re.Pattern[str] | None:
    """A case-insensitive pattern matching any of `words` as a whole word (None for no words)."""
    if not words:
        return None
    alternatives = "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))
    return re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", re.IGNORECASE)


def message_event(*, message: Message, room: Room, trigger: str, bot: str) -> dict[str, Any]:
    """The JSON event a message sends to a webhook (without its event_id, added when queued)."""
    return {
        "type": "message",
        "trigger": trigger,
        "room": {"slug": room.slug, "name": room.name},
        "message": {
            "id": message.id,
            "body": message.body,
            "user": message.author.username,
            "ts": format_time(message.created),
            "thread": message.thread_id,
        },
        "bot": bot,
    }


def delivery_new(webhook_id: int, event: dict[str, Any]) -> Delivery:
    """An unsaved delivery of `event`, which gets its event_id here (receivers dedupe by it)."""
    event_id = uuid.uuid4()
    return Delivery(
        webhook_id=webhook_id, event_id=event_id, payload={"event_id": str(event_id), **event}
    )


@dataclass(frozen=True)
class _Hook:
    webhook_id: int
    bot_id: int
    bot: str
    words: re.Pattern[str] | None


# Built once: it runs inside the ordering lock for every batch of messages.
_HOOKS_IN_ROOMS = ReusableQuery(
    lambda room_ids: OutgoingWebhook.objects.filter(
        active=True, bot__is_active=True, bot__memberships__room_id__in=room_ids
    ).values_list("id", "bot_id", "bot__username", "trigger_words", "bot__memberships__room_id"),
    lists=1,
)


def hooks_in_rooms_read(room_ids: set[int]) -> Read | None:
    """The read that finds the active webhooks of these rooms' members (chat.hooks' first read).

    Answered as soon as the send holds the ordering lock, in the lock's round
    trip. None while triggers are suppressed (nothing would be delivered).
    """
    if _suppressed.get():
        return None
    sql, params = _HOOKS_IN_ROOMS.sql(sorted(room_ids))
    return Read(sql, params)


def _hooks_in_rooms(read: Read | None) -> dict[int, list[_Hook]]:
    """room id -> the active webhooks of its members, from the answered read (none: empty)."""
    found: dict[int, list[_Hook]] = {}
    for webhook_id, bot_id, username, stored, room_id in read.rows if read is not None else ():
        # JSON as the database gives it: text here (Django's JSONField parses it itself).
        words = json.loads(stored) if isinstance(stored, str) else stored
        hook = _Hook(webhook_id, bot_id, username, words_pattern(words or []))
        found.setdefault(room_id, []).append(hook)
    return found


def _word_rooms(hooks: dict[int, list[_Hook]]) -> dict[int, set[int]]:
    """webhook id -> the rooms its trigger words are limited to (absent: every room). One query."""
    ids = {h.webhook_id for listed in hooks.values() for h in listed if h.words is not None}
    if not ids:
        return {}
    through = OutgoingWebhook.rooms.through.objects.filter(outgoingwebhook_id__in=ids)
    limited: dict[int, set[int]] = {}
    for webhook_id, room_id in through.values_list("outgoingwebhook_id", "room_id"):
        limited.setdefault(webhook_id, set()).add(room_id)
    return limited


def _trigger_of(
    stored: StoredMessage, hook: _Hook, names: set[str], limited: dict[int, set[int]]
) -> str | None:
    if stored.message.author_id == hook.bot_id:
        return None
    if stored.room.is_direct:
        return Trigger.DM
    if hook.bot.lower() in names:
        return Trigger.MENTION
    rooms = limited.get(hook.webhook_id)
    if hook.words is not None and (rooms is None or stored.room.pk in rooms):
        if hook.words.search(stored.message.body):
            return Trigger.WORD
    return None


def messages_stored(stored: list[StoredMessage], read: Read | None) -> None:
    """Queue a delivery for each webhook a batch of new messages triggers (chat.hooks).

    `read` is `hooks_in_rooms_read` of (at least) the batch's rooms, answered.
    """
    if _suppressed.get() or not stored:
        return
    hooks = _hooks_in_rooms(read)
    if not hooks:
        return
    limited = _word_rooms(hooks)
    deliveries = []
    for item in stored:
        in_room = hooks.get(item.message.room_id)
        if not in_room:
            continue
        names = mentioned_names(item.message.body)
        for hook in in_room:
            trigger = _trigger_of(item, hook, names, limited)
            if trigger is not None:
                event = message_event(
                    message=item.message, room=item.room, trigger=trigger, bot=hook.bot
                )
                deliveries.append(delivery_new(hook.webhook_id, event))
    if deliveries:
        Delivery.objects.bulk_create(deliveries)
        outbox_notify()
