"""Chat reads, and the one place that decides who may see which room."""

import functools
import hashlib
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypedDict

import emoji as emoji_data
from django.db import connection, transaction
from django.db.models import (
    Count,
    Exists,
    F,
    FilteredRelation,
    IntegerField,
    Max,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Value,
)
from django.db.models.functions import Coalesce, Lower

from accounts.models import User

from . import access
from .errors import NoSuchMessage, NoSuchRoom
from .eventlog import Read
from .models import Event, EventLogHorizon, Membership, Mention, Message, Reaction, Room, Upload
from .reusable import ReusableQuery
from .uploads.data import attachment_data

if TYPE_CHECKING:
    from django_stubs_ext import WithAnnotations

    class _Counts(TypedDict):
        unread: int
        mentions: int
        thread_unread: int
        thread_mentions: int


HISTORY_DEFAULT_LIMIT = 50
HISTORY_MAX_LIMIT = 200


def room_for_reader(user: User, slug: str) -> Room:
    """The room `slug` if `user` may read it, else NoSuchRoom.

    One query. Public rooms are readable by every signed-in user; private
    rooms only by their members.
    """
    room = Room.objects.filter(slug=slug).filter(access.readable_by(user.pk)).first()
    if room is None:
        raise NoSuchRoom(slug)
    return room


# Built once: it is on every send's and read marker's path.
_ACCESS = ReusableQuery(
    lambda slugs, users: Room.objects.filter(slug__in=slugs).annotate(
        mine=FilteredRelation("memberships", condition=Q(memberships__user_id__in=users)),
        member_id=F("mine__user_id"),
    ),
    lists=2,
)


def room_access_many(pairs: set[tuple[int, str]]) -> dict[tuple[int, str], tuple[Room, bool]]:
    """For (user id, room slug) pairs: the room and whether the user is a member.

    Pairs whose room does not exist or is private to others are left out.
    One query, whatever the number of pairs: each room with its memberships
    of those users (it is on every send's path).
    """
    if not pairs:
        return {}
    slugs = sorted({slug for _, slug in pairs})
    users = sorted({user_id for user_id, _ in pairs})
    rows = _ACCESS.objects(Room, slugs, users)
    rooms: dict[str, Room] = {}
    joined: set[tuple[int, int]] = set()
    for row in rows:
        rooms.setdefault(row.slug, row)
        if row.member_id is not None:
            joined.add((row.member_id, row.id))
    found: dict[tuple[int, str], tuple[Room, bool]] = {}
    for user_id, slug in pairs:
        room = rooms.get(slug)
        if room is None:
            continue
        is_member = (user_id, room.id) in joined
        if not access.may_read(public=access.is_public(room), is_member=is_member):
            continue
        found[(user_id, slug)] = (room, is_member)
    return found


def messages_by_nonce_read(keys: set[tuple[int, str]]) -> Read | None:
    """The read that finds messages already stored under these (author id, nonce) pairs.

    A send runs it as soon as it holds the ordering lock (`chat.eventlog.Read`),
    so a retry committed by another process just before is found. The pairs
    are matched as row values so the (author, nonce) unique index answers it;
    an IN list per column made PostgreSQL read every message of those
    authors, slower with every message they had sent. None for no pairs.
    """
    if not keys:
        return None
    pairs = sorted(keys)
    rows = ", ".join(["(%s, %s)"] * len(pairs))
    sql = (
        f"SELECT id FROM {Message._meta.db_table} "  # noqa: S608  (placeholders only)
        f"WHERE nonce IS NOT NULL AND (author_id, nonce) IN (VALUES {rows})"
    )
    return Read(sql, [value for pair in pairs for value in pair])


def messages_by_nonce(read: Read | None) -> dict[tuple[int, str], Message]:
    """The messages `read` (from `messages_by_nonce_read`) found, by (author id, nonce).

    No query when it found none (the usual case: retries are rare), one otherwise.
    """
    ids = [row[0] for row in read.rows] if read is not None else []
    if not ids:
        return {}
    found = Message.objects.filter(id__in=ids).select_related("room", "author")
    return {(m.author_id, m.nonce): m for m in found if m.nonce is not None}


def rooms_of_member(user: User) -> list[Room]:
    """The rooms `user` has joined, by name (case-insensitive)."""
    return list(Room.objects.filter(memberships__user=user).order_by(Lower("name"), "pk"))


def room_ids_of_member(user_id: int) -> list[int]:
    return list(Membership.objects.filter(user_id=user_id).values_list("room_id", flat=True))


def room_member_count(room_id: int) -> int:
    return Membership.objects.filter(room_id=room_id).count()


def rooms_of_members(user_ids: set[int]) -> dict[int, list[tuple[int, str, bool, bool]]]:
    """user id -> (id, slug, private, archived) of each room they belong to. One query.

    `private` is whether only members may read it (access.is_public, negated).
    """
    rooms: dict[int, list[tuple[int, str, bool, bool]]] = {user_id: [] for user_id in user_ids}
    for user_id, room_id, slug, kind, private, archived in Membership.objects.filter(
        user_id__in=user_ids
    ).values_list(
        "user_id", "room_id", "room__slug", "room__kind", "room__is_private", "room__is_archived"
    ):
        hidden = not access.is_public_kind(kind, private)
        rooms[user_id].append((room_id, slug, hidden, archived))
    return rooms


def active_users_named(names: set[str]) -> dict[int, str]:
    """user id -> username of the active users with these (exact) names. One query."""
    return dict(
        User.objects.filter(username__in=names, is_active=True).values_list("id", "username")
    )


# What a message object shows (chat.events.message_data), so a page of them is one query.
MESSAGE_FIELDS = (
    "id",
    "room_id",
    "body",
    "html",
    "created",
    "edited",
    "nonce",
    "is_deleted",
    "thread_id",
    "in_channel",
    "reply_count",
    "last_reply_at",
    "repliers",
    "broadcast",
    "author__username",
)


def shown(prefix: str = "") -> Q:
    """Q for messages history shows: live ones, and deleted roots whose thread has replies."""
    return Q(**{f"{prefix}is_deleted": False}) | Q(**{f"{prefix}reply_count__gt": 0})


def _messages(
    room: Room, thread: int | None = None, in_room_only: bool = False
) -> QuerySet[Message]:
    qs = Message.objects.filter(room=room)
    if thread is not None:
        qs = qs.filter(thread_id=thread, is_deleted=False)
    else:
        qs = qs.filter(shown())
        if in_room_only:
            qs = qs.filter(in_room())
    return qs.select_related("author").only(*MESSAGE_FIELDS)


def messages_after(
    room: Room,
    after: int,
    limit: int,
    before: int | None = None,
    *,
    thread: int | None = None,
    in_room_only: bool = False,
) -> list[Message]:
    """The first `limit` messages with an id above `after` (catch-up), oldest first.

    With `thread`: that root's replies only.
    """
    qs = _messages(room, thread, in_room_only).filter(id__gt=after)
    if before is not None:
        qs = qs.filter(id__lt=before)
    return list(qs.order_by("id")[:limit])


def messages_before(
    room: Room,
    before: int | None,
    limit: int,
    *,
    thread: int | None = None,
    in_room_only: bool = False,
) -> list[Message]:
    """The newest `limit` messages below `before` (or of all), oldest first.

    `in_room_only`: what the room itself shows (top-level messages and replies
    also sent there), for a page that keeps thread-only replies in their thread.
    """
    qs = _messages(room, thread, in_room_only)
    if before is not None:
        qs = qs.filter(id__lt=before)
    page = list(qs.order_by("-id")[:limit])
    page.reverse()
    return page


def room_and_membership(user: User, slug: str) -> tuple[Room, Membership | None]:
    """The room `slug` if `user` may read it, with their membership (None: not joined).

    One query; NoSuchRoom for a room that does not exist or is private to others.
    """
    room = (
        Room.objects.filter(slug=slug)
        .filter(access.readable_by(user.pk))
        .annotate(
            membership_id=Subquery(
                Membership.objects.filter(room=OuterRef("pk"), user=user).values("pk")[:1]
            ),
            membership_last_read=Subquery(
                Membership.objects.filter(room=OuterRef("pk"), user=user).values("last_read_id")[:1]
            ),
        )
        .first()
    )
    if room is None:
        raise NoSuchRoom(slug)
    membership = None
    if room.membership_id is not None:
        membership = Membership(
            pk=room.membership_id, room=room, user=user, last_read_id=room.membership_last_read
        )
    return room, membership


def message_for_reader(user: User, message_id: int) -> tuple[Message, bool]:
    """A live message in a room `user` may read, and whether they are a member of that room."""
    message = (
        Message.objects.filter(pk=message_id, is_deleted=False)
        .filter(access.readable_by(user.pk, prefix="room__"))
        .select_related("room", "author")
        .annotate(is_member=Count("room__memberships", filter=Q(room__memberships__user=user)))
        .first()
    )
    if message is None:
        raise NoSuchMessage()
    return message, bool(message.is_member)


def reaction_users(message_id: int, emoji: str) -> list[str]:
    return list(
        Reaction.objects.filter(message_id=message_id, emoji=emoji)
        .order_by("id")
        .values_list("user__username", flat=True)
    )


def message_extras(
    message_ids: list[int],
) -> tuple[dict[int, dict[str, list[str]]], dict[int, list[str]]]:
    """Reactions ({emoji: usernames}) and mentioned usernames of these messages. Two queries."""
    reactions: dict[int, dict[str, list[str]]] = defaultdict(dict)
    mentions: dict[int, list[str]] = defaultdict(list)
    if not message_ids:
        return reactions, mentions
    for mid, emoji, username in (
        Reaction.objects.filter(message_id__in=message_ids)
        .order_by("id")
        .values_list("message_id", "emoji", "user__username")
    ):
        reactions[mid].setdefault(emoji, []).append(username)
    for mid, username in (
        Mention.objects.filter(message_id__in=message_ids)
        .order_by("user__username")
        .values_list("message_id", "user__username")
    ):
        mentions[mid].append(username)
    return reactions, mentions


def message_attachments(message_ids: list[int]) -> dict[int, list[dict[str, Any]]]:
    """The attachment objects of these messages, in the order they were uploaded. One query."""
    found: dict[int, list[dict[str, Any]]] = defaultdict(list)
    if not message_ids:
        return found
    for upload in Upload.objects.filter(message_id__in=message_ids).order_by("id"):
        assert upload.message_id is not None
        found[upload.message_id].append(attachment_data(upload))
    return found


def _count(qs: QuerySet[Message]) -> Coalesce:
    return Coalesce(
        Subquery(
            qs.order_by().values("room_id").annotate(n=Count("id")).values("n")[:1],
            output_field=IntegerField(),
        ),
        Value(0),
    )


def _counted(memberships: QuerySet[Membership]) -> "QuerySet[WithAnnotations[Membership, _Counts]]":
    """Memberships with `unread` (messages by others after the marker) and `mentions` of them.

    A reply counts in the room only when it was also sent to the channel;
    otherwise it counts in its thread, for the thread's followers, and the
    room carries those sums as `thread_unread` and `thread_mentions`.
    """
    unread = (
        Message.objects.filter(
            room_id=OuterRef("room_id"), id__gt=OuterRef("last_read_id"), is_deleted=False
        )
        .filter(in_room())
        .exclude(author_id=OuterRef("user_id"))
    )
    mentioned = unread.filter(mentioning(OuterRef(OuterRef("user_id"))))
    thread_unread, thread_mentions = room_thread_counts()
    return memberships.annotate(
        unread=_count(unread),
        mentions=_count(mentioned),
        thread_unread=thread_unread,
        thread_mentions=thread_mentions,
    )


def in_room() -> Q:
    """Q for messages shown in the room itself: top-level ones and replies also sent there."""
    return Q(thread__isnull=True) | Q(in_channel=True)


def mentioning(user_ref: Any) -> Q:
    """Q for messages that mention the user: a Mention row (named, group, @here) or @channel."""
    named = Mention.objects.filter(message_id=OuterRef("id"), user_id=user_ref)
    return Q(broadcast=Message.Broadcast.CHANNEL) | Q(Exists(named))


def room_thread_counts() -> tuple[Coalesce, Coalesce]:
    """Annotations for memberships: unread replies, and mentions, over the followed threads.

    Live replies by others after each followed thread's marker, in that
    room; through the follows of that member and room, so only those
    threads' newer replies are read.
    """
    replies = Message.objects.filter(
        thread__follows__user_id=OuterRef("user_id"),
        thread__follows__room_id=OuterRef("room_id"),
        thread__follows__following=True,
        thread__follows__last_read_id__lt=F("id"),
        is_deleted=False,
    ).exclude(author_id=OuterRef("user_id"))
    mentioned = replies.filter(mentioning(OuterRef(OuterRef("user_id"))))
    return _count(replies), _count(mentioned)


def unread_counts(user_id: int, room_ids: list[int] | None = None) -> dict[int, dict[str, int]]:
    """room id -> the user's ROOM_COUNTS there (marker, unread, mentions, threads'). One query."""
    memberships = Membership.objects.filter(user_id=user_id)
    if room_ids is not None:
        memberships = memberships.filter(room_id__in=room_ids)
    rows = _counted(memberships).values_list("room_id", *ROOM_COUNTS)
    return {room_id: dict(zip(ROOM_COUNTS, counts, strict=True)) for room_id, *counts in rows}


# What a room entry says of the user's reading of it, as named on the wire.
ROOM_COUNTS = ("last_read_id", "unread", "mentions", "thread_unread", "thread_mentions")


def unread_counts_of(membership_ids: list[int]) -> dict[int, tuple[int, dict[str, int]]]:
    """membership id -> (user id, their ROOM_COUNTS), for many users. One query."""
    if not membership_ids:
        return {}
    rows = _COUNTS_OF.rows(membership_ids)
    return {
        pk: (user_id, dict(zip(ROOM_COUNTS, counts, strict=True))) for pk, user_id, *counts in rows
    }


# Built once: it runs inside the ordering lock for every batch of moved markers.
_COUNTS_OF = ReusableQuery(
    lambda ids: _counted(Membership.objects.filter(pk__in=ids)).values_list(
        "pk", "user_id", *ROOM_COUNTS
    ),
    lists=1,
)


def read_markers(user_ids: set[int], room_ids: set[int]) -> dict[tuple[int, int], tuple[int, int]]:
    """(user id, room id) -> (membership id, read marker), for these users and rooms. One query."""
    rows = Membership.objects.filter(user_id__in=user_ids, room_id__in=room_ids).values_list(
        "user_id", "room_id", "pk", "last_read_id"
    )
    return {(user_id, room_id): (pk, marker) for user_id, room_id, pk, marker in rows}


def latest_message_ids(room_ids: set[int]) -> dict[int, int]:
    """room id -> its newest message id (rooms without messages are left out). One query.

    One index lookup per room (a subquery each), not a scan of the rooms' messages.
    """
    newest = Message.objects.filter(room_id=OuterRef("pk")).order_by("-id").values("id")[:1]
    rows = Room.objects.filter(pk__in=room_ids).annotate(newest=Subquery(newest))
    return {pk: newest for pk, newest in rows.values_list("pk", "newest") if newest is not None}


def dm_people(user_id: int, room_ids: set[int]) -> dict[int, list[str]]:
    """For conversations: the usernames of the other people in each, by name. One query, if any."""
    others: dict[int, list[str]] = defaultdict(list)
    if room_ids:
        for room_id, username in (
            Membership.objects.filter(room_id__in=room_ids)
            .exclude(user_id=user_id)
            .order_by("user__username")
            .values_list("room_id", "user__username")
        ):
            others[room_id].append(username)
    return dict(others)


def rooms_for_sidebar(user: User) -> list[dict[str, Any]]:
    """The user's joined, unarchived rooms with unread and mention counts. Three queries.

    Channels, then conversations, each by the name the sidebar shows, ignoring
    case ("general" before "Project Plans"), as the page orders them live
    (static/js/common.js, compareNames): a conversation shows its other
    people, not its stored name.
    """
    mine = Membership.objects.filter(room=OuterRef("pk"), user=user)
    rooms = list(
        Room.objects.filter(memberships__user=user, is_archived=False).annotate(
            notify=Subquery(mine.values("notify")[:1])
        )
    )
    counts = unread_counts(user.pk, [r.id for r in rooms])
    others = dm_people(user.pk, {r.id for r in rooms if r.is_direct})
    result = []
    for room in rooms:
        found = counts.get(room.id) or dict.fromkeys(ROOM_COUNTS, 0)
        result.append(
            {
                "room": room,
                **found,
                "members": others.get(room.id, []),
                "notify": room.notify or "default",
            }
        )
    result.sort(key=_sidebar_order)
    return result


def _sidebar_order(entry: dict[str, Any]) -> tuple[bool, str, str, int]:
    room = entry["room"]
    label = room.name
    if room.is_direct and entry["members"]:
        label = ", ".join(entry["members"])
    return (room.is_direct, label.casefold(), label, room.pk)


def channels_to_browse(user: User) -> list[tuple[Room, bool, int]]:
    """Every public channel (archived included), whether `user` joined it, its member count."""
    rows = (
        Room.objects.filter(access.public())
        .annotate(
            members_count=Count("memberships"),
            joined=Count("memberships", filter=Q(memberships__user=user)),
        )
        .order_by("is_archived", Lower("name"), "name", "pk")
    )
    return [(room, bool(room.joined), room.members_count) for room in rows]


def members_of(room: Room) -> list[tuple[int, str]]:
    """(user id, username) of the room's active members, by name."""
    return list(
        Membership.objects.filter(room=room, user__is_active=True)
        .order_by("user__username")
        .values_list("user_id", "user__username")
    )


def member_ids(room: Room) -> list[int]:
    return list(Membership.objects.filter(room=room).values_list("user_id", flat=True))


def users_by_prefix(prefix: str, room: Room | None = None, limit: int = 10) -> list[str]:
    """Active usernames starting with `prefix` (case-insensitive), optionally members of `room`."""
    users = User.objects.filter(is_active=True, username__istartswith=prefix)
    if room is not None:
        users = users.filter(memberships__room=room)
    return list(users.order_by("username").values_list("username", flat=True)[:limit])


def dm_slug_suffix(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def latest_seq() -> int:
    return Event.objects.aggregate(m=Max("seq"))["m"] or 0


def log_pruned_upto() -> int:
    """The highest `seq` pruned from the event log (0 while nothing was)."""
    return EventLogHorizon.objects.aggregate(m=Max("pruned_upto"))["m"] or 0


class LoggedChange(TypedDict):
    seq: int
    kind: str
    room_id: int | None
    user_id: int | None
    data: dict[str, Any]


def events_between(after: int, upto: int, limit: int | None = None) -> list[LoggedChange]:
    """The logged events with `after` < seq <= `upto`, oldest first (a gap in the live stream).

    At most `limit` of them, the oldest, when given.

    Payloads only for membership and room changes, which change what a
    process keeps in memory; the rest are sent to sockets by their replay.
    """
    rows = Event.objects.filter(seq__gt=after, seq__lte=upto).order_by("seq")[:limit]
    return [
        {
            "seq": seq,
            "kind": kind,
            "room_id": room_id,
            "user_id": user_id,
            "data": data if kind in ("member", "room") else {},
        }
        for seq, kind, room_id, user_id, data in rows.values_list(
            "seq", "kind", "room_id", "user_id", "data"
        )
    ]


@contextmanager
def one_snapshot() -> Iterator[None]:
    """Reads inside see the database as of one moment (a repeatable-read transaction).

    For reads that must agree with each other, such as who belongs where and
    what happened there. Inside an outer transaction, that one's view holds.
    """
    if connection.in_atomic_block:
        yield
        return
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        yield


def member_room_ids(user_ids: set[int]) -> dict[int, set[int]]:
    """user id -> the ids of the rooms they belong to now. One query."""
    rooms: dict[int, set[int]] = {user_id: set() for user_id in user_ids}
    for user_id, room_id in Membership.objects.filter(user_id__in=user_ids).values_list(
        "user_id", "room_id"
    ):
        rooms[user_id].add(room_id)
    return rooms


def events_since(room_ids: set[int], user_ids: set[int], after: int, limit: int) -> list[Event]:
    """The first `limit` logged events after `after` of these rooms, these users, or everyone.

    In `seq` order; messages come with their room and author. Two queries
    (the events, their messages).
    """
    # Events for everyone name neither a room nor a user.
    query = Q(user_id__in=user_ids) | Q(room__isnull=True, user__isnull=True)
    if room_ids:
        query |= Q(room_id__in=room_ids)
    return list(
        Event.objects.filter(query, seq__gt=after)
        .select_related("message__author", "message__room")
        .order_by("seq")[:limit]
    )


# Built once: every reconnecting socket's catch-up ends with it.
_ROOMS_OF = ReusableQuery(
    lambda user_ids: _counted(Membership.objects.filter(user_id__in=user_ids)).values_list(
        "user_id", "room__slug", *ROOM_COUNTS
    ),
    lists=1,
)


def unread_rooms_of(user_ids: set[int]) -> dict[int, list[dict[str, Any]]]:
    """user id -> read marker, unread and mention counts of each room they joined. One query."""
    found: dict[int, list[dict[str, Any]]] = {user_id: [] for user_id in user_ids}
    if not user_ids:
        return found
    for user_id, slug, *counts in _ROOMS_OF.rows(sorted(user_ids)):
        found[user_id].append({"room": slug, **dict(zip(ROOM_COUNTS, counts, strict=True))})
    return found


_SKIN_TONES = frozenset(chr(code) for code in range(0x1F3FB, 0x1F400))


@functools.cache
def emoji_catalog() -> list[dict[str, Any]]:
    """Every emoji a reaction may be, with its name and `:shortcodes:`, for pickers.

    From the `emoji` package that also validates reactions, so the picker
    offers exactly what the server accepts. Fully qualified forms only; skin
    tone variants are left to the keyboard (they would triple the list).
    """
    catalog = []
    for char, data in emoji_data.EMOJI_DATA.items():
        if data["status"] != emoji_data.STATUS["fully_qualified"]:
            continue
        if _SKIN_TONES.intersection(char):
            continue
        codes = [data["en"], *data.get("alias", [])]
        shortcodes = list(dict.fromkeys(code.strip(":").lower() for code in codes))
        name = data["en"].strip(":").replace("_", " ")
        catalog.append({"emoji": char, "name": name, "shortcodes": shortcodes})
    return catalog
