"""Chat writes. Every way of changing chat state goes through here."""

import logging
import re
from dataclasses import dataclass, replace
from typing import Any

import emoji as emoji_data
from django.conf import settings
from django.db import IntegrityError, connection
from django.db.models import Case, Max, Value, When
from django.utils import timezone
from django.utils.text import slugify

from accounts.models import User
from integrations.audit import audit_record
from teamchat import metrics

from . import access, events, hooks, mentions, selectors
from .drafts import DraftKey, drafts_clear_sent, drafts_with_text_read
from .errors import ChatError, Code, NoSuchMessage, NoSuchRoom, NoSuchUser, RoomArchived
from .eventlog import Item, Op, Read, logged_change, record, record_for_users
from .formatting import render
from .models import (
    DEFAULT_ROOM_SLUG,
    Event,
    Membership,
    Mention,
    Message,
    Reaction,
    Room,
    Upload,
)
from .ratelimit import hourly_allowed
from .threads import selectors as thread_selectors
from .threads import services as thread_services
from .uploads.data import attachment_data
from .uploads.services import uploads_free

log = logging.getLogger(__name__)

BODY_MAX_CHARS = 10_000
# The whole body as sent, surrounding whitespace included (protocol v2).
BODY_MAX_RAW_CHARS = 12_000
NONCE_MAX_CHARS = 64
# Line breaks and tabs are text; every other control character is refused.
# Lone surrogates (JSON can carry them as escapes) are not text: the database
# cannot store them.
_BODY_REFUSED = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")
_NONCE_REFUSED = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_UNSTORABLE = re.compile(r"[\x00\ud800-\udfff]")


def text_is_storable(value: str) -> bool:
    """False for text the database refuses (NUL, lone surrogates): never look it up."""
    return _UNSTORABLE.search(value) is None


@dataclass(frozen=True)
class SendResult:
    message: Message
    room_slug: str
    created: bool


def nonce_validate(nonce: object) -> str | None:
    """The nonce if it is acceptable (None for none), else ChatError(Code.INVALID)."""
    if nonce is None:
        return None
    if (
        not isinstance(nonce, str)
        or not 1 <= len(nonce) <= NONCE_MAX_CHARS
        or _NONCE_REFUSED.search(nonce)
    ):
        raise ChatError(
            Code.INVALID, f"nonce must be a string of 1 to {NONCE_MAX_CHARS} characters."
        )
    return nonce


def body_validate(body: str, *, may_be_blank: bool = False) -> None:
    """Refuse a blank, over-long or control-character body; the body itself is never altered.

    A message that carries files may have no text (`may_be_blank`).
    """
    length = len(body.strip())
    if length == 0 and not may_be_blank:
        raise ChatError(Code.INVALID, "The message is empty.")
    if length > BODY_MAX_CHARS:
        raise ChatError(Code.TOO_LONG, f"The message is longer than {BODY_MAX_CHARS} characters.")
    if len(body) > BODY_MAX_RAW_CHARS:
        raise ChatError(
            Code.TOO_LONG,
            f"The message, spaces included, is longer than {BODY_MAX_RAW_CHARS} characters.",
        )
    if _BODY_REFUSED.search(body):
        raise ChatError(Code.INVALID, "The message contains control characters or broken Unicode.")


# --- Messages ---------------------------------------------------------------


@dataclass(frozen=True)
class SendRequest:
    author: User
    room: str
    body: str
    nonce: str | None
    # Upload ids, in the order they are shown; a repeated id is one file.
    attachments: tuple[int, ...] = ()
    # A reply: its root's id; `in_channel`, shown in the room as well.
    thread: int | None = None
    in_channel: bool = False


def attachments_validate(ids: tuple[int, ...]) -> tuple[int, ...]:
    """The distinct upload ids of a send, refused past UPLOADS_MAX_PER_MESSAGE."""
    distinct = tuple(dict.fromkeys(ids))
    most = settings.UPLOADS_MAX_PER_MESSAGE
    if len(distinct) > most:
        raise ChatError(Code.INVALID, f"A message carries at most {most} files.")
    return distinct


def message_send(
    *,
    author: User,
    room: str,
    body: str,
    nonce: str | None,
    attachments: tuple[int, ...] = (),
    thread: int | None = None,
    in_channel: bool = False,
) -> SendResult:
    """Store a message from `author` in the room with slug `room`, then broadcast it.

    Raises ChatError for a bad body, a room the author cannot see
    (`no_such_room`), has not joined (`not_member`) or that is archived
    (`forbidden`). A repeated nonce from the same author returns the message
    already stored (created=False) and broadcasts nothing. The broadcast
    happens only after the commit. `attachments` are ids of the author's own
    uploads that no message carries yet (`invalid` otherwise); with them the
    body may be blank. `thread` makes it a reply to that live top-level
    message of the same room (`invalid` otherwise, whatever the reason);
    `in_channel` shows the reply in the room too.
    """
    request = SendRequest(author, room, body, nonce, attachments, thread, in_channel)
    [result] = message_send_many([request])
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
    requests = list(requests)
    for i, req in enumerate(requests):
        try:
            body_validate(req.body, may_be_blank=bool(req.attachments))
            nonce_validate(req.nonce)
            if req.attachments:
                requests[i] = replace(req, attachments=attachments_validate(req.attachments))
        except ChatError as exc:
            results[i] = exc
        else:
            pending.append(i)

    rooms = selectors.room_access_many({(requests[i].author.pk, requests[i].room) for i in pending})
    allowed: list[tuple[int, Room]] = []
    for i in pending:
        req = requests[i]
        try:
            room = _room_checked(req.room, rooms.get((req.author.pk, req.room)), write=True)
        except ChatError as exc:
            results[i] = exc
        else:
            allowed.append((i, room))

    if allowed:
        _store(requests, allowed, results)
    return results  # type: ignore[return-value]


@dataclass
class _Draft:
    """A message ready to insert: rendered, its mentions resolved."""

    index: int
    message: Message
    room_slug: str
    mentioned: list[User]
    refused: ChatError | None = None


def _drafts(requests: list[SendRequest], allowed: list[tuple[int, Room]]) -> list[_Draft]:
    """Render and resolve mentions for the batch; needs no order, so runs before the lock."""
    drafts = [
        _Draft(i, Message(room=room, author=requests[i].author, body=requests[i].body,
                          nonce=requests[i].nonce, thread_id=requests[i].thread,
                          in_channel=requests[i].thread is not None and requests[i].in_channel),
               room.slug, [])
        for i, room in allowed
    ]  # fmt: skip
    # Mentions (people, groups, @channel/@here): a constant number of queries for the batch.
    asked = [mentions.MentionRequest(d.message.room_id, d.message.author, d.message.body)
             for d in drafts]  # fmt: skip
    found = mentions.resolve_many(asked)
    for draft, resolved in zip(drafts, found, strict=True):
        draft.mentioned = resolved.users
        draft.message.broadcast = resolved.broadcast
        draft.message.html = render(draft.message.body, resolved.highlighted)
        draft.refused = resolved.error
    return drafts


def _store(
    requests: list[SendRequest],
    allowed: list[tuple[int, Room]],
    results: list[SendResult | ChatError | None],
) -> None:
    drafts = _drafts(requests, allowed)
    nonces = {(d.message.author_id, d.message.nonce) for d in drafts if d.message.nonce}
    # What the change reads first goes with the ordering lock, in one round
    # trip: inside the order, a retry committed by another process just
    # before is found rather than stored twice, and a draft saved just before
    # is cleared.
    retried = selectors.messages_by_nonce_read(nonces)
    typed = drafts_with_text_read(_draft_keys(requests, drafts))
    hooked = hooks.first_reads({d.message.room_id for d in drafts})
    reads = [read for read in (retried, typed, *hooked) if read is not None]
    with logged_change(reads=reads) as items:
        stored = selectors.messages_by_nonce(retried)
        to_create: list[_Draft] = []
        in_batch: dict[tuple[int, str], int] = {}
        repeats: list[tuple[int, int]] = []
        for draft in drafts:
            message = draft.message
            key = (message.author_id, message.nonce) if message.nonce else None
            if key in stored:
                found = stored[key]
                if found.room_id != message.room_id:
                    # The retry of a message in another room: answering it with that
                    # message would show a room the sender may no longer read.
                    results[draft.index] = ChatError(
                        Code.INVALID, "This nonce was already used in another room; use a new one."
                    )
                    continue
                results[draft.index] = SendResult(found, found.room.slug, created=False)
            elif draft.refused is not None:  # a broadcast the author may not use there
                results[draft.index] = draft.refused
            elif key is not None and key in in_batch:
                repeats.append((draft.index, in_batch[key]))
            else:
                if key is not None:
                    in_batch[key] = draft.index
                to_create.append(draft)
        roots = _roots_check(to_create, results)
        to_create = [d for d in to_create if results[d.index] is None]
        files = _attachments_claim(requests, to_create, results)
        to_create = [d for d in to_create if results[d.index] is None]
        Message.objects.bulk_create([d.message for d in to_create])
        _attachments_attach(requests, to_create, files)
        logged = Event.objects.bulk_create(
            [Event(kind="message", room_id=d.message.room_id, message=d.message) for d in to_create]
        )
        Mention.objects.bulk_create(
            [Mention(message=d.message, user=u) for d in to_create for u in d.mentioned]
        )
        # Inside the transaction: what a hook writes (an outgoing webhook's
        # delivery) commits with the messages or not at all.
        hooks.messages_stored(
            [
                hooks.StoredMessage(d.message, d.message.room, tuple(u.pk for u in d.mentioned))
                for d in to_create
            ],
            hooked,
        )
        for draft, event in zip(to_create, logged, strict=True):
            names = [u.username for u in draft.mentioned]
            # In upload order, as history shows them.
            carried = sorted((files[i] for i in requests[draft.index].attachments), key=_id)
            data = events.message_event(
                draft.message,
                draft.room_slug,
                event.seq,
                mentions=names,
                attachments=[attachment_data(u) for u in carried],
            )
            items.append(Item(events.encode(data), (draft.message.room_id,), seq=event.seq))
        replies = [
            thread_services.StoredReply(d.message, d.room_slug, tuple(u.pk for u in d.mentioned))
            for d in to_create
            if d.message.thread_id is not None
        ]
        thread_services.replies_stored(replies, roots, items)
        items.extend(_drafts_sent(requests, to_create, typed))
    metrics.MESSAGES_STORED.inc(len(to_create))
    for draft in to_create:
        results[draft.index] = SendResult(draft.message, draft.room_slug, created=True)
    for i, first in repeats:
        original = results[first]
        if isinstance(original, SendResult):
            results[i] = SendResult(original.message, original.room_slug, created=False)
        else:
            results[i] = original  # the first was refused (its files), and so is its repeat


def _roots_check(
    drafts: list[_Draft], results: list[SendResult | ChatError | None]
) -> dict[int, Message]:
    """The roots the replies among `drafts` name; a reply whose root cannot take it gets `invalid`.

    Runs inside the ordering transaction, so a root deleted by a change
    committed just before is seen deleted. One query, if the batch has replies.
    """
    roots = thread_selectors.roots_for_replies(
        {d.message.thread_id for d in drafts if d.message.thread_id is not None}
    )
    for draft in drafts:
        if draft.message.thread_id is not None:
            refusal = thread_selectors.root_refusal(
                roots.get(draft.message.thread_id), draft.message.room_id
            )
            if refusal is not None:
                results[draft.index] = refusal
    return roots


def _draft_keys(requests: list[SendRequest], drafts: list[_Draft]) -> list[DraftKey]:
    """The drafts these messages were typed in: their room's, or their thread's."""
    keys = []
    for d in drafts:
        thread = d.message.thread_id or getattr(requests[d.index], "thread", None)
        keys.append(DraftKey(d.message.author_id, d.message.room_id, thread))
    return keys


def _drafts_sent(requests: list[SendRequest], sent: list[_Draft], typed: Read | None) -> list[Item]:
    """A stored message clears the draft it was typed in (`typed`: the drafts with text, read)."""
    slugs = {d.message.room_id: d.room_slug for d in sent}
    return drafts_clear_sent(_draft_keys(requests, sent), slugs, typed)


def _attachments_claim(
    requests: list[SendRequest],
    drafts: list[_Draft],
    results: list[SendResult | ChatError | None],
) -> dict[int, Upload]:
    """The uploads the drafts carry, locked; a draft naming one it may not carry gets `invalid`.

    Each id must be the author's own upload that no message carries yet (nor
    an earlier draft of this batch): unknown and someone else's get the same
    answer. Runs inside the ordering transaction, so of two sends racing for
    one file exactly one gets it. One query for the batch.
    """
    wanted = {i for d in drafts for i in requests[d.index].attachments}
    if not wanted:
        return {}
    found = {u.id: u for u in Upload.objects.select_for_update().filter(id__in=wanted)}
    claimed: set[int] = set()
    for draft in drafts:
        ids = requests[draft.index].attachments
        uploads = [found.get(i) for i in ids]
        if any(u is None or u.uploader_id != draft.message.author_id for u in uploads):
            results[draft.index] = ChatError(
                Code.INVALID, "attachments names a file that is not one of your uploads."
            )
        elif any(u.message_id is not None or u.id in claimed for u in uploads if u):
            results[draft.index] = ChatError(
                Code.INVALID, "A file in attachments is already part of another message."
            )
        else:
            claimed.update(ids)
    return found


def _id(upload: Upload) -> int:
    return upload.id


def _attachments_attach(
    requests: list[SendRequest], drafts: list[_Draft], files: dict[int, Upload]
) -> None:
    """Bind each stored draft's uploads to its message: one UPDATE for the batch."""
    owner = {i: d.message for d in drafts for i in requests[d.index].attachments}
    if not owner:
        return
    Upload.objects.filter(id__in=owner).update(
        message_id=Case(*(When(id=i, then=Value(m.id)) for i, m in owner.items()))
    )
    for i, message in owner.items():
        files[i].message = message


def _message_for_change(actor: User, message_id: int) -> tuple[Message, bool]:
    """The message if `actor` may see it, and whether they are a member of its room.

    NoSuchMessage for a message that does not exist, was deleted, or is in a
    room the actor may not read: the same answer for all three.
    """
    return selectors.message_for_reader(actor, message_id)


def _writable(message: Message, is_member: bool) -> None:
    room = message.room
    access.check_write(
        room.slug, public=access.is_public(room), is_member=is_member, archived=room.is_archived
    )


def message_edit(*, actor: User, message_id: int, body: str) -> Message:
    """Replace the text of `actor`'s own message and tell the room; marks it edited.

    A message that carries files may be left with no text.
    """
    message, is_member = _message_for_change(actor, message_id)
    body_validate(body, may_be_blank=Upload.objects.filter(message=message).exists())
    _writable(message, is_member)
    if message.author_id != actor.pk:
        raise ChatError(Code.FORBIDDEN, "You can only edit your own messages.")
    [resolved] = mentions.resolve_many([mentions.MentionRequest(message.room_id, actor, body)])
    if resolved.error is not None:
        raise resolved.error
    users = resolved.users
    message.body = body
    message.html = render(body, resolved.highlighted)
    message.broadcast = resolved.broadcast
    message.edited = timezone.now()
    with logged_change() as items:
        message.save(update_fields=["body", "html", "broadcast", "edited"])
        Mention.objects.filter(message=message).delete()
        Mention.objects.bulk_create([Mention(message=message, user=u) for u in users])
        event = Event.objects.create(kind="message_edited", room=message.room, message=message)
        text = events.encode(
            events.message_edited_event(
                message, message.room.slug, event.seq, [u.username for u in users]
            )
        )
        items.append(Item(text, (message.room_id,), seq=event.seq))
        if message.thread_id is not None:
            thread_services.reply_edited(message, users, items)
    return message


def message_delete(*, actor: User, message_id: int, as_staff: bool = False) -> None:
    """Delete a message for everyone: its author may, and so may moderators and admins.

    The row stays (its nonce still answers a retried send) without its text,
    reactions, mentions or files (deleted from the storage). `as_staff`: asked
    from the Django admin, where staff reach rooms they are not members of.
    """
    if as_staff and access.staff_sees(is_staff=actor.is_staff):
        found = Message.objects.select_related("room", "author").filter(
            pk=message_id, is_deleted=False
        )
        message = found.first()
        if message is None:
            raise NoSuchMessage()
        is_member = Membership.objects.filter(room=message.room, user=actor).exists()
    else:
        message, is_member = _message_for_change(actor, message_id)
    if message.author_id != actor.pk and not actor.is_moderator:
        raise ChatError(Code.FORBIDDEN, "You can only delete your own messages.")
    if message.author_id == actor.pk:
        _writable(message, is_member)
    with logged_change() as items:
        if message.author_id != actor.pk:  # moderation, not someone tidying up
            audit_record(
                action="message.delete",
                actor=actor,
                target=f"room:{message.room.slug}",
                data={"message": message.pk, "author": message.author.username},
            )
        Message.objects.filter(pk=message.pk).update(is_deleted=True, body="", html="")
        Reaction.objects.filter(message=message).delete()
        Mention.objects.filter(message=message).delete()
        # Its files go with it: unreachable at once, their bytes freed after the commit.
        uploads_free(uploads=list(Upload.objects.filter(message=message)))
        data = {"room": message.room.slug, "id": message.pk}
        items.append(record("message_deleted", data, room=message.room))
        if message.thread_id is not None:
            thread_services.reply_deleted(message, items)


EMOJI_MAX_CHARS = 32
# Distinct reactions on one message: by one person, and in all.
REACTIONS_PER_USER = 20
REACTIONS_PER_MESSAGE = 50


def emoji_validate(value: str) -> None:
    """One emoji, as Unicode lists them (the `emoji` package's data): nothing else.

    Words, arbitrary text, right-to-left overrides and zero-width characters
    are not reactions; skin tones, flags and keycaps are.
    """
    if not value or len(value) > EMOJI_MAX_CHARS or not emoji_data.is_emoji(value):
        raise ChatError(Code.INVALID, "A reaction must be one emoji.")


def reaction_toggle(*, actor: User, message_id: int, emoji: str) -> list[str]:
    """Add `actor`'s `emoji` reaction to a message, or take it back; returns who has it now.

    A message holds at most REACTIONS_PER_MESSAGE distinct emoji, at most
    REACTIONS_PER_USER of them from one person.
    """
    emoji_validate(emoji)
    message, is_member = _message_for_change(actor, message_id)
    _writable(message, is_member)
    with logged_change() as items:
        removed, _ = Reaction.objects.filter(message=message, user=actor, emoji=emoji).delete()
        if not removed:
            on_message = Reaction.objects.filter(message=message)
            if on_message.filter(user=actor).count() >= REACTIONS_PER_USER:
                raise ChatError(Code.FORBIDDEN, f"At most {REACTIONS_PER_USER} reactions each.")
            present = set(on_message.values_list("emoji", flat=True).distinct())
            if emoji not in present and len(present) >= REACTIONS_PER_MESSAGE:
                raise ChatError(
                    Code.FORBIDDEN, f"A message takes at most {REACTIONS_PER_MESSAGE} reactions."
                )
            Reaction.objects.create(message=message, user=actor, emoji=emoji)
        users = selectors.reaction_users(message.pk, emoji)
        data = {"room": message.room.slug, "id": message.pk, "emoji": emoji, "users": users}
        items.append(record("reaction", data, room=message.room))
    return users


# --- Read markers -----------------------------------------------------------


@dataclass(frozen=True)
class ReadRequest:
    user: User
    room: str
    message_id: int


def read_marker_set(*, user: User, room: str, message_id: int) -> dict[str, Any]:
    """Move `user`'s read marker in `room` to `message_id` (back too: "unread from here").

    Returns the marker and the server's unread and mention counts. When the
    marker moves, every socket of the user (other tabs and devices) is told;
    when it does not, nothing is locked, logged or sent.
    """
    [result] = read_markers_set([ReadRequest(user, room, message_id)])
    if isinstance(result, ChatError):
        raise result
    if result is None:  # unchanged: the counts as they are
        found, _ = _room_for_member(user, room)
        return {"room": found.slug, **selectors.unread_counts(user.pk, [found.id])[found.id]}
    return result


def read_markers_set(requests: list[ReadRequest]) -> list[dict[str, Any] | ChatError | None]:
    """`read_marker_set` for a batch; the last request per user and room wins.

    Each request gets the `read` event's data if its marker moved, None if it
    did not move (or a later request in the batch for the same marker took
    its place), or a ChatError. Markers that do not move cost two queries and
    no lock; those that do move are written, counted and logged together, in
    one logged change with a constant number of queries.
    """
    results: list[dict[str, Any] | ChatError | None] = [None] * len(requests)
    last: dict[tuple[int, str], int] = {}
    for i, req in enumerate(requests):
        last[(req.user.pk, req.room)] = i
    rooms = selectors.room_access_many(set(last))
    wanted: dict[tuple[int, int], tuple[int, Room, int]] = {}  # (user, room id) -> (i, room, id)
    for key, i in last.items():
        try:
            room = _room_checked(key[1], rooms.get(key), write=False)
        except ChatError as exc:
            results[i] = exc
        else:
            wanted[(key[0], room.id)] = (i, room, requests[i].message_id)
    if not wanted:
        return results
    current = selectors.read_markers({user_id for user_id, _ in wanted}, {r for _, r in wanted})
    latest = selectors.latest_message_ids({room_id for _, room_id in wanted})
    moves: dict[int, int] = {}  # membership id -> new marker
    movers: dict[int, tuple[int, Room]] = {}  # membership id -> (request index, room)
    for (user_id, room_id), (i, room, message_id) in wanted.items():
        membership_id, marker = current[(user_id, room_id)]
        new = min(message_id, latest.get(room_id, 0))
        if new != marker:
            moves[membership_id] = new
            movers[membership_id] = (i, room)
    metrics.READ_MARKERS.labels("unchanged").inc(len(requests) - len(moves))
    if not moves:
        return results
    with logged_change() as items:
        moved = _markers_move(moves)
        counts = selectors.unread_counts_of(moved)
        logged = []
        for membership_id in moved:
            i, room = movers[membership_id]
            user_id, found = counts[membership_id]
            logged.append((i, user_id, room, {"room": room.slug, **found}))
        rows = Event.objects.bulk_create(
            [Event(kind="read", user_id=user_id, data=data) for _, user_id, _, data in logged]
        )
        for (i, user_id, _, data), row in zip(logged, rows, strict=True):
            text = events.encode(events.stored_event("read", data, row.seq))
            items.append(Item(text, user=user_id, seq=row.seq))
            results[i] = data
    metrics.READ_MARKERS.labels("moved").inc(len(moved))
    return results


def _markers_move(moves: dict[int, int]) -> list[int]:
    """Set these memberships' read markers; the ids of those that changed. One query.

    A marker another process moved to the same place meanwhile does not count
    as moved, so it is not announced twice.
    """
    table = Membership._meta.db_table
    rows = ", ".join(["(%s, %s)"] * len(moves))
    sql = (
        f"WITH v(id, marker) AS (VALUES {rows}) "  # noqa: S608  (placeholders only)
        f"UPDATE {table} SET last_read_id = v.marker FROM v "
        f"WHERE {table}.id = v.id AND {table}.last_read_id <> v.marker "
        f"RETURNING {table}.id"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [value for pair in moves.items() for value in pair])
        return sorted(row[0] for row in cursor.fetchall())


# --- Rooms and membership -------------------------------------------------------


def _room_checked(slug: str, found: tuple[Room, bool] | None, *, write: bool) -> Room:
    """The room of a room_access_many answer, if its user is a member (and may write to it)."""
    if found is None:
        raise NoSuchRoom(slug)
    room, is_member = found
    public = access.is_public(room)
    if write:
        access.check_write(slug, public=public, is_member=is_member, archived=room.is_archived)
    else:
        access.check_member(slug, public=public, is_member=is_member)
    return room


def _room_for_member(user: User, slug: str) -> tuple[Room, Membership]:
    room, membership = selectors.room_and_membership(user, slug)
    access.check_member(slug, public=access.is_public(room), is_member=membership is not None)
    assert membership is not None
    return room, membership


def _room_for_reader(user: User, slug: str) -> tuple[Room, Membership | None]:
    return selectors.room_and_membership(user, slug)


def _room_for_change(user: User, slug: str, *, as_staff: bool) -> Room:
    """The room a change is asked for: as a reader, or as staff moderating from the admin.

    Staff working in the Django admin see every room, private ones included,
    without being members; `as_staff` lets them name one (access.staff_sees).
    Whether they may change it is still the caller's role check.
    """
    if as_staff and access.staff_sees(is_staff=user.is_staff):
        found = Room.objects.filter(slug=slug).first()
        if found is None:
            raise NoSuchRoom(slug)
        return found
    room, _ = _room_for_reader(user, slug)
    return room


def _latest_message_id(room: Room) -> int:
    return Message.objects.filter(room=room).aggregate(m=Max("id"))["m"] or 0


def _member_add(room: Room, user: User, action: str, by: User, *, to_room: bool = True) -> Item:
    """Make `user` a member (read up to now) and log it; the caller holds a logged change."""
    Membership.objects.create(room=room, user=user, last_read_id=_latest_message_id(room))
    data = {"room": events.room_data(room), "user": user.username, "action": action}
    data["by"] = by.username
    return record(
        "member", data, room=room, user_id=user.pk, to_room=to_room, op=Op.SUBSCRIBE, arg=room.id
    )


def _member_drop(room: Room, user: User, action: str, by: User) -> Item:
    Membership.objects.filter(room=room, user=user).delete()
    data = {"room": events.room_data(room), "user": user.username, "action": action}
    data["by"] = by.username
    return record("member", data, room=room, user_id=user.pk, op=Op.UNSUBSCRIBE, arg=room.id)


ROOM_NAME_MAX = 80
ROOM_TOPIC_MAX = 250


def _room_name_validate(name: object) -> str:
    if not isinstance(name, str) or not name.strip():
        raise ChatError(Code.INVALID, "A room needs a name.")
    name = name.strip()
    if len(name) > ROOM_NAME_MAX or _BODY_REFUSED.search(name) or "\n" in name:
        raise ChatError(
            Code.INVALID, f"A room name is at most {ROOM_NAME_MAX} characters, one line."
        )
    return name


def _room_topic_validate(topic: object) -> str:
    if not isinstance(topic, str):
        raise ChatError(Code.INVALID, "topic must be a string.")
    topic = topic.strip()
    if len(topic) > ROOM_TOPIC_MAX or _BODY_REFUSED.search(topic):
        raise ChatError(Code.INVALID, f"A topic is at most {ROOM_TOPIC_MAX} characters.")
    return topic


def _hourly(what: str, actor: User, limit: int, doing: str) -> None:
    if not hourly_allowed(what, actor.pk, limit):
        raise ChatError(Code.RATE_LIMITED, f"You have {doing} in the last hour; try again later.")


def room_create(
    *, actor: User, name: str, slug: str = "", topic: str = "", private: bool = False
) -> Room:
    """Create a channel; its creator is its first member. Slugs are unique.

    A slug taken by a room the actor can see is refused (`room_exists`); one
    taken by a private room they cannot see is not revealed: the room gets
    the next free slug (`slug-2`, `slug-3`, ...), which the answer carries.
    """
    name = _room_name_validate(name)
    topic = _room_topic_validate(topic)
    _hourly("rooms", actor, settings.CHAT_ROOMS_PER_HOUR, "created too many rooms")
    wanted = slugify(slug or name)[:60].strip("-")
    if not wanted or wanted.startswith("dm-"):
        raise ChatError(Code.INVALID, "Choose a name or slug with letters or digits.")
    for attempt in range(1, 50):
        candidate = wanted if attempt == 1 else f"{wanted}-{attempt}"
        room = Room(
            slug=candidate, name=name, topic=topic, is_private=bool(private), created_by=actor
        )
        try:
            with logged_change() as items:
                room.save()
                items.append(_member_add(room, actor, "joined", actor))
        except IntegrityError:
            try:
                selectors.room_for_reader(actor, candidate)
            except NoSuchRoom:
                continue  # someone else's private room: say nothing, take another slug
            raise ChatError(Code.ROOM_EXISTS, f"There is already a room #{candidate}.") from None
        return room
    raise ChatError(Code.ROOM_EXISTS, f"There is already a room #{wanted}.")


def room_update(
    *,
    actor: User,
    room: str,
    name: str | None = None,
    topic: str | None = None,
    archived: bool | None = None,
    as_staff: bool = False,
) -> Room:
    """Rename a channel, change its topic, archive or unarchive it: its creator or an admin.

    `as_staff`: the change comes from the Django admin, where staff reach
    rooms they are not members of (the role rule still applies).
    """
    found = _room_for_change(actor, room, as_staff=as_staff)
    if found.is_direct or not (found.created_by_id == actor.pk or actor.is_chat_admin):
        raise ChatError(Code.FORBIDDEN, "Only the room's creator or an admin can change it.")
    if archived and found.slug == DEFAULT_ROOM_SLUG:
        raise ChatError(Code.FORBIDDEN, f"#{DEFAULT_ROOM_SLUG} cannot be archived.")
    if name is not None:
        found.name = _room_name_validate(name)
    if topic is not None:
        found.topic = _room_topic_validate(topic)
    was_archived = found.is_archived
    if archived is not None:
        found.is_archived = bool(archived)
    with logged_change() as items:
        found.save(update_fields=["name", "topic", "is_archived"])
        op = Op.NONE
        if archived is not None and bool(archived) != was_archived:
            op = Op.ARCHIVE if found.is_archived else Op.UNARCHIVE
            audit_record(
                action="room.archive" if found.is_archived else "room.unarchive",
                actor=actor,
                target=f"room:{found.slug}",
            )
        data = {"room": events.room_data(found)}
        items.append(record("room", data, room=found, op=op, arg=found.id))
    return found


def room_join(*, actor: User, room: str) -> Room:
    """Join a public channel; the user's open sockets start carrying it at once."""
    found, membership = _room_for_reader(actor, room)
    if membership is not None:
        return found
    if not access.may_join(found):  # only an invitation lets one into a private room
        raise NoSuchRoom(room)
    if found.is_archived:
        raise RoomArchived(found.slug)
    with logged_change() as items:
        items.append(_member_add(found, actor, "joined", actor))
    return found


def room_leave(*, actor: User, room: str) -> None:
    """Leave a room; the user's open sockets stop carrying it at once."""
    found, _ = _room_for_member(actor, room)
    if found.slug == DEFAULT_ROOM_SLUG:
        raise ChatError(Code.FORBIDDEN, f"Everyone is a member of #{DEFAULT_ROOM_SLUG}.")
    with logged_change() as items:
        items.append(_member_drop(found, actor, "left", actor))


def _active_user(username: str) -> User:
    user = User.objects.filter(username=username, is_active=True).first()
    if user is None:
        raise NoSuchUser()
    return user


def room_invite(*, actor: User, room: str, username: str) -> User:
    """Add someone to a channel the actor belongs to (the way into a private channel)."""
    found, _ = _room_for_member(actor, room)
    if found.is_direct:
        raise ChatError(
            Code.FORBIDDEN, "Start a new conversation to add people to a direct message."
        )
    if found.is_archived:
        raise RoomArchived(found.slug)
    invitee = _active_user(username)
    if Membership.objects.filter(room=found, user=invitee).exists():
        return invitee
    _hourly("invites", actor, settings.CHAT_INVITES_PER_HOUR, "invited too many people")
    with logged_change() as items:
        if Membership.objects.filter(room=found, user=invitee).exists():
            return invitee
        items.append(_member_add(found, invitee, "invited", actor))
    return invitee


def room_member_remove(*, actor: User, room: str, username: str, as_staff: bool = False) -> None:
    """Remove a member: the room's creator, a moderator or an admin may.

    The removed member's sockets stop receiving the room at once. `as_staff`:
    asked from the Django admin, where staff reach rooms they are not in.
    """
    found = _room_for_change(actor, room, as_staff=as_staff)
    if not (found.created_by_id == actor.pk or actor.is_moderator) or found.is_direct:
        raise ChatError(
            Code.FORBIDDEN, "Only the room's creator or a moderator can remove members."
        )
    if found.slug == DEFAULT_ROOM_SLUG:
        raise ChatError(Code.FORBIDDEN, f"Everyone is a member of #{DEFAULT_ROOM_SLUG}.")
    member = User.objects.filter(username=username).first()
    if member is None or not Membership.objects.filter(room=found, user=member).exists():
        raise ChatError(Code.NOT_FOUND, "No such member.")
    with logged_change() as items:
        items.append(_member_drop(found, member, "removed", actor))
        audit_record(
            action="room.member_remove",
            actor=actor,
            target=f"room:{found.slug}",
            data={"user": member.username},
        )


def room_delete(*, actor: User, room: str) -> None:
    """Delete a room for good, with its messages: an admin's action (the Django admin).

    Its own events go with it, so each member is told on their own sockets (a
    `member` event, action `deleted`) by rows that name no room: a page that
    was away replays it, and nobody who was not a member hears of the room.
    Every process's fan-out stops carrying the room for those members. What
    it was is in the audit log, in the same transaction. A constant number of
    statements however many members. The files its messages carried go too:
    their rows now, the files themselves once this commits (a deleted
    message's files go the same way).
    """
    if not actor.is_chat_admin:
        raise ChatError(Code.FORBIDDEN, "Only an admin can delete a room.")
    if room == DEFAULT_ROOM_SLUG:
        raise ChatError(Code.FORBIDDEN, f"#{DEFAULT_ROOM_SLUG} cannot be deleted.")
    with logged_change() as items:
        # Inside the order: a member who joined just before is told too, and
        # nobody can join once this commits.
        found = Room.objects.filter(slug=room).first()
        if found is None:
            raise NoSuchRoom(room)
        room_id, data = found.id, events.room_data(found)
        members = User.objects.filter(memberships__room=found).order_by("pk")
        told = [
            (user_id, {"room": data, "user": username, "action": "deleted", "by": actor.username})
            for user_id, username in members.values_list("pk", "username")
        ]
        # Without this they would outlive the room: a message's files point
        # back at it with SET_NULL, so deleting the messages would only make
        # them unsent uploads, still their uploader's to download and send.
        files = list(Upload.objects.filter(message__room=found))
        audit_record(
            action="room.delete",
            actor=actor,
            target=f"room:{found.slug}",
            data={
                "name": found.name,
                "kind": found.kind,
                "messages": found.messages.count(),
                "files": len(files),
            },
        )
        uploads_free(uploads=files)
        found.delete()
        items.extend(record_for_users("member", told, op=Op.UNSUBSCRIBE, arg=room_id))


DM_MAX_PEOPLE = 8


def dm_open(*, actor: User, usernames: list[str]) -> Room:
    """The direct conversation between the actor and these people, created the first time.

    1:1 or a group of up to 8 people in all; the same set of people always
    gets the same conversation.
    """
    names = {n for n in usernames if isinstance(n, str)} - {actor.username}
    if not names or len(names) > DM_MAX_PEOPLE - 1:
        raise ChatError(Code.INVALID, f"Pick 1 to {DM_MAX_PEOPLE - 1} other people.")
    others = list(User.objects.filter(username__in=names, is_active=True))
    if len(others) != len(names):
        raise NoSuchUser()
    people = sorted([actor, *others], key=lambda u: u.pk)
    key = "-".join(str(u.pk) for u in people)
    existing = Room.objects.filter(dm_key=key).first()
    if existing is not None:
        # Someone who left the conversation and opens it again is back in it.
        if not Membership.objects.filter(room=existing, user=actor).exists():
            try:
                with logged_change() as items:
                    items.append(_member_add(existing, actor, "joined", actor))
            except IntegrityError:  # back at the same moment from elsewhere
                pass
        return existing
    if len(people) > 2:  # adding people to a group without asking them: bounded
        _hourly("group_dms", actor, settings.CHAT_GROUP_DMS_PER_HOUR, "started too many groups")
    name = ", ".join(sorted(u.username for u in people))
    if len(name) > ROOM_NAME_MAX:  # pages label a conversation by its people, not by this
        name = name[: ROOM_NAME_MAX - 1] + "…"
    room = Room(
        slug=f"dm-{selectors.dm_slug_suffix(key)}",
        name=name,
        kind=Room.Kind.DIRECT,
        is_private=True,
        dm_key=key,
        created_by=actor,
    )
    try:
        with logged_change() as items:
            room.save()
            # Each person is told only of their own arrival: the fan-out subscribes
            # them one event at a time, so an event to the room would reach the
            # people added before it live, but everyone on a replay.
            for person in people:
                items.append(_member_add(room, person, "joined", actor, to_room=False))
    except IntegrityError:  # the same conversation, started at the same moment elsewhere
        return Room.objects.get(dm_key=key)
    return room


def member_add_to_default_room(user: User) -> None:
    """Make `user` a member of #general (every account is), read up to now."""
    room = Room.objects.filter(slug=DEFAULT_ROOM_SLUG).first()
    if room is not None:
        Membership.objects.get_or_create(
            room=room, user=user, defaults={"last_read_id": _latest_message_id(room)}
        )
