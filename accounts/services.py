"""Account-side writes and the hooks that keep sockets in step with them."""

import functools
import logging
import re
import secrets
import zoneinfo
from contextvars import ContextVar
from datetime import datetime
from typing import IO, Any

from django.core.exceptions import PermissionDenied
from django.core.files.base import ContentFile
from django.core.files.storage import storages
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from chat.errors import ChatError, Code
from chat.eventlog import logged_change, record_for_everyone
from chat.services import emoji_validate, text_is_storable
from chat.uploads import images
from integrations.audit import audit_record

from .models import Invite, User
from .selectors import person_data

log = logging.getLogger(__name__)

# Users whose sockets must re-check their sessions once the current request's
# response (and so its session) has been saved. None outside a request.
_pending_rechecks: ContextVar[set[int] | None] = ContextVar("pending_rechecks", default=None)


def sockets_recheck(user_id: int) -> None:
    """Ask every open socket of `user_id` to re-check the session it was opened with.

    Inside a request this waits until the response is done: a logout flushes
    the session and a password change rewrites the changer's session only at
    the end of the request, and a socket checking earlier would see the old
    state. Outside a request it runs once the current transaction commits.
    """
    pending = _pending_rechecks.get()
    if pending is not None:
        pending.add(user_id)
    else:
        transaction.on_commit(lambda: _send_recheck(user_id))


def _send_recheck(user_id: int) -> None:
    from chat.eventlog import user_sockets_recheck

    user_sockets_recheck(user_id)


def run_collecting_rechecks(get_response, request):
    token = _pending_rechecks.set(set())
    try:
        response = get_response(request)
    finally:
        pending = _pending_rechecks.get() or set()
        _pending_rechecks.reset(token)
    for user_id in sorted(pending):
        _send_recheck(user_id)
    return response


def user_set_active(user: User, *, active: bool) -> bool:
    """Activate or deactivate an account; deactivation closes its open sockets.

    Returns whether anything changed. No permission check: callers that act
    for someone use `user_deactivate`.
    """
    if user.is_active == active:
        return False
    with transaction.atomic():
        user.is_active = active
        user.save(update_fields=["is_active"])
        if not user.is_bot:  # a bot's switch is audited as bot.deactivate
            audit_record(
                action="user.activate" if active else "user.deactivate",
                target=f"user:{user.username}",
            )
    return True


def user_deactivate(*, actor: User, user: User) -> bool:
    """Deactivate `user` on behalf of `actor`; their open sockets close (4401).

    Moderators and admins may deactivate members and moderators; only an
    admin may deactivate an admin, and nobody their own account (which would
    lock out the last admin by a slip of the mouse). Raises PermissionDenied
    otherwise. Returns whether anything changed.
    """
    if not actor.is_moderator:
        raise PermissionDenied("Only moderators and admins may deactivate accounts.")
    if user.pk == actor.pk:
        raise PermissionDenied("You cannot deactivate your own account.")
    if user.is_chat_admin and not actor.is_chat_admin:
        raise PermissionDenied("Only an admin may deactivate an admin.")
    return user_set_active(user, active=False)


def user_role_set(*, actor: User, user: User, role: str) -> bool:
    """Give `user` a role on behalf of `actor`: only admins may, and not their own.

    Raises PermissionDenied otherwise. Returns whether anything changed.
    """
    if role not in User.Role.values:
        raise PermissionDenied(f"No such role: {role}.")
    if user.role == role:
        return False
    if not actor.is_chat_admin:
        raise PermissionDenied("Only an admin may change roles.")
    if user.pk == actor.pk:
        raise PermissionDenied("You cannot change your own role.")
    with transaction.atomic():
        previous = user.role
        user.role = role
        user.save(update_fields=["role"])
        audit_record(
            action="user.role",
            actor=actor,
            target=f"user:{user.username}",
            data={"from": previous, "to": role},
        )
    return True


def invite_create(
    *,
    created_by: User | None,
    max_uses: int = 1,
    expires: datetime | None = None,
    note: str = "",
) -> Invite:
    """Mint an invite link: `max_uses` accounts may sign up with it until `expires`."""
    invite = Invite(created_by=created_by, max_uses=max_uses, note=note)
    if expires is not None:
        invite.expires = expires
    invite.full_clean()
    with transaction.atomic():
        invite.save()
        audit_record(
            action="invite.create",
            actor=created_by,
            target=f"invite:{invite.pk}",
            data={"max_uses": max_uses, "note": note[:100]},
        )
    return invite


def invite_redeem(*, token: str) -> bool:
    """Use the invite once, if it is still usable; whether it was.

    One guarded UPDATE, so two sign-ups racing for an invite's last use
    cannot both get it: the database re-checks the row under its lock and the
    second finds it used up. Call it in the transaction that creates the
    account, so a failed sign-up gives the use back.
    """
    return bool(
        Invite.objects.filter(
            token=token, expires__gt=timezone.now(), uses__lt=F("max_uses")
        ).update(uses=F("uses") + 1)
    )


# --- Profiles -------------------------------------------------------------------

DISPLAY_NAME_MAX = 64
TITLE_MAX = 100
STATUS_TEXT_MAX = 100
AVATAR_SIDE = 256
# Control characters and the bidirectional overrides that make text pose as other text.
_PROFILE_REFUSED = re.compile(r"[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


@functools.cache
def _time_zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def _profile_text(data: dict[str, Any], name: str, most: int) -> str:
    value = data[name]
    if not isinstance(value, str):
        raise ChatError(Code.INVALID, f"{name} must be text.")
    value = value.strip()
    if len(value) > most:
        raise ChatError(Code.INVALID, f"{name} is longer than {most} characters.")
    if _PROFILE_REFUSED.search(value) or not text_is_storable(value):
        raise ChatError(Code.INVALID, f"{name} contains control characters.")
    return value


def _status(value: Any, now: datetime) -> tuple[str, str, datetime | None]:
    """(text, emoji, expires) from `{"text", "emoji", "expires"}`; None clears it."""
    if value is None:
        return "", "", None
    if not isinstance(value, dict) or not set(value) <= {"text", "emoji", "expires"}:
        raise ChatError(Code.INVALID, 'status must be {"text", "emoji", "expires"} or null.')
    text = _profile_text({"status text": value.get("text", "")}, "status text", STATUS_TEXT_MAX)
    emoji = value.get("emoji") or ""
    if emoji:
        if not isinstance(emoji, str):
            raise ChatError(Code.INVALID, "The status emoji must be one emoji.")
        emoji_validate(emoji)
    if not text and not emoji:
        raise ChatError(Code.INVALID, "A status needs text or an emoji (null clears it).")
    expires = value.get("expires")
    if expires is None:
        return text, emoji, None
    when = parse_datetime(expires) if isinstance(expires, str) else None
    if when is None or when.tzinfo is None:
        raise ChatError(Code.INVALID, "expires must be a time with its zone (ISO 8601) or null.")
    if when <= now:
        raise ChatError(Code.INVALID, "The status would already have ended.")
    return text, emoji, when


def _dnd_until(value: Any, now: datetime) -> datetime | None:
    """Do not disturb until this time (ISO 8601 with its zone, in the future); None ends it."""
    if value is None:
        return None
    when = parse_datetime(value) if isinstance(value, str) else None
    if when is None or when.tzinfo is None:
        raise ChatError(Code.INVALID, "dnd_until must be a time with its zone (ISO 8601) or null.")
    if when <= now:
        raise ChatError(Code.INVALID, "Do not disturb would already have ended.")
    return when


def profile_update(*, user: User, data: dict[str, Any]) -> User:
    """Change any of display_name, title, time_zone, status and dnd_until, then tell everyone.

    Unknown fields and bad values are refused with a ChatError naming them;
    nothing is changed then. A status is `{"text", "emoji", "expires"}`
    (an emoji as reactions take them, an ISO time or null for "until
    cleared"), or null to clear it. `dnd_until` pauses notifications until
    that time (null resumes them); others see it on the profile card.
    """
    allowed = {"display_name", "title", "time_zone", "status", "dnd_until"}
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ChatError(Code.INVALID, f"Unknown profile fields: {', '.join(unknown)}.")
    changes: dict[str, Any] = {}
    if "display_name" in data:
        changes["display_name"] = _profile_text(data, "display_name", DISPLAY_NAME_MAX)
    if "title" in data:
        changes["title"] = _profile_text(data, "title", TITLE_MAX)
    if "time_zone" in data:
        zone = data["time_zone"]
        if not isinstance(zone, str) or (zone and zone not in _time_zones()):
            raise ChatError(Code.INVALID, "time_zone must be a time zone name like Europe/Paris.")
        changes["time_zone"] = zone
    if "status" in data:
        text, emoji, expires = _status(data["status"], timezone.now())
        changes.update(status_text=text, status_emoji=emoji, status_expires=expires)
    if "dnd_until" in data:
        changes["dnd_until"] = _dnd_until(data["dnd_until"], timezone.now())
    for name, value in changes.items():
        setattr(user, name, value)
    with logged_change() as items:
        user.save(update_fields=list(changes))
        items.append(record_for_everyone("profile", person_data(user)))
    return user


def avatar_set(*, user: User, file: IO[bytes]) -> User:
    """Make the centre square of this picture the user's avatar (256 px, no metadata).

    PNG, JPEG, GIF or WebP within the pixel limit; anything else is refused
    in words. The previous picture is deleted once the change is committed.
    """
    try:
        image = images.open_image(file)
    except images.NotAnImage as exc:
        raise ChatError(
            Code.INVALID, f"The avatar must be a PNG, JPEG, GIF or WebP picture. {exc}"
        ) from None
    rendered = images.square(image, AVATAR_SIDE)
    storage = storages["uploads"]
    old = user.avatar.name if user.avatar else None
    version = user.avatar_version + 1
    ext = "png" if rendered.content_type == "image/png" else "jpg"
    name = storage.save(
        f"avatars/{user.pk}/{version}-{secrets.token_hex(4)}.{ext}", ContentFile(rendered.data)
    )
    try:
        _avatar_store(user, name, version)
    except BaseException:
        storage.delete(name)
        raise
    if old:
        transaction.on_commit(functools.partial(_file_delete, old))
    return user


def avatar_clear(*, user: User) -> User:
    """Go back to the generated initials; the picture is deleted once that is committed."""
    old = user.avatar.name if user.avatar else None
    _avatar_store(user, "", user.avatar_version + 1)
    if old:
        transaction.on_commit(functools.partial(_file_delete, old))
    return user


def _avatar_store(user: User, name: str, version: int) -> None:
    user.avatar.name = name
    user.avatar_version = version
    with logged_change() as items:
        user.save(update_fields=["avatar", "avatar_version"])
        items.append(record_for_everyone("profile", person_data(user)))


def _file_delete(name: str) -> None:
    try:
        storages["uploads"].delete(name)
    except OSError:
        log.warning("could not delete the old avatar %s", name)
