"""Chat reads, and the one place that decides who may see which room."""

from django.db import connection
from django.db.models import Q, QuerySet

from accounts.models import User

from .models import Membership, Message, Room

HISTORY_DEFAULT_LIMIT = 50
HISTORY_MAX_LIMIT = 200


class RoomNotFound(Exception):
    """The room does not exist, or the user may not see it: never says which."""


def room_for_reader(user: User, slug: str) -> Room:
    """The room `slug` if `user` may read it, else RoomNotFound.

    One query. Public rooms are readable by every signed-in user; private
    rooms only by their members.
    """
    room = (
        Room.objects.filter(slug=slug)
        .filter(Q(is_private=False) | Q(memberships__user=user))
        .first()
    )
    if room is None:
        raise RoomNotFound(slug)
    return room


def room_access_many(pairs: set[tuple[int, str]]) -> dict[tuple[int, str], tuple[Room, bool]]:
    """For (user id, room slug) pairs: the room and whether the user is a member.

    Pairs whose room does not exist or is private to others are left out.
    Two queries, whatever the number of pairs.
    """
    if not pairs:
        return {}
    slugs = {slug for _, slug in pairs}
    rooms = {room.slug: room for room in Room.objects.filter(slug__in=slugs)}
    joined = set(
        Membership.objects.filter(
            room__in=rooms.values(), user_id__in={user_id for user_id, _ in pairs}
        ).values_list("user_id", "room_id")
    )
    access = {}
    for user_id, slug in pairs:
        room = rooms.get(slug)
        if room is None:
            continue
        is_member = (user_id, room.id) in joined
        if room.is_private and not is_member:
            continue
        access[(user_id, slug)] = (room, is_member)
    return access


def messages_by_nonce(keys: set[tuple[int, str]]) -> dict[tuple[int, str], Message]:
    """Messages already stored under these (author id, nonce) pairs.

    One query when none is (the usual case: retries are rare), two otherwise.
    The pairs are matched as row values so the (author, nonce) unique index
    answers it; an IN list per column made PostgreSQL read every message of
    those authors, slower with every message they had sent.
    """
    if not keys:
        return {}
    pairs = sorted(keys)
    rows = ", ".join(["(%s, %s)"] * len(pairs))
    sql = (
        f"SELECT id FROM {Message._meta.db_table} "  # noqa: S608  (placeholders only)
        f"WHERE nonce IS NOT NULL AND (author_id, nonce) IN (VALUES {rows})"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [value for pair in pairs for value in pair])
        ids = [row[0] for row in cursor.fetchall()]
    if not ids:
        return {}
    found = Message.objects.filter(id__in=ids).select_related("room", "author")
    return {(m.author_id, m.nonce): m for m in found}


def rooms_of_member(user: User) -> list[Room]:
    """The rooms `user` has joined, by name, for the sidebar and socket subscriptions."""
    return list(Room.objects.filter(memberships__user=user).order_by("name"))


def room_ids_of_member(user_id: int) -> list[int]:
    return list(Membership.objects.filter(user_id=user_id).values_list("room_id", flat=True))


def _messages(room: Room) -> QuerySet[Message]:
    return (
        Message.objects.filter(room=room)
        .select_related("author")
        .only("id", "room_id", "body", "created", "nonce", "author__username")
    )


def messages_after(room: Room, after: int, limit: int, before: int | None = None) -> list[Message]:
    """The first `limit` messages with an id above `after` (catch-up), oldest first."""
    qs = _messages(room).filter(id__gt=after)
    if before is not None:
        qs = qs.filter(id__lt=before)
    return list(qs.order_by("id")[:limit])


def messages_before(room: Room, before: int | None, limit: int) -> list[Message]:
    """The newest `limit` messages below `before` (or of all), oldest first."""
    qs = _messages(room)
    if before is not None:
        qs = qs.filter(id__lt=before)
    page = list(qs.order_by("-id")[:limit])
    page.reverse()
    return page
