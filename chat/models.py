from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

DEFAULT_ROOM_SLUG = "general"


class Room(models.Model):
    slug = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=80)
    topic = models.CharField(max_length=250, blank=True)
    is_private = models.BooleanField(
        default=False, help_text="Private rooms are visible only to their members."
    )
    created = models.DateTimeField(default=timezone.now)
    members = models.ManyToManyField(
        settings.AUTH_USER_MODEL, through="Membership", related_name="rooms", blank=True
    )

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"#{self.slug}"


class Membership(models.Model):
    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    joined = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["room", "user"], name="membership_unique_room_user")
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.room}"


class Message(models.Model):
    id = models.BigAutoField(primary_key=True)
    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="messages")
    # PROTECT: history must not vanish with an account; deactivate users instead.
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="messages"
    )
    body = models.TextField()
    created = models.DateTimeField(default=timezone.now)
    # NULL, not "", means "sent without a nonce": the uniqueness rule skips NULLs.
    nonce = models.CharField(max_length=64, null=True, blank=True)  # noqa: DJ001

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["room", "id"], name="message_room_id")]
        constraints = [
            # A retried send (same user, same nonce) is stored once.
            models.UniqueConstraint(
                fields=["author", "nonce"],
                condition=Q(nonce__isnull=False),
                name="message_unique_author_nonce",
            )
        ]

    def __str__(self) -> str:
        return f"{self.id} in {self.room_id} by {self.author_id}"
