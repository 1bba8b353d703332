"""Tokens that act for a person or a bot, and the audit log of admin and security actions."""

import secrets
import uuid
from typing import Any

from django.conf import settings
from django.db import models
from django.utils import timezone


class Token(models.Model):
    """A personal access token: `Authorization: Bearer <token>` on the API and the socket.

    Only a SHA-256 digest of the secret is stored, with its first characters
    to tell tokens apart in a list; the secret itself is shown once.
    """

    class Scope(models.TextChoices):
        READ = "read", "Read"
        WRITE = "write", "Read and write"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16)
    digest = models.CharField(max_length=64, unique=True)
    scope = models.CharField(max_length=8, choices=Scope.choices, default=Scope.WRITE)
    created = models.DateTimeField(default=timezone.now)
    last_used = models.DateTimeField(null=True, blank=True)
    # Null: until revoked.
    expires = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created", "-id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"


class AuditEntry(models.Model):
    """One admin or security action: who, what, on what, when, from where.

    Append-only from the application: `save` refuses to change a stored
    entry and `delete` refuses outright (the admin offers neither).
    """

    at = models.DateTimeField(default=timezone.now, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    # Kept as written, so the entry still says who after the account is gone.
    actor_name = models.CharField(max_length=150, blank=True)
    action = models.CharField(max_length=64, db_index=True)
    # What it was done to, as "<kind>:<name>" (user:alice, room:general, token:12).
    target = models.CharField(max_length=200, blank=True, db_index=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    data = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-at", "-id"]
        verbose_name_plural = "audit entries"

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} {self.actor_name or '-'} {self.action} {self.target}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.pk is not None and not self._state.adding:
            raise ValueError("Audit entries are append-only.")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        raise ValueError("Audit entries are append-only.")


# Bots and incoming webhooks


class IncomingWebhook(models.Model):
    """A secret URL that posts into one room as its bot (Slack-compatible JSON).

    The URL's secret is stored as a SHA-256 digest, like a token's; rotating
    it makes the old URL stop working at once.
    """

    bot = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="incoming_webhooks"
    )
    room = models.ForeignKey("chat.Room", on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16)
    digest = models.CharField(max_length=64, unique=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created = models.DateTimeField(default=timezone.now)
    last_used = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created", "-id"]

    def __str__(self) -> str:
        return f"{self.name} → #{self.room_id} as {self.bot_id}"


# Slash commands


class BotCommand(models.Model):
    """A slash command a bot registers: `/name args` calls the bot's outgoing webhook."""

    name = models.CharField(max_length=32, unique=True)
    bot = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="slash_commands"
    )
    description = models.CharField(max_length=200, blank=True)
    usage = models.CharField(max_length=100, blank=True)
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"/{self.name}"


# Outgoing webhooks


def webhook_secret_new() -> str:
    """A new signing secret for an outgoing webhook (256 bits, hex)."""
    return secrets.token_hex(32)


class OutgoingWebhook(models.Model):
    """Where the events of one account (a bot) are POSTed, signed with `secret`.

    It fires when a message mentions the account, is sent to it in a direct
    message, or (with `trigger_words`) contains one of the words in a room
    the account is a member of (only the `rooms` listed, if any).
    """

    bot = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="outgoing_webhooks"
    )
    # Who set it up; the webhook keeps working when they leave (an admin manages it then).
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    url = models.URLField(max_length=2000)
    # The HMAC-SHA256 key of the X-TeamChat-Signature header; shown to who manages it.
    secret = models.CharField(max_length=64, default=webhook_secret_new)
    trigger_words = models.JSONField(default=list, blank=True)
    rooms = models.ManyToManyField("chat.Room", blank=True, related_name="+")
    active = models.BooleanField(default=True)
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["bot"], name="outgoing_webhook_one_per_bot"),
        ]

    def __str__(self) -> str:
        return f"{self.bot} -> {self.url}"


class Delivery(models.Model):
    """The outbox: one event for one webhook, written in the transaction that caused it.

    The worker (`manage.py webhook_worker`) takes due rows, POSTs them and
    marks them delivered only after a 2xx answer (at least once: receivers
    dedupe by `event_id`).
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        DELIVERED = "delivered", "Delivered"
        FAILED = "failed", "Failed"

    webhook = models.ForeignKey(
        OutgoingWebhook, on_delete=models.CASCADE, related_name="deliveries"
    )
    event_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    payload = models.JSONField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    # Attempts started; a worker taking the row counts one before it sends.
    attempts = models.PositiveIntegerField(default=0)
    # When a worker may take it: due now, after a retry's delay, or after the
    # lease of a worker that took it and never reported back.
    next_attempt_at = models.DateTimeField(default=timezone.now)
    last_error = models.CharField(max_length=500, blank=True)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    created = models.DateTimeField(default=timezone.now)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created", "-id"]
        verbose_name_plural = "deliveries"
        indexes = [
            models.Index(fields=["status", "next_attempt_at"], name="delivery_due"),
            models.Index(fields=["webhook", "-created"], name="delivery_webhook_recent"),
            # Pruning what is old.
            models.Index(fields=["created"], name="delivery_created"),
        ]

    def __str__(self) -> str:
        return f"{self.event_id} {self.status}"


# Exports and imports


class ExportJob(models.Model):
    """An export of the organization (admins) or of one person's data, made in the background."""

    class Scope(models.TextChoices):
        ORG = "org", "The whole organization"
        USER = "user", "My own data"

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="exports"
    )
    scope = models.CharField(max_length=8, choices=Scope.choices)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.QUEUED)
    progress = models.PositiveSmallIntegerField(default=0)
    counts = models.JSONField(default=dict, blank=True)
    # In the uploads storage, under exports/; never served but through the download view.
    file = models.CharField(max_length=255, blank=True)
    size = models.BigIntegerField(default=0)
    error = models.CharField(max_length=500, blank=True)
    created = models.DateTimeField(default=timezone.now)
    started = models.DateTimeField(null=True, blank=True)
    finished = models.DateTimeField(null=True, blank=True)
    # A running job whose worker died is taken again once this has passed.
    lease_until = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created", "-id"]
        indexes = [models.Index(fields=["status", "created"], name="export_status_created")]

    def __str__(self) -> str:
        return f"Export {self.pk} ({self.scope}, {self.status})"


class ImportedObject(models.Model):
    """What an import made of an object of its archive: a re-run creates nothing twice."""

    source = models.CharField(max_length=64)
    kind = models.CharField(max_length=16)
    external_id = models.CharField(max_length=128)
    object_id = models.BigIntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["source", "kind", "external_id"], name="imported_object_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.source} {self.kind} {self.external_id} -> {self.object_id}"
