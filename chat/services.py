"""Chat writes. Every way of changing chat state goes through here."""

import logging
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from django.db import connection, transaction

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
    if connection.in_atomic_block:
        # An outer transaction would commit (and publish) after the lock is gone.
        raise RuntimeError(
            "Messages are committed by the service itself; call it outside a transaction."
        )
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


@dataclass(frozen=True)
class SendRequest:
    author: User
    room: str
    body: str
    nonce: str | None


def _publish(created: list[SendResult]) -> None:
    try:
        events.messages_created([(r.message, r.room_slug) for r in created])
    except Exception:
        # The messages are committed; clients fill the gap from history.
        log.exception("%d stored message(s) could not be broadcast", len(created))


def message_send(*, author: User, room: str, body: str, nonce: str | None) -> SendResult:
    """Store a message from `author` in the room with slug `room`, then broadcast it.

    Raises ChatError for a bad body, a room the author cannot see
    (`no_such_room`) or has not joined (`not_member`). A repeated nonce from the
    same author returns the message already stored (created=False) and
    broadcasts nothing. The broadcast happens only after the commit.
    """
    [result] = message_send_many([SendRequest(author, room, body, nonce)])
    if isinstance(result, ChatError):
        raise result
    return result


def message_send_many(requests: list[SendRequest]) -> list[SendResult | ChatError]:
    """`message_send` for a batch, in one transaction (group commit).

    Each request gets its own result or ChatError, in order; the created
    messages get ids in request order and are broadcast together after the
    commit. A constant number of queries, whatever the batch size.
    """
    results: list[SendResult | ChatError | None] = [None] * len(requests)
    pending: list[int] = []
    for i, req in enumerate(requests):
        try:
            body_validate(req.body)
            nonce_validate(req.nonce)
        except ChatError as exc:
            results[i] = exc
        else:
            pending.append(i)

    access = selectors.room_access_many(
        {(requests[i].author.pk, requests[i].room) for i in pending}
    )
    allowed: list[tuple[int, Room]] = []
    for i in pending:
        req = requests[i]
        found = access.get((req.author.pk, req.room))
        if found is None:
            results[i] = ChatError("no_such_room", f"There is no room #{req.room[:64]}.")
        elif not found[1]:
            results[i] = ChatError("not_member", f"You are not a member of #{found[0].slug}.")
        else:
            allowed.append((i, found[0]))

    if allowed:
        with _commit_and_publish_in_order():
            _store(requests, allowed, results)
    return results  # type: ignore[return-value]


def _store(
    requests: list[SendRequest],
    allowed: list[tuple[int, Room]],
    results: list[SendResult | ChatError | None],
) -> None:
    nonces = {(requests[i].author.pk, requests[i].nonce) for i, _ in allowed if requests[i].nonce}
    stored = selectors.messages_by_nonce(nonces)
    to_create: list[tuple[int, Message, str]] = []
    in_batch: dict[tuple[int, str], int] = {}
    repeats: list[tuple[int, int]] = []
    for i, room in allowed:
        req = requests[i]
        key = (req.author.pk, req.nonce) if req.nonce else None
        if key in stored:
            message = stored[key]
            results[i] = SendResult(message, message.room.slug, created=False)
        elif key is not None and key in in_batch:
            repeats.append((i, in_batch[key]))
        else:
            if key is not None:
                in_batch[key] = i
            message = Message(room=room, author=req.author, body=req.body, nonce=req.nonce)
            to_create.append((i, message, room.slug))

    with transaction.atomic():
        Message.objects.bulk_create([message for _, message, _ in to_create])
        created = [SendResult(message, slug, created=True) for _, message, slug in to_create]
        transaction.on_commit(lambda: _publish(created))
    for (i, _, _), result in zip(to_create, created, strict=True):
        results[i] = result
    for i, first in repeats:
        original = results[first]
        assert isinstance(original, SendResult)
        results[i] = SendResult(original.message, original.room_slug, created=False)


def member_add_to_default_room(user: User) -> None:
    """Make `user` a member of #general (every account is)."""
    room = Room.objects.filter(slug=DEFAULT_ROOM_SLUG).first()
    if room is not None:
        Membership.objects.get_or_create(room=room, user=user)
