"""Account-side writes and the hooks that keep sockets in step with them."""

from contextvars import ContextVar

from django.db import transaction

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
    from chat.events import user_sockets_recheck

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


def user_set_active(user, *, active: bool) -> bool:
    """Activate or deactivate an account; deactivation closes its open sockets.

    Returns whether anything changed.
    """
    if user.is_active == active:
        return False
    user.is_active = active
    user.save(update_fields=["is_active"])
    return True
