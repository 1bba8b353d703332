"""Chat writes. Every way of changing chat state goes through here."""

import logging
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.db.models import Max
from django.utils import timezone
from django.utils.text import slugify

from accounts.models import User

from . import events, selectors
from .formatting import mentions as mentioned_names
from .formatting import render
from .models import DEFAULT_ROOM_SLUG, Event, Membership, Mention, Message, Reaction, Room

log = logging.getLogger(__name__)

BODY_MAX_CHARS = 10_000
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
        raise ChatError("invalid", "The message contains control characters or broken Unicode.")


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


@contextmanager
def _logged_change() -> Iterator[list[events.Item]]:
    """Commit a change and the events it logs, then publish them, in the one global order.

    The caller appends fan-out items to the yielded list; they are published
    only if the transaction commits, before the next change may commit.
    """
    items: list[events.Item] = []
    with _commit_and_publish_in_order():
        with transaction.atomic():
            yield items
        events.publish_quietly(items, f"{len(items)} event(s)")


def _log(
    kind: str,
    data: dict[str, Any],
    *,
    room: Room | None = None,
    user: User | None = None,
    to_room: bool = True,
    op: list[Any] | None = None,
) -> events.Item:
    """Record one event and return its fan-out item (room members and/or one user)."""
    event = Event.objects.create(kind=kind, room=room if to_room else None, user=user, data=data)
    text = events.encode(events.stored_event(kind, data, event.seq))
    rooms = [room.id] if room is not None and to_room else []
    return [rooms, user.pk if user is not None else None, event.seq, text, op]


# --- Messages ---------------------------------------------------------------


@dataclass(frozen=True)
class SendRequest:
    author: User
    room: str
    body: str
    nonce: str | None


def message_send(*, author: User, room: str, body: str, nonce: str | None) -> SendResult:
    """Store a message from `author` in the room with slug `room`, then broadcast it.

    Raises ChatError for a bad body, a room the author cannot see
    (`no_such_room`), has not joined (`not_member`) or that is archived
    (`forbidden`). A repeated nonce from the same author returns the message
    already stored (created=False) and broadcasts nothing. The broadcast
    happens only after the commit.
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
        elif found[0].is_archived:
            results[i] = ChatError("forbidden", f"#{found[0].slug} is archived (read-only).")
        else:
            allowed.append((i, found[0]))

    if allowed:
        with _commit_and_publish_in_order():
            _store(requests, allowed, results)
    return results  # type: ignore[return-value]


def _mentions_resolve(wanted: dict[int, set[str]]) -> dict[int, dict[str, User]]:
    """For room id -> lowercase names: the members of each room with those usernames."""
    if not wanted:
        return {}
    found: dict[int, dict[str, User]] = {}
    for room_id, user in selectors.members_named(wanted):
        found.setdefault(room_id, {})[user.username.lower()] = user
    return found


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

    # Mentions: only bodies with an "@" cost anything, and one query covers the batch.
    named: list[set[str]] = [
        mentioned_names(m.body) if "@" in m.body else set() for _, m, _ in to_create
    ]
    wanted: dict[int, set[str]] = {}
    for (_, m, _), names in zip(to_create, named, strict=True):
        if names:
            wanted.setdefault(m.room_id, set()).update(names)
    members = _mentions_resolve(wanted)
    mentioned: list[list[User]] = []
    for (_, m, _), names in zip(to_create, named, strict=True):
        in_room = members.get(m.room_id, {})
        users = [in_room[n] for n in sorted(names) if n in in_room]
        mentioned.append(users)
        m.html = render(m.body, frozenset(u.username.lower() for u in users))

    with transaction.atomic():
        Message.objects.bulk_create([message for _, message, _ in to_create])
        logged = Event.objects.bulk_create(
            [Event(kind="message", room_id=m.room_id, message=m) for _, m, _ in to_create]
        )
        Mention.objects.bulk_create(
            [
                Mention(message=m, user=u)
                for (_, m, _), users in zip(to_create, mentioned, strict=True)
                for u in users
            ]
        )
        created = [SendResult(message, slug, created=True) for _, message, slug in to_create]
        items = [
            [
                [m.room_id],
                None,
                event.seq,
                events.encode(
                    events.message_event(m, slug, event.seq, mentions=[u.username for u in users])
                ),
                None,
            ]
            for (_, m, slug), event, users in zip(to_create, logged, mentioned, strict=True)
        ]
        transaction.on_commit(lambda: events.publish_quietly(items, f"{len(items)} message(s)"))
    for (i, _, _), result in zip(to_create, created, strict=True):
        results[i] = result
    for i, first in repeats:
        original = results[first]
        assert isinstance(original, SendResult)
        results[i] = SendResult(original.message, original.room_slug, created=False)


def _message_for_change(actor: User, message_id: int) -> tuple[Message, bool]:
    """The message if `actor` may see it, and whether they are a member of its room.

    ChatError("not_found") for a message that does not exist, was deleted, or
    is in a room the actor may not read: the same answer for all three.
    """
    try:
        return selectors.message_for_reader(actor, message_id)
    except selectors.MessageNotFound:
        raise ChatError("not_found", "No such message.") from None


def _writable(message: Message, is_member: bool) -> None:
    if not is_member:
        raise ChatError("not_member", f"You are not a member of #{message.room.slug}.")
    if message.room.is_archived:
        raise ChatError("forbidden", f"#{message.room.slug} is archived (read-only).")


def message_edit(*, actor: User, message_id: int, body: str) -> Message:
    """Replace the text of `actor`'s own message and tell the room; marks it edited."""
    body_validate(body)
    message, is_member = _message_for_change(actor, message_id)
    _writable(message, is_member)
    if message.author_id != actor.pk:
        raise ChatError("forbidden", "You can only edit your own messages.")
    names = mentioned_names(body) if "@" in body else set()
    users = [u for _, u in selectors.members_named({message.room_id: names})] if names else []
    users.sort(key=lambda u: u.username.lower())
    message.body = body
    message.html = render(body, frozenset(u.username.lower() for u in users))
    message.edited = timezone.now()
    with _logged_change() as items:
        message.save(update_fields=["body", "html", "edited"])
        Mention.objects.filter(message=message).delete()
        Mention.objects.bulk_create([Mention(message=message, user=u) for u in users])
        event = Event.objects.create(kind="message_edited", room=message.room, message=message)
        text = events.encode(
            events.message_edited_event(
                message, message.room.slug, event.seq, [u.username for u in users]
            )
        )
        items.append([[message.room_id], None, event.seq, text, None])
    return message


def message_delete(*, actor: User, message_id: int) -> None:
    """Delete a message for everyone: its author may, and so may moderators and admins.

    The row stays (its nonce still answers a retried send) without its text,
    reactions or mentions.
    """
    message, is_member = _message_for_change(actor, message_id)
    if message.author_id != actor.pk and not actor.is_moderator:
        raise ChatError("forbidden", "You can only delete your own messages.")
    if message.author_id == actor.pk:
        _writable(message, is_member)
    with _logged_change() as items:
        Message.objects.filter(pk=message.pk).update(is_deleted=True, body="", html="")
        Reaction.objects.filter(message=message).delete()
        Mention.objects.filter(message=message).delete()
        data = {"room": message.room.slug, "id": message.pk}
        items.append(_log("message_deleted", data, room=message.room))


EMOJI_MAX_CHARS = 32
# Emoji are not ASCII (keycaps aside: 1️⃣ #️⃣ *️⃣), so a word can never be
# one; nor are spaces or control characters part of one.
_EMOJI_REFUSED = re.compile(r"[\s\x00-\x1f\x7f-\x9f\ud800-\udfff]|[^\x80-\U0010ffff0-9#*]")


def reaction_toggle(*, actor: User, message_id: int, emoji: str) -> list[str]:
    """Add `actor`'s `emoji` reaction to a message, or take it back; returns who has it now."""
    if not emoji or len(emoji) > EMOJI_MAX_CHARS or _EMOJI_REFUSED.search(emoji) or emoji.isascii():
        raise ChatError("invalid", f"emoji must be an emoji (1 to {EMOJI_MAX_CHARS} characters).")
    message, is_member = _message_for_change(actor, message_id)
    _writable(message, is_member)
    with _logged_change() as items:
        removed, _ = Reaction.objects.filter(message=message, user=actor, emoji=emoji).delete()
        if not removed:
            Reaction.objects.create(message=message, user=actor, emoji=emoji)
        users = selectors.reaction_users(message.pk, emoji)
        data = {"room": message.room.slug, "id": message.pk, "emoji": emoji, "users": users}
        items.append(_log("reaction", data, room=message.room))
    return users


# --- Read markers -----------------------------------------------------------


def read_marker_set(*, user: User, room: str, message_id: int) -> dict[str, Any]:
    """Move `user`'s read marker in `room` to `message_id` (back too: "unread from here").

    Tells every socket of the user (other tabs and devices) the new marker and
    the server's unread and mention counts. Nothing is logged when the marker
    does not move.
    """
    found, membership = _room_for_member(user, room)
    with _logged_change() as items:
        latest = Message.objects.filter(room=found).aggregate(m=Max("id"))["m"] or 0
        marker = min(message_id, latest)
        moved = Membership.objects.filter(pk=membership.pk).exclude(last_read_id=marker)
        changed = moved.update(last_read_id=marker)
        unread, mentions = selectors.unread_counts(user.pk, [found.id]).get(found.id, (0, 0, 0))[1:]
        data = {"room": found.slug, "last_read_id": marker, "unread": unread, "mentions": mentions}
        if changed:
            items.append(_log("read", data, room=found, user=user, to_room=False))
    return data


# --- Rooms and membership -------------------------------------------------------


def _room_for_member(user: User, slug: str) -> tuple[Room, Membership]:
    try:
        room, membership = selectors.room_and_membership(user, slug)
    except selectors.RoomNotFound:
        raise ChatError("no_such_room", f"There is no room #{slug[:64]}.") from None
    if membership is None:
        raise ChatError("not_member", f"You are not a member of #{room.slug}.")
    return room, membership


def _room_for_reader(user: User, slug: str) -> tuple[Room, Membership | None]:
    try:
        return selectors.room_and_membership(user, slug)
    except selectors.RoomNotFound:
        raise ChatError("no_such_room", f"There is no room #{slug[:64]}.") from None


def _latest_message_id(room: Room) -> int:
    return Message.objects.filter(room=room).aggregate(m=Max("id"))["m"] or 0


def _member_add(
    room: Room, user: User, action: str, by: User, *, to_room: bool = True
) -> events.Item:
    """Make `user` a member (read up to now) and log it; the caller holds a logged change."""
    Membership.objects.create(room=room, user=user, last_read_id=_latest_message_id(room))
    data = {"room": events.room_data(room), "user": user.username, "action": action}
    data["by"] = by.username
    return _log("member", data, room=room, user=user, to_room=to_room, op=["sub", room.id])


def _member_drop(room: Room, user: User, action: str, by: User) -> events.Item:
    Membership.objects.filter(room=room, user=user).delete()
    data = {"room": events.room_data(room), "user": user.username, "action": action}
    data["by"] = by.username
    return _log("member", data, room=room, user=user, op=["unsub", room.id])


ROOM_NAME_MAX = 80
ROOM_TOPIC_MAX = 250


def _room_name_validate(name: object) -> str:
    if not isinstance(name, str) or not name.strip():
        raise ChatError("invalid", "A room needs a name.")
    name = name.strip()
    if len(name) > ROOM_NAME_MAX or _BODY_REFUSED.search(name) or "\n" in name:
        raise ChatError("invalid", f"A room name is at most {ROOM_NAME_MAX} characters, one line.")
    return name


def _room_topic_validate(topic: object) -> str:
    if not isinstance(topic, str):
        raise ChatError("invalid", "topic must be a string.")
    topic = topic.strip()
    if len(topic) > ROOM_TOPIC_MAX or _BODY_REFUSED.search(topic):
        raise ChatError("invalid", f"A topic is at most {ROOM_TOPIC_MAX} characters.")
    return topic


def room_create(
    *, actor: User, name: str, slug: str = "", topic: str = "", private: bool = False
) -> Room:
    """Create a channel; its creator is its first member. Slugs are unique."""
    name = _room_name_validate(name)
    topic = _room_topic_validate(topic)
    slug = slugify(slug or name)[:64].strip("-")
    if not slug or slug.startswith("dm-"):
        raise ChatError("invalid", "Choose a name or slug with letters or digits.")
    room = Room(slug=slug, name=name, topic=topic, is_private=bool(private), created_by=actor)
    try:
        with _logged_change() as items:
            room.save()
            items.append(_member_add(room, actor, "joined", actor))
    except IntegrityError:
        raise ChatError("room_exists", f"There is already a room #{slug}.") from None
    return room


def room_update(
    *,
    actor: User,
    room: str,
    name: str | None = None,
    topic: str | None = None,
    archived: bool | None = None,
) -> Room:
    """Rename a channel, change its topic, archive or unarchive it: its creator or an admin."""
    found, _ = _room_for_reader(actor, room)
    if found.is_direct or not (found.created_by_id == actor.pk or actor.is_chat_admin):
        raise ChatError("forbidden", "Only the room's creator or an admin can change it.")
    if archived and found.slug == DEFAULT_ROOM_SLUG:
        raise ChatError("forbidden", f"#{DEFAULT_ROOM_SLUG} cannot be archived.")
    if name is not None:
        found.name = _room_name_validate(name)
    if topic is not None:
        found.topic = _room_topic_validate(topic)
    if archived is not None:
        found.is_archived = bool(archived)
    with _logged_change() as items:
        found.save(update_fields=["name", "topic", "is_archived"])
        items.append(_log("room", {"room": events.room_data(found)}, room=found))
    return found


def room_join(*, actor: User, room: str) -> Room:
    """Join a public channel; the user's open sockets start carrying it at once."""
    found, membership = _room_for_reader(actor, room)
    if membership is not None:
        return found
    if found.is_private:  # readable but private: only an invitation lets one in
        raise ChatError("no_such_room", f"There is no room #{room[:64]}.")
    if found.is_archived:
        raise ChatError("forbidden", f"#{found.slug} is archived (read-only).")
    with _logged_change() as items:
        items.append(_member_add(found, actor, "joined", actor))
    return found


def room_leave(*, actor: User, room: str) -> None:
    """Leave a room; the user's open sockets stop carrying it at once."""
    found, _ = _room_for_member(actor, room)
    if found.slug == DEFAULT_ROOM_SLUG:
        raise ChatError("forbidden", f"Everyone is a member of #{DEFAULT_ROOM_SLUG}.")
    with _logged_change() as items:
        items.append(_member_drop(found, actor, "left", actor))


def _active_user(username: str) -> User:
    user = User.objects.filter(username=username, is_active=True).first()
    if user is None:
        raise ChatError("not_found", "No such user.")
    return user


def room_invite(*, actor: User, room: str, username: str) -> User:
    """Add someone to a channel the actor belongs to (the way into a private channel)."""
    found, _ = _room_for_member(actor, room)
    if found.is_direct:
        raise ChatError("forbidden", "Start a new conversation to add people to a direct message.")
    if found.is_archived:
        raise ChatError("forbidden", f"#{found.slug} is archived (read-only).")
    invitee = _active_user(username)
    with _logged_change() as items:
        if Membership.objects.filter(room=found, user=invitee).exists():
            return invitee
        items.append(_member_add(found, invitee, "invited", actor))
    return invitee


def room_member_remove(*, actor: User, room: str, username: str) -> None:
    """Remove a member: the room's creator, a moderator or an admin may.

    The removed member's sockets stop receiving the room at once.
    """
    found, _ = _room_for_reader(actor, room)
    if not (found.created_by_id == actor.pk or actor.is_moderator) or found.is_direct:
        raise ChatError("forbidden", "Only the room's creator or a moderator can remove members.")
    if found.slug == DEFAULT_ROOM_SLUG:
        raise ChatError("forbidden", f"Everyone is a member of #{DEFAULT_ROOM_SLUG}.")
    member = User.objects.filter(username=username).first()
    if member is None or not Membership.objects.filter(room=found, user=member).exists():
        raise ChatError("not_found", "No such member.")
    with _logged_change() as items:
        items.append(_member_drop(found, member, "removed", actor))


DM_MAX_PEOPLE = 8


def dm_open(*, actor: User, usernames: list[str]) -> Room:
    """The direct conversation between the actor and these people, created the first time.

    1:1 or a group of up to 8 people in all; the same set of people always
    gets the same conversation.
    """
    names = {n for n in usernames if isinstance(n, str)} - {actor.username}
    if not names or len(names) > DM_MAX_PEOPLE - 1:
        raise ChatError("invalid", f"Pick 1 to {DM_MAX_PEOPLE - 1} other people.")
    others = list(User.objects.filter(username__in=names, is_active=True))
    if len(others) != len(names):
        raise ChatError("not_found", "No such user.")
    people = sorted([actor, *others], key=lambda u: u.pk)
    key = "-".join(str(u.pk) for u in people)
    existing = Room.objects.filter(dm_key=key).first()
    if existing is not None:
        # Someone who left the conversation and opens it again is back in it.
        if not Membership.objects.filter(room=existing, user=actor).exists():
            try:
                with _logged_change() as items:
                    items.append(_member_add(existing, actor, "joined", actor))
            except IntegrityError:  # back at the same moment from elsewhere
                pass
        return existing
    room = Room(
        slug=f"dm-{selectors.dm_slug_suffix(key)}",
        name=", ".join(sorted(u.username for u in people)),
        kind=Room.Kind.DIRECT,
        is_private=True,
        dm_key=key,
        created_by=actor,
    )
    try:
        with _logged_change() as items:
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
