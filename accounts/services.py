"""Account-side writes and the hooks that keep sockets in step with them."""

from contextvars import ContextVar
from datetime import datetime

from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from .models import Invite, User

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
    user.is_active = active
    user.save(update_fields=["is_active"])
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
    user.role = role
    user.save(update_fields=["role"])
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
    invite.save()
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
