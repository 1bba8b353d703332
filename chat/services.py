"""Chat writes. Every way of changing chat state goes through here."""

import logging
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from django.db import IntegrityError, connection, transaction

from accounts.models import User

from . import events, selectors
from .models import DEFAULT_ROOM_SLUG, Membership, Message, Room

log = logging.getLogger(__name__)

BODY_MAX_CHARS = 10_000
NONCE_MAX_CHARS = 64
# Line breaks and tabs are text; every other control character is refused.
_BODY_REFUSED = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_NONCE_REFUSED = re.compile(r"[\x00-\x1f\x7f-\x9f]")


class ChatError(Exception):
    """A refused request, with a stable `code` from the protocol and a readable `detail`."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


@dataclass(frozen=True)
class SendResult:
    message: Message
    room_slug: str
    created: bool


def nonce_validate(nonce: object) -> str | None:
    """The nonce if it is acceptable (None for none), else ChatError("invalid")."""
    if nonce is None:
        return None
    if (
        not isinstance(nonce, str)
        or not 1 <= len(nonce) <= NONCE_MAX_CHARS
        or _NONCE_REFUSED.search(nonce)
    ):
        raise ChatError("invalid", f"nonce must be a string of 1 to {NONCE_MAX_CHARS} characters.")
    return nonce


def body_validate(body: str) -> None:
    """Refuse a blank, over-long or control-character body; the body itself is never altered."""
    length = len(body.strip())
    if length == 0:
        raise ChatError("invalid", "The message is empty.")
    if length > BODY_MAX_CHARS:
        raise ChatError("too_long", f"The message is longer than {BODY_MAX_CHARS} characters.")
    if _BODY_REFUSED.search(body):
        raise ChatError("invalid", "The message contains control characters.")


# Messages are committed and then published in one global order: each
# socket must see a room's messages in id order, and ids must grow in commit
# order. Across processes PostgreSQL's advisory lock provides that order; a
# thread lock does it within one process (the only case on SQLite).
_MESSAGE_ORDER_LOCK_KEY = 0x7E43_0001
_local_order = threading.Lock()


@contextmanager
def _commit_and_publish_in_order() -> Iterator[None]:
    with _local_order:
        if connection.vendor != "postgresql":
            yield
            return
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_lock(%s)", [_MESSAGE_ORDER_LOCK_KEY])
        try:
            yield
        finally:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [_MESSAGE_ORDER_LOCK_KEY])


def _publish(message: Message, room_slug: str) -> None:
    try:
        events.message_created(message, room_slug)
    except Exception:
        # The message is committed; clients fill the gap from history.
        log.exception("message %s was stored but could not be broadcast", message.id)


def message_send(*, author: User, room: str, body: str, nonce: str | None) -> SendResult:
    """Store a message from `author` in the room with slug `room`, then broadcast it.

    Raises ChatError for a bad body, a room the author cannot see
    (`no_such_room`) or has not joined (`not_member`). A repeated nonce from the
    same author returns the message already stored (created=False) and
    broadcasts nothing. The broadcast happens only after the commit.
    """
    body_validate(body)
    nonce = nonce_validate(nonce)
    try:
        room_obj, is_member = selectors.room_for_sender(author, room)
    except selectors.RoomNotFound:
        raise ChatError("no_such_room", f"There is no room #{room[:64]}.") from None
    if not is_member:
        raise ChatError("not_member", f"You are not a member of #{room_obj.slug}.")

    with _commit_and_publish_in_order():
        if nonce is not None:
            existing = _message_by_nonce(author, nonce)
            if existing is not None:
                return SendResult(existing, existing.room.slug, created=False)
        try:
            with transaction.atomic():
                message = Message.objects.create(
                    room=room_obj, author=author, body=body, nonce=nonce
                )
                transaction.on_commit(lambda: _publish(message, room_obj.slug))
        except IntegrityError:
            # Another process stored the same nonce first.
            existing = _message_by_nonce(author, nonce) if nonce is not None else None
            if existing is None:
                raise
            return SendResult(existing, existing.room.slug, created=False)
    return SendResult(message, room_obj.slug, created=True)


def _message_by_nonce(author: User, nonce: str) -> Message | None:
    return (
        Message.objects.filter(author=author, nonce=nonce).select_related("room", "author").first()
    )


def member_add_to_default_room(user: User) -> None:
    """Make `user` a member of #general (every account is)."""
    room = Room.objects.filter(slug=DEFAULT_ROOM_SLUG).first()
    if room is not None:
        Membership.objects.get_or_create(room=room, user=user)
