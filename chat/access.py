"""Who may read a room, and who may write to it: the one rule, used by every path.

A room is public when it is a channel not marked private: every signed-in
user may read it. Every other room, private channels and direct messages
alike, only its members may read; a direct message is private by its kind,
whatever its flag says. Only members write, and a refusal never tells a
user more than they may read: a room they may not read is `no_such_room`,
exactly as one that does not exist.

Selectors filter with the Q objects here; code that already holds a room
(or what a process remembers of one) asks the functions. Nothing else looks
at `kind`, `is_private` or memberships to decide.
"""

from django.db.models import Q

from .errors import NoSuchRoom, NotMember, RoomArchived
from .models import Membership, Room


def is_public_kind(kind: str, is_private: bool) -> bool:
    """Whether a room of this kind and flag is public (for rows read as values)."""
    return kind == Room.Kind.CHANNEL and not is_private


def is_public(room: Room) -> bool:
    return is_public_kind(room.kind, room.is_private)


def public(prefix: str = "") -> Q:
    """Q for public rooms; `prefix` reaches them through a relation ("room__")."""
    return Q(**{f"{prefix}kind": Room.Kind.CHANNEL, f"{prefix}is_private": False})


def readable_by(user_id: int, prefix: str = "") -> Q:
    """Q for rooms the user may read: public ones, and those they belong to.

    Membership is a subquery, not a join, so each row is matched once however
    many members its room has.
    """
    member_of = Membership.objects.filter(user_id=user_id).values("room_id")
    return public(prefix) | Q(**{f"{prefix}pk__in": member_of})


def may_read(*, public: bool, is_member: bool) -> bool:
    return public or is_member


def staff_sees(*, is_staff: bool) -> bool:
    """Whether a user sees every room in the Django admin, members or not.

    Only there: staff moderate from the admin (each change still needs the
    role its service asks for), while the pages and the API keep the reading
    rule above for staff as for everyone.
    """
    return is_staff


def may_join(room: Room) -> bool:
    """Whether one may join without an invitation: public rooms only."""
    return is_public(room)


def check_read(slug: str, *, public: bool, is_member: bool) -> None:
    """NoSuchRoom unless the user may read the room."""
    if not may_read(public=public, is_member=is_member):
        raise NoSuchRoom(slug)


def check_member(slug: str, *, public: bool, is_member: bool) -> None:
    """NoSuchRoom for a room the user may not read, NotMember for one they have not joined."""
    check_read(slug, public=public, is_member=is_member)
    if not is_member:
        raise NotMember(slug)


def check_write(slug: str, *, public: bool, is_member: bool, archived: bool) -> None:
    """check_member, then RoomArchived for a read-only room: nothing for a writable one."""
    check_member(slug, public=public, is_member=is_member)
    if archived:
        raise RoomArchived(slug)


def readable_through(user_id: int, field: str = "room") -> Q:
    """Q for rows (messages, ...) whose room `field` the user may read: readable_by, through it."""
    return readable_by(user_id, prefix=f"{field}__")


def downloadable_by(user_id: int) -> Q:
    """Q for uploads the user may download (PROTOCOL v2, Uploads).

    The uploader always, and the members of the room whose message carries
    the file. Stricter than reading: someone reading a public channel they
    have not joined sees the message but not its files until they join, as
    the contract says. A deleted message takes its files with it, for
    everyone.
    """
    member_of = Membership.objects.filter(user_id=user_id).values("room_id")
    unshared = Q(uploader_id=user_id, message__isnull=True)
    shared = Q(message__is_deleted=False) & (
        Q(uploader_id=user_id) | Q(message__room_id__in=member_of)
    )
    return unshared | shared
