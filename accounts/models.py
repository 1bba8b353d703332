from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.contrib.sessions.base_session import AbstractBaseSession
from django.db import models


class User(AbstractUser):
    """A TeamChat account. Custom from the first migration so it can grow."""

    class Role(models.TextChoices):
        MEMBER = "member", "Member"
        MODERATOR = "moderator", "Moderator"
        ADMIN = "admin", "Admin"

    role = models.CharField(
        max_length=16,
        choices=Role.choices,
        default=Role.MEMBER,
        help_text="Moderators may delete any message, remove members and deactivate users; "
        "admins may also manage every room. Superusers are admins.",
    )

    class Meta(AbstractUser.Meta):
        swappable = "AUTH_USER_MODEL"

    @property
    def is_chat_admin(self) -> bool:
        return self.is_superuser or self.role == self.Role.ADMIN

    @property
    def is_moderator(self) -> bool:
        """Moderator or above."""
        return self.is_chat_admin or self.role == self.Role.MODERATOR


class Session(AbstractBaseSession):
    """A Django session row that also records which login it belongs to.

    `login_id` is minted when a user logs in and copied along when Django
    rotates the session key (password change, login), so an open socket can
    find "its" session again after the key changed. `user` lets the server
    find every session of an account.
    """

    login_id = models.CharField(max_length=32, blank=True, db_index=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE
    )

    @classmethod
    def get_session_store_class(cls):
        from .session_store import SessionStore

        return SessionStore
