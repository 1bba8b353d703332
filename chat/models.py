import secrets

from django.conf import settings
from django.core.files.storage import Storage, storages
from django.db import models
from django.db.models import Q
from django.utils import timezone

DEFAULT_ROOM_SLUG = "general"


class Room(models.Model):
    class Kind(models.TextChoices):
        CHANNEL = "channel", "Channel"
        DIRECT = "dm", "Direct message"

    slug = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=80)
    topic = models.CharField(max_length=250, blank=True)
    kind = models.CharField(max_length=8, choices=Kind.choices, default=Kind.CHANNEL)
    is_private = models.BooleanField(
        default=False, help_text="Private rooms are visible only to their members."
    )
    is_archived = models.BooleanField(
        default=False, help_text="Archived rooms are read-only and hidden from the sidebar."
    )
    created = models.DateTimeField(default=timezone.now)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    # For direct messages: the sorted member ids, so a conversation between
    # the same people is found again rather than created twice.
    dm_key = models.CharField(max_length=200, null=True, blank=True, unique=True)  # noqa: DJ001
    members = models.ManyToManyField(
        settings.AUTH_USER_MODEL, through="Membership", related_name="rooms", blank=True
    )

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"#{self.slug}"

    @property
    def is_direct(self) -> bool:
        return self.kind == self.Kind.DIRECT


class Membership(models.Model):
    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    joined = models.DateTimeField(default=timezone.now)
    # The id of the newest message the member has read (0: none).
    last_read_id = models.BigIntegerField(default=0)

    class Notify(models.TextChoices):
        # Blank: the kind's default (conversations: every message; channels: mentions).
        DEFAULT = "", "Default"
        ALL = "all", "All messages"
        MENTIONS = "mentions", "Mentions only"
        NONE = "none", "Nothing (muted)"

    # What of this room may interrupt the member (browser notifications); a
    # muted room is dimmed and left out of the tab title, but an unread
    # mention in it still counts.
    notify = models.CharField(max_length=8, choices=Notify.choices, default="", blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["room", "user"], name="membership_unique_room_user")
        ]
        indexes = [models.Index(fields=["user", "room"], name="membership_user_room")]

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
    # The body rendered from Markdown and sanitized, once, when it is stored.
    html = models.TextField(blank=True, default="")
    created = models.DateTimeField(default=timezone.now)
    edited = models.DateTimeField(null=True, blank=True)
    # A deleted message keeps its row (its nonce still answers retries) but
    # loses its text, and no reader sees it again.
    is_deleted = models.BooleanField(default=False)
    # NULL, not "", means "sent without a nonce": the uniqueness rule skips NULLs.
    nonce = models.CharField(max_length=64, null=True, blank=True)  # noqa: DJ001

    # Threads: a reply names its root, a top-level message of the same room
    # (never another reply). A reply is still a message of the room; it shows
    # in the room itself only when it was "also sent to the channel".
    thread = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.CASCADE, related_name="thread_replies"
    )
    in_channel = models.BooleanField(default=False)
    # On a root: its thread at a glance, kept in the transaction of each reply
    # (and of each reply's deletion): how many live replies, the newest one's
    # time, and the usernames of the latest people to reply, newest first.
    reply_count = models.PositiveIntegerField(default=0)
    last_reply_at = models.DateTimeField(null=True, blank=True)
    repliers = models.JSONField(default=list, blank=True)

    class Broadcast(models.TextChoices):
        NONE = "", "None"
        # @channel (or @everyone): every member of the room.
        CHANNEL = "channel", "@channel"
        # @here: the members who were online when it was sent.
        HERE = "here", "@here"

    broadcast = models.CharField(max_length=8, choices=Broadcast.choices, default="", blank=True)

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(fields=["room", "id"], name="message_room_id"),
            # A thread's replies, in order.
            models.Index(
                fields=["thread", "id"], condition=Q(thread__isnull=False), name="message_thread_id"
            ),
            # Search's date filters find their id bounds through it.
            models.Index(fields=["created"], name="message_created"),
        ]
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


class ThreadFollow(models.Model):
    """Someone following a thread (or having stopped), and how far they have read it.

    A row is made when they start the thread and someone replies, reply to it,
    are mentioned in it, or follow it by hand; `following` false keeps an
    explicit unfollow. `last_read_id` is the newest reply they have read.
    `room` repeats the root's room so the threads of a room are found without
    reading messages.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    root = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="follows")
    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="+")
    following = models.BooleanField(default=True)
    last_read_id = models.BigIntegerField(default=0)
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "root"], name="threadfollow_unique_user_root")
        ]
        indexes = [
            models.Index(fields=["root", "user"], name="threadfollow_root_user"),
            models.Index(fields=["user", "room"], name="threadfollow_user_room"),
        ]

    def __str__(self) -> str:
        return f"user {self.user_id} on {self.root_id}"


class Draft(models.Model):
    """Text typed in a room's (or a thread's) composer and not sent, kept for every device.

    `version` grows with every change, a clear included (an empty `body`
    keeps the row, so an older version can never come back); a change names
    the version it was made on and is refused when that is no longer current.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="+")
    thread = models.ForeignKey(
        Message, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    body = models.TextField(blank=True, default="")
    version = models.PositiveBigIntegerField(default=0)
    updated = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["user", "room"],
                condition=Q(thread__isnull=True),
                name="draft_unique_user_room",
            ),
            models.UniqueConstraint(
                fields=["user", "room", "thread"],
                condition=Q(thread__isnull=False),
                name="draft_unique_user_room_thread",
            ),
        ]
        indexes = [models.Index(fields=["user", "updated"], name="draft_user_updated")]

    def __str__(self) -> str:
        return f"draft of {self.user_id} in {self.room_id}"


class UserGroup(models.Model):
    """A set of people mentioned together (`@design`), defined by admins."""

    handle = models.CharField(
        max_length=64,
        unique=True,
        help_text="What people type after @: letters a–z, digits, and . _ - between them.",
    )
    name = models.CharField(max_length=80, blank=True)
    description = models.CharField(max_length=250, blank=True)
    members = models.ManyToManyField(
        settings.AUTH_USER_MODEL, related_name="user_groups", blank=True
    )
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["handle"]

    def __str__(self) -> str:
        return f"@{self.handle}"


class MentionPolicy(models.Model):
    """The admin's rule for @channel and @here (one row, edited in the admin)."""

    # In rooms with more members than this, only admins and moderators may
    # notify everyone; in smaller rooms anyone may.
    broadcast_max_members = models.PositiveIntegerField(
        default=20,
        help_text="In rooms with more members than this, only admins and moderators "
        "may use @channel and @here.",
    )
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "mention policy"
        constraints = [
            models.CheckConstraint(condition=Q(id=1), name="mention_policy_single_row"),
        ]

    def __str__(self) -> str:
        return "Mention policy"

    def save(self, *args, **kwargs) -> None:
        self.pk = 1
        super().save(*args, **kwargs)

    @classmethod
    def current(cls) -> "MentionPolicy":
        return cls.objects.get_or_create(pk=1)[0]


class Reaction(models.Model):
    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="reactions")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    emoji = models.CharField(max_length=32)
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["message", "user", "emoji"], name="reaction_unique_message_user_emoji"
            )
        ]

    def __str__(self) -> str:
        return f"{self.emoji} on {self.message_id} by {self.user_id}"


class Mention(models.Model):
    """A member named with @username in a message: counted apart from unread."""

    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="mention_rows")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["message", "user"], name="mention_unique_message_user")
        ]
        indexes = [models.Index(fields=["user", "message"], name="mention_user_message")]

    def __str__(self) -> str:
        return f"user {self.user_id} in {self.message_id}"


class Event(models.Model):
    """One change a client must know about, in the order clients must apply them.

    `seq` grows with every change and travels on the socket event; a client
    that reconnects names the last `seq` it saw and is sent every later event
    from here. An event goes to the members of `room` (when set) and to
    `user` (when set): a read marker only to its user, a membership change to
    the room and to the member concerned. With neither, it goes to everyone
    (a profile change).
    """

    seq = models.BigAutoField(primary_key=True)
    kind = models.CharField(max_length=24)
    room = models.ForeignKey(
        Room, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    # Message events are rendered from the message as it is now; the rest
    # carry their payload here.
    message = models.ForeignKey(
        Message, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    data = models.JSONField(default=dict, blank=True)
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["seq"]
        indexes = [
            models.Index(fields=["room", "seq"], name="event_room_seq"),
            models.Index(fields=["user", "seq"], name="event_user_seq"),
            # Events for everyone (profile changes), found by a replay.
            models.Index(
                fields=["seq"],
                condition=Q(room__isnull=True, user__isnull=True),
                name="event_everyone_seq",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.seq} {self.kind}"


def _upload_key() -> str:
    return secrets.token_urlsafe(18)


def uploads_storage() -> Storage:
    """Where uploaded files live: the `uploads` alias of STORAGES (a local directory by default)."""
    return storages["uploads"]


class EventLogHorizon(models.Model):
    """How far the event log was pruned: every event with `seq` <= `pruned_upto` is gone.

    One row. It is raised before rows are deleted, so a socket resuming from
    before it is told to reload rather than sent a catch-up with a hole.
    """

    pruned_upto = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"events pruned up to seq {self.pruned_upto}"


class Upload(models.Model):
    """A file someone uploaded: private to its uploader until a message carries it.

    `key` is the unguessable part of its URL (access is still checked on every
    download). `content_type` comes from the bytes, never from the client.
    Images carry their size (and a thumbnail's) so the page can lay them out
    before they load.
    """

    id = models.BigAutoField(primary_key=True)
    key = models.CharField(max_length=32, unique=True, default=_upload_key, editable=False)
    uploader = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="uploads"
    )
    # Set once, when a message is sent with it; an upload belongs to one message.
    message = models.ForeignKey(
        Message, null=True, blank=True, on_delete=models.SET_NULL, related_name="attachments"
    )
    # The key the uploading client chose (X-Upload-Key), so it can cancel an
    # upload whose answer it never saw; empty when it chose none.
    client_key = models.CharField(max_length=64, blank=True, default="")
    name = models.CharField(max_length=255)
    size = models.BigIntegerField()
    content_type = models.CharField(max_length=100)
    file = models.FileField(storage=uploads_storage, max_length=255)
    width = models.PositiveIntegerField(null=True, blank=True)
    height = models.PositiveIntegerField(null=True, blank=True)
    thumbnail = models.FileField(storage=uploads_storage, max_length=255, blank=True)
    thumb_width = models.PositiveIntegerField(null=True, blank=True)
    thumb_height = models.PositiveIntegerField(null=True, blank=True)
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["id"]
        indexes = [
            # The uploader's quota, and the sweep of uploads never attached.
            models.Index(fields=["uploader", "created"], name="upload_uploader_created"),
            models.Index(
                fields=["created"], condition=Q(message__isnull=True), name="upload_unattached"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.id} {self.name} by {self.uploader_id}"
