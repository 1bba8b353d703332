import re
import secrets
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.contrib.sessions.base_session import AbstractBaseSession
from django.core.exceptions import ValidationError
from django.core.files.storage import Storage, storages
from django.core.validators import MinValueValidator, RegexValidator
from django.db import models
from django.db.models import F, Q
from django.db.models.functions import Lower
from django.utils import timezone


class UsernameValidator(RegexValidator):
    """ASCII letters, digits, and . _ - inside: no name can pass for another.

    Django's default allows any Unicode letter, so a Cyrillic "а" or a
    full-width "ａ" could make a second "alice" that reads the same on screen.
    Together with case-insensitive uniqueness, each name has one spelling.
    """

    regex = r"^[A-Za-z0-9](?:[A-Za-z0-9_.-]*[A-Za-z0-9])?\Z"
    message = (
        "Use letters a–z, digits, and . _ - between them (for example jane.doe). "
        "Other characters could make your name look like someone else's."
    )
    flags = re.ASCII


def _uploads_storage() -> Storage:
    """Where avatars live: with the files people upload (STORAGES["uploads"])."""
    return storages["uploads"]


class User(AbstractUser):
    """A TeamChat account. Custom from the first migration so it can grow."""

    # Django documents replacing this with any validator; its stubs pin it to
    # the default's class.
    username_validator = UsernameValidator()  # type: ignore[assignment]
    username = models.CharField(
        "username",
        max_length=150,
        unique=True,
        help_text="Letters a–z, digits, and . _ - between them.",
        validators=[username_validator],
        error_messages={"unique": "A user with that username already exists."},
    )

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

    # The profile people see on messages, in lists and on the profile card.
    # The username stays the identity (the protocol's `user`).
    display_name = models.CharField(max_length=64, blank=True)
    title = models.CharField(max_length=100, blank=True)
    # An IANA name ("Europe/Paris"), blank when not given.
    time_zone = models.CharField(max_length=64, blank=True)
    status_text = models.CharField(max_length=100, blank=True)
    status_emoji = models.CharField(max_length=32, blank=True)
    # When the status stops showing; null: until it is cleared.
    status_expires = models.DateTimeField(null=True, blank=True)
    # A square picture re-encoded by the server; its URL names the version,
    # so it can be cached for good.
    avatar = models.FileField(storage=_uploads_storage, max_length=255, blank=True)
    avatar_version = models.PositiveIntegerField(default=0)
    # Do not disturb: no notification interrupts them until then (null: off).
    dnd_until = models.DateTimeField(null=True, blank=True)
    # A bot: an account for a program, acting only through tokens and
    # webhooks (it cannot sign in on the web). Its owner manages it; an
    # owner who leaves does not stop it, and an admin can hand it to another.
    is_bot = models.BooleanField(default=False)
    bot_owner = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="bots"
    )

    class Meta(AbstractUser.Meta):
        swappable = "AUTH_USER_MODEL"
        constraints = [
            # "Alice" and "alice" are one name.
            models.UniqueConstraint(Lower("username"), name="user_username_unique_ci")
        ]

    @property
    def effective_role(self) -> "User.Role":
        """The role TeamChat acts on: the stored one, except that a superuser is an admin.

        The one rule for roles. Every check (pages, API, socket, admin) goes
        through it, through `is_chat_admin` and `is_moderator`, so a
        superuser made with `createsuperuser` (stored role: member) is an
        admin everywhere, and is shown as one.
        """
        if self.is_superuser:
            return self.Role.ADMIN
        return self.Role(self.role)

    @classmethod
    def with_effective_role(cls, role: str) -> Q:
        """`effective_role == role` as a query filter (the admin's list filter)."""
        if role == cls.Role.ADMIN:
            return Q(is_superuser=True) | Q(role=role)
        return Q(is_superuser=False, role=role)

    @property
    def is_chat_admin(self) -> bool:
        return self.effective_role == self.Role.ADMIN

    @property
    def is_moderator(self) -> bool:
        """Moderator or above."""
        return self.effective_role in (self.Role.ADMIN, self.Role.MODERATOR)


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


class SignupPolicy(models.Model):
    """Who may create an account, set by an admin. There is one row (id 1).

    `ACCOUNT_ALLOW_SIGNUP=false` in the environment still closes sign-up
    whatever this row says.
    """

    class Mode(models.TextChoices):
        OPEN = "open", "Open: anyone may sign up"
        INVITE = "invite", "Invite only: sign-up needs a valid invite link"
        DOMAINS = "domains", "Allowed email domains only"

    mode = models.CharField(max_length=16, choices=Mode.choices, default=Mode.OPEN)
    allowed_domains = models.TextField(
        blank=True,
        help_text="For the domains mode: one domain per line (or comma-separated), "
        "e.g. example.com. Exact matches only: list sub.example.com separately.",
    )
    members_may_create_bots = models.BooleanField(
        default=False,
        help_text="Members may create bots of their own (admins always may).",
    )
    require_2fa_for_staff = models.BooleanField(
        default=False,
        help_text="Staff must set up an authenticator app (TOTP) before they can use "
        "TeamChat or the admin.",
    )
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "signup policy"
        verbose_name_plural = "signup policy"
        constraints = [
            # A second row would make "the" policy ambiguous.
            models.CheckConstraint(condition=Q(id=1), name="signup_policy_single_row"),
        ]

    def __str__(self) -> str:
        return f"Sign-up: {self.get_mode_display()}"

    def save(self, *args, **kwargs) -> None:
        self.pk = 1
        super().save(*args, **kwargs)

    @property
    def domains(self) -> frozenset[str]:
        """The allowed domains, lower-cased, without a leading "@"."""
        parts = re.split(r"[\s,;]+", self.allowed_domains.lower())
        return frozenset(part.lstrip("@").strip(".") for part in parts if part.lstrip("@"))

    def clean(self) -> None:
        if self.mode == self.Mode.DOMAINS and not self.domains:
            raise ValidationError(
                {"allowed_domains": "List at least one domain, or choose another mode."}
            )


def _invite_token() -> str:
    return secrets.token_urlsafe(32)


def _invite_expiry():
    return timezone.now() + timedelta(days=7)


class Invite(models.Model):
    """An invite link (`/accounts/invite/<token>/`) an admin hands out.

    Each account created through it uses it once; it stops working when it
    expires or once `max_uses` accounts were created with it.
    """

    token = models.CharField(max_length=64, unique=True, default=_invite_token, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="invites_created",
    )
    created = models.DateTimeField(default=timezone.now, editable=False)
    expires = models.DateTimeField(default=_invite_expiry)
    max_uses = models.PositiveIntegerField(default=1, validators=[MinValueValidator(1)])
    uses = models.PositiveIntegerField(default=0, editable=False)
    note = models.CharField(
        max_length=200, blank=True, help_text="For you: who it is for, where it was sent."
    )

    class Meta:
        ordering = ["-created"]
        constraints = [
            # The last line of defence against a use count raced past its cap.
            models.CheckConstraint(condition=Q(uses__lte=F("max_uses")), name="invite_uses_capped"),
        ]

    def __str__(self) -> str:
        return self.note or f"Invite {self.token[:8]}…"

    @property
    def path(self) -> str:
        from django.urls import reverse

        return reverse("account_invite", kwargs={"token": self.token})

    def url(self, *, request_site: str = "") -> str:
        """The full link to hand out, on `SITE_URL` when set, else on `request_site`.

        `request_site` is the address the page showing the link was opened at
        (`request.build_absolute_uri("/")`). `SITE_URL` exists for an admin
        reached under another host name than the one people sign up on.
        """
        return (settings.SITE_URL or request_site).rstrip("/") + self.path

    @property
    def is_expired(self) -> bool:
        return self.expires <= timezone.now()

    @property
    def is_used_up(self) -> bool:
        return self.uses >= self.max_uses

    @property
    def is_usable(self) -> bool:
        return not self.is_expired and not self.is_used_up
