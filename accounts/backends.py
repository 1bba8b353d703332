"""The one authentication backend: allauth's (username or email), plus handshake read-ahead."""

from allauth.account.auth_backends import AuthenticationBackend as AllauthBackend

from .session_store import preloaded


class AuthenticationBackend(AllauthBackend):
    """allauth's backend; a socket handshake's user may come already read.

    The socket handshakes that arrive together have their sessions and users
    read in one query (chat.realtime.handshake); Channels' AuthMiddleware
    then asks for the user here, and gets that one, with the same check as a
    fresh read (an inactive user is nobody). Everything else is allauth's.
    """

    def user_can_authenticate(self, user) -> bool:
        """Bots never sign in on the web (nor hold a session): they use tokens."""
        return super().user_can_authenticate(user) and not getattr(user, "is_bot", False)

    def get_user(self, user_id):
        ahead = preloaded.get()
        if ahead is not None and ahead.user is not None and ahead.user.pk == user_id:
            return ahead.user if self.user_can_authenticate(ahead.user) else None
        return super().get_user(user_id)
