"""Notification settings: each member's level per room, and the user groups people mention.

A room's level decides what of it may interrupt its member (the page's
browser notifications, docs/protocol.md "Notifications"); it changes through
`notify_level_set`, logged to the member's own sockets. User groups are
defined by admins (here, or in the Django admin through the same checks) and
resolved at send time by chat.mentions.
"""

import re
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Prefetch
from django.db.models.functions import Lower

from accounts.models import User, UsernameValidator

from . import access, selectors
from .errors import ChatError, Code
from .eventlog import logged_change, record
from .mentions import BROADCAST_WORDS
from .models import Membership, UserGroup

# The wire's levels and what each stores ("default": the room kind's own).
LEVELS = {
    "default": Membership.Notify.DEFAULT,
    "all": Membership.Notify.ALL,
    "mentions": Membership.Notify.MENTIONS,
    "none": Membership.Notify.NONE,
}

# Control characters, and the bidirectional overrides that make text pose as other text.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")

GROUP_HANDLE_MAX = 64
GROUP_NAME_MAX = 80
GROUP_DESCRIPTION_MAX = 250


def level_shown(stored: str) -> str:
    """A stored level as the wire names it: "default" for blank."""
    return stored or "default"


def notify_level_set(*, user: User, room: str, level: object) -> dict[str, Any]:
    """Set how much of a room may interrupt `user`; only for rooms they belong to.

    `level` is "default", "all", "mentions" or "none" (muted). The member's
    sockets get a `notify` event, so every tab and device agrees.
    """
    if not isinstance(level, str) or level not in LEVELS:
        raise ChatError(Code.INVALID, 'level must be "default", "all", "mentions" or "none".')
    found, membership = selectors.room_and_membership(user, room)
    access.check_member(room, public=access.is_public(found), is_member=membership is not None)
    assert membership is not None
    data = {"room": found.slug, "notify": level}
    with logged_change() as items:
        Membership.objects.filter(pk=membership.pk).update(notify=LEVELS[level])
        items.append(record("notify", data, user_id=user.pk))
    return data


# --- User groups ------------------------------------------------------------------


def group_handle_validate(handle: object, *, exclude: int | None = None) -> str:
    """A new handle, lowercased, if it is free: shaped like a username, not one, not taken.

    The words that mention a whole room (@channel, @everyone, @here) are
    never handles.
    """
    if not isinstance(handle, str) or not handle:
        raise ChatError(Code.INVALID, "A group needs a handle.")
    handle = handle.strip().lstrip("@").lower()
    if len(handle) > GROUP_HANDLE_MAX:
        raise ChatError(Code.INVALID, f"A handle is at most {GROUP_HANDLE_MAX} characters.")
    try:
        UsernameValidator()(handle)
    except ValidationError:
        raise ChatError(
            Code.INVALID, "Use letters a–z, digits, and . _ - between them for a handle."
        ) from None
    if handle in BROADCAST_WORDS:
        raise ChatError(Code.INVALID, f"@{handle} already mentions the whole room.")
    if User.objects.filter(username__iexact=handle).exists():
        raise ChatError(Code.INVALID, f"@{handle} is someone's username.")
    taken = UserGroup.objects.annotate(h=Lower("handle")).filter(h=handle)
    if exclude is not None:
        taken = taken.exclude(pk=exclude)
    if taken.exists():
        raise ChatError(Code.INVALID, f"There is already a group @{handle}.")
    return handle


def _text(value: object, what: str, most: int) -> str:
    if not isinstance(value, str):
        raise ChatError(Code.INVALID, f"{what} must be text.")
    value = value.strip()
    if len(value) > most or _CONTROL.search(value):
        raise ChatError(Code.INVALID, f"{what} is at most {most} characters, one line.")
    return value


def _members(usernames: object) -> list[User]:
    if not isinstance(usernames, list) or not all(isinstance(n, str) for n in usernames):
        raise ChatError(Code.INVALID, "members must be a list of usernames.")
    wanted = {n.lower() for n in usernames}
    found: list[User] = list(
        User.objects.annotate(lname=Lower("username")).filter(lname__in=wanted, is_active=True)
    )
    unknown = sorted(wanted - {u.username.lower() for u in found})
    if unknown:
        raise ChatError(Code.INVALID, f"No such people: {', '.join(unknown[:10])}.")
    return found


def _admin_only(actor: User) -> None:
    if not actor.is_chat_admin:
        raise ChatError(Code.FORBIDDEN, "Only admins manage user groups.")


def group_data(group: UserGroup) -> dict[str, Any]:
    """A group as the API shows it; its members by username (active accounts only)."""
    members = sorted(
        (u.username for u in group.members.all() if u.is_active), key=lambda n: n.lower()
    )
    return {
        "handle": group.handle,
        "name": group.name,
        "description": group.description,
        "members": members,
    }


def groups_list() -> list[dict[str, Any]]:
    """Every group with its members, by handle. Two queries."""
    people = Prefetch("members", queryset=User.objects.only("id", "username", "is_active"))
    return [group_data(g) for g in UserGroup.objects.prefetch_related(people).order_by("handle")]


def _group_for_admin(actor: User, handle: str) -> UserGroup:
    _admin_only(actor)
    group = UserGroup.objects.annotate(h=Lower("handle")).filter(h=handle.lower()).first()
    if group is None:
        raise ChatError(Code.NOT_FOUND, "No such group.")
    return group


def group_create(
    *,
    actor: User,
    handle: object,
    name: object = "",
    description: object = "",
    members: object = None,
) -> UserGroup:
    """Define a group people mention as @handle: admins only."""
    _admin_only(actor)
    group = UserGroup(
        handle=group_handle_validate(handle),
        name=_text(name, "name", GROUP_NAME_MAX),
        description=_text(description, "description", GROUP_DESCRIPTION_MAX),
    )
    people = _members(members if members is not None else [])
    try:
        with transaction.atomic():
            group.save()
            group.members.set(people)
    except IntegrityError:  # the same handle, created at the same moment
        raise ChatError(Code.INVALID, f"There is already a group @{group.handle}.") from None
    return group


def group_update(
    *,
    actor: User,
    handle: str,
    new_handle: object = None,
    name: object = None,
    description: object = None,
    members: object = None,
) -> UserGroup:
    """Change a group's handle, name, description or members (the whole list): admins only."""
    group = _group_for_admin(actor, handle)
    if new_handle is not None and str(new_handle).lower() != group.handle.lower():
        group.handle = group_handle_validate(new_handle, exclude=group.pk)
    if name is not None:
        group.name = _text(name, "name", GROUP_NAME_MAX)
    if description is not None:
        group.description = _text(description, "description", GROUP_DESCRIPTION_MAX)
    people = _members(members) if members is not None else None
    try:
        with transaction.atomic():
            group.save()
            if people is not None:
                group.members.set(people)
    except IntegrityError:
        raise ChatError(Code.INVALID, f"There is already a group @{group.handle}.") from None
    return group


def group_delete(*, actor: User, handle: str) -> None:
    """Remove a group: admins only. Messages that mentioned it keep their mentions."""
    _group_for_admin(actor, handle).delete()
