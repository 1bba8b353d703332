"""Who may read a room: the one rule, used by every path (selectors, search, sockets).

A room is public when it is a channel not marked private: every signed-in
user may read it. Every other room, private channels and direct messages
alike, only its members may read; a direct message is private by its kind,
whatever its flag says.
"""

from django.db.models import Q

from .models import Membership, Room


def public(prefix: str = "") -> Q:
    """Q for public rooms; `prefix` reaches them through a relation ("room__")."""
    return Q(**{f"{prefix}kind": Room.Kind.CHANNEL, f"{prefix}is_private": False})


def is_public(room: Room) -> bool:
    return room.kind == Room.Kind.CHANNEL and not room.is_private


def readable_by(user_id: int, prefix: str = "") -> Q:
    """Q for rooms the user may read: public ones, and those they belong to."""
    return public(prefix) | Q(**{f"{prefix}memberships__user_id": user_id})


def readable_through(user_id: int, field: str = "room") -> Q:
    """Q for rows (messages, ...) whose room `field` the user may read.

    The same rule as readable_by, written for queries over many rows: the
    user's memberships as a subquery rather than a join, so a row of a public
    room comes back once, not once per member.
    """
    member_of = Membership.objects.filter(user_id=user_id).values("room_id")
    return Q(**{f"{field}_id__in": member_of}) | public(prefix=f"{field}__")
