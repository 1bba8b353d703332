"""Database session engine that indexes each session by login and user."""

from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from django.contrib.auth import SESSION_KEY
from django.contrib.sessions.backends.db import SessionStore as DBStore
from django.utils import timezone

if TYPE_CHECKING:
    from .models import Session

LOGIN_ID_KEY = "_teamchat_login_id"
# The login id of a socket opened with a bearer token: this prefix and the token's id.
TOKEN_LOGIN_PREFIX = "token:"  # noqa: S105 (a marker, not a secret)


@dataclass(slots=True)
class ReadAhead:
    """A session read before it was asked for: its data (None: no live session) and its user.

    Each handshake gets its own (see chat.realtime.handshake), which the
    socket empties with `forget` once the handshake is over: every task and
    loop callback made during the handshake copied the context, and those
    copies outlive it.
    """

    key: str
    data: dict[str, Any] | None
    user: Any = None
    # Why the user may not in for now (accounts.selectors.access_blocks), if anything.
    blocked: str | None = None
    # `data` as the session row stores it (encoded and signed).
    raw: str | None = None

    def forget(self) -> None:
        """Let go of the session data and the full user (the handshake has used them)."""
        self.data = None
        self.user = None
        self.raw = None


# The session (and its user) read for the socket handshake in progress, set by
# chat.realtime.handshake, which reads those of concurrent handshakes in one
# go. Context variables follow the handshake into the database thread, where
# Channels' AuthMiddleware loads the session (here) and the user
# (accounts.backends).
preloaded: ContextVar[ReadAhead | None] = ContextVar("preloaded_session", default=None)


class SessionStore(DBStore):
    @classmethod
    def get_model_class(cls) -> type["Session"]:
        from .models import Session

        return Session

    def create_model_instance(self, data: dict[str, Any]) -> "Session":
        obj = cast("Session", super().create_model_instance(data))
        obj.login_id = data.get(LOGIN_ID_KEY, "")
        user_id = data.get("_auth_user_id")
        obj.user_id = int(user_id) if user_id else None
        return obj

    def load(self) -> dict[str, Any]:
        ahead = preloaded.get()
        if ahead is None or ahead.key != self.session_key:
            return super().load()
        if ahead.data is None:
            self._session_key = None  # as the database store does for a missing session
            return {}
        return dict(ahead.data)


def sessions_read_ahead(keys: set[str]) -> dict[str, ReadAhead]:
    """These sessions (those that exist and have not expired), their users, what blocks them.

    A constant number of queries.
    """
    from .models import User

    model = SessionStore.get_model_class()
    rows = model.objects.filter(session_key__in=keys, expire_date__gt=timezone.now())
    decoder = SessionStore()
    found: dict[str, tuple[dict[str, Any], int | None, str]] = {}
    for key, raw in rows.values_list("session_key", "session_data"):
        data = decoder.decode(raw)
        user_id = data.get(SESSION_KEY)
        found[key] = (data, int(str(user_id)) if str(user_id).isdigit() else None, raw)
    from .selectors import access_blocks

    users = User.objects.in_bulk({user_id for _, user_id, _ in found.values() if user_id})
    blocks = access_blocks(list(users.values())) if users else {}
    return {
        key: ReadAhead(key, data, users.get(user_id), blocks.get(user_id) if user_id else None, raw)
        for key, (data, user_id, raw) in found.items()
    }
