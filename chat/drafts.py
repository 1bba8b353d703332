"""Drafts: what a person has typed in a room's (or a thread's) composer and not sent.

Kept on the server so every tab and device shows the same text. Each draft
carries a version that grows with every change; a change names the version
it was made on and is refused (`conflict`, with the stored draft) when that
is no longer the current one, so a device that was offline with an older
text never overwrites a newer one. Every change is logged as a `draft` event
addressed to the person's own sockets, so open tabs converge and a
reconnecting one catches up from the log. A stored message clears its
author's draft for its room and thread (`drafts_clear_sent`, called by the
send path inside its transaction).
"""

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.db.models import F, Q
from django.utils import timezone

from accounts.models import User

from . import access, events, selectors
from .errors import ChatError, Code
from .eventlog import Item, Read, logged_change, record
from .models import Draft, Event, Membership, Message, Room
from .reusable import ReusableQuery

# The same limit as a message's whole body (protocol v2): a draft is a message to be.
DRAFT_MAX_RAW_CHARS = 12_000
DRAFTS_LISTED_MAX = 500


class DraftConflict(ChatError):
    """A change made on a version that is no longer the stored one: nothing was changed."""

    def __init__(self, stored: dict[str, Any]) -> None:
        super().__init__(
            Code.CONFLICT, "This draft was changed elsewhere since; here is the stored one."
        )
        self.draft = stored


@dataclass(frozen=True)
class DraftKey:
    """Whose draft, where: a room, or a thread (its root's id) of that room."""

    user_id: int
    room_id: int
    thread_id: int | None


def draft_data(
    *, room_slug: str, thread_id: int | None, body: str, version: int, updated: Any
) -> dict[str, Any]:
    """A draft as the API, the `draft` event and the page carry it."""
    return {
        "room": room_slug,
        "thread": thread_id,
        "body": body,
        "version": version,
        "updated": events.format_time(updated) if updated else None,
    }


def _data(draft: Draft, room_slug: str) -> dict[str, Any]:
    return draft_data(
        room_slug=room_slug,
        thread_id=draft.thread_id,
        body=draft.body,
        version=draft.version,
        updated=draft.updated,
    )


def _body_validate(body: str) -> None:
    if len(body) > DRAFT_MAX_RAW_CHARS:
        raise ChatError(
            Code.TOO_LONG, f"A draft, spaces included, is at most {DRAFT_MAX_RAW_CHARS} characters."
        )
    # The message rules for characters: what could not be sent is not kept either.
    # (Imported here: chat.services imports this module, its sends clear drafts.)
    from .services import _BODY_REFUSED

    if _BODY_REFUSED.search(body):
        raise ChatError(Code.INVALID, "The draft contains control characters or broken Unicode.")


def _room_writable(user: User, slug: str) -> Room:
    """The room if `user` may write to it: the same refusals as a send."""
    room, membership = selectors.room_and_membership(user, slug)
    access.check_write(
        slug,
        public=access.is_public(room),
        is_member=membership is not None,
        archived=room.is_archived,
    )
    return room


def _root_checked(room: Room, thread: int) -> None:
    """A thread is named by its root: a live top-level message of this room."""
    root = Message.objects.filter(pk=thread, room=room, thread__isnull=True, is_deleted=False)
    if not root.exists():
        raise ChatError(Code.INVALID, "thread must be a top-level message of this room.")


def draft_save(
    *, user: User, room: str, thread: int | None, body: str, version: int
) -> dict[str, Any]:
    """Store `user`'s draft for a room (or thread), made on `version` of it (0: none yet).

    A blank body clears it (the row stays with an empty body and a new
    version, so an older text can never come back). Raises DraftConflict,
    changing nothing, when `version` is not the stored one; the refusals of a
    send (`no_such_room`, `not_member`, `forbidden`) for a room the user may
    not write to; `invalid` for a thread that is not a live top-level message
    of that room. Logs a `draft` event to the user's own sockets.
    """
    _body_validate(body)
    found = _room_writable(user, room)
    if thread is not None:
        _root_checked(found, thread)
    if not body.strip():
        body = ""
    with logged_change() as items:
        # Every draft change happens inside the one order, so this read is current.
        draft = Draft.objects.filter(user=user, room=found, thread_id=thread).first()
        stored = draft.version if draft is not None else 0
        if version != stored:
            if draft is None:
                empty = draft_data(
                    room_slug=found.slug, thread_id=thread, body="", version=0, updated=None
                )
                raise DraftConflict(empty)
            raise DraftConflict(_data(draft, found.slug))
        if draft is None:
            draft = Draft(user=user, room=found, thread_id=thread)
        draft.body = body
        draft.version = stored + 1
        draft.updated = timezone.now()
        draft.save()
        data = _data(draft, found.slug)
        items.append(record("draft", data, user_id=user.pk))
    return data


def drafts_of(user: User) -> list[dict[str, Any]]:
    """The user's drafts that have text, newest first, in rooms they may still write to.

    A thread draft whose root was deleted since is left out (no reply can go
    there any more). One query.
    """
    member_of = Membership.objects.filter(user=user).values("room_id")
    rows = (
        Draft.objects.filter(user=user, room_id__in=member_of, room__is_archived=False)
        .exclude(body="")
        .filter(Q(thread__isnull=True) | Q(thread__is_deleted=False))
        .select_related("room")
        .order_by("-updated", "-id")[:DRAFTS_LISTED_MAX]
    )
    return [_data(d, d.room.slug) for d in rows]


# Built once: it runs inside the ordering lock for every batch of messages.
_WITH_TEXT = ReusableQuery(
    lambda user_ids, room_ids: Draft.objects.filter(
        user_id__in=user_ids, room_id__in=room_ids
    ).exclude(body=""),
    lists=2,
)


def drafts_with_text_read(keys: Iterable[DraftKey]) -> Read | None:
    """The read `drafts_clear_sent` needs, for the drafts the messages of a batch may clear.

    A send runs it as soon as it holds the ordering lock (`chat.eventlog.Read`):
    every draft change happens inside the order, so what it finds is current.
    It may name more drafts than the batch stores (some of its messages may be
    refused): `drafts_clear_sent` clears only those of the stored ones.
    """
    wanted = set(keys)
    if not wanted:
        return None
    # The authors' drafts with text in these rooms, then the exact keys in
    # Python: a condition per key would be as many terms for the ORM to build
    # as the batch has messages, on every send.
    sql, params = _WITH_TEXT.sql(
        sorted({k.user_id for k in wanted}), sorted({k.room_id for k in wanted})
    )
    return Read(sql, params)


def drafts_clear_sent(
    keys: Iterable[DraftKey], room_slugs: dict[int, str], read: Read | None
) -> list[Item]:
    """Clear the drafts these messages were sent from; call inside the send's logged change.

    For each (author, room, thread) of a stored message, a draft with text
    gets an empty body and a new version, and its author's sockets a `draft`
    event. `read` is the change's `drafts_with_text_read` of these keys (or
    more), answered. No query when none has text, two otherwise, whatever the
    batch.
    """
    wanted = set(keys)
    if not wanted or read is None:
        return []
    candidates = _WITH_TEXT.instances(Draft, read.rows)
    found = [d for d in candidates if DraftKey(d.user_id, d.room_id, d.thread_id) in wanted]
    if not found:
        return []
    now = timezone.now()
    Draft.objects.filter(id__in=[d.id for d in found]).update(
        body="", version=F("version") + 1, updated=now
    )
    logged = []
    for draft in found:
        draft.body, draft.version, draft.updated = "", draft.version + 1, now
        logged.append((draft.user_id, _data(draft, room_slugs[draft.room_id])))
    rows = Event.objects.bulk_create(
        [Event(kind="draft", user_id=user_id, data=data) for user_id, data in logged]
    )
    return [
        Item(events.encode(events.stored_event("draft", data, row.seq)), user=user_id, seq=row.seq)
        for (user_id, data), row in zip(logged, rows, strict=True)
    ]
