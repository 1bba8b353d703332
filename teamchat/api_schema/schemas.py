"""Every JSON shape of the API, as pydantic classes the OpenAPI schema is generated from.

They describe what the views send (chat.events, chat.api, accounts.selectors
and friends build the dicts); the tests check each response against them
(tests/openapi_check.py), so a field added to a view without being added
here fails the test that sees it only if it breaks a type or a required
field: extra fields are allowed, as clients must ignore fields they do not
know (docs/protocol.md).
"""

from typing import Literal

from ninja import Schema
from pydantic import Field

# --- Errors ------------------------------------------------------------------------


class Error(Schema):
    """Every refusal: a stable machine-readable code and a sentence for people."""

    error: str = Field(description="The code, from docs/protocol.md (never changes).")
    detail: str = Field(description="What went wrong, in words.")


class SearchError(Error):
    filter: str | None = Field(None, description="The search filter that was refused.")


# --- Rooms -------------------------------------------------------------------------


class Room(Schema):
    slug: str
    name: str
    topic: str
    kind: str = Field(description='"channel" or "dm".')
    private: bool
    archived: bool


class SidebarRoom(Room):
    unread: int
    mentions: int
    thread_unread: int
    thread_mentions: int
    last_read_id: int
    members: list[str] = Field(description="A DM's other people; empty for channels.")
    notify: str = Field(description='"default", "all", "mentions" or "none".')


class BrowsedRoom(Room):
    joined: bool
    members_count: int


class RoomList(Schema):
    rooms: list[SidebarRoom] | list[BrowsedRoom] = Field(
        description="The user's rooms with their counts; with ?browse=1 every public channel."
    )


class RoomOut(Schema):
    room: Room


class RoomLeft(Schema):
    left: str = Field(description="The slug of the room left.")


class RoomCreateIn(Schema):
    name: str
    slug: str | None = None
    topic: str | None = None
    private: bool | None = None


class RoomUpdateIn(Schema):
    name: str | None = None
    topic: str | None = None
    archived: bool | None = None


class ReadIn(Schema):
    id: int = Field(ge=0, description="The last message read.")


class ReadMarker(Schema):
    room: str
    last_read_id: int
    unread: int
    mentions: int
    thread_unread: int
    thread_mentions: int


class Member(Schema):
    username: str
    presence: str = Field(description='"active", "idle" or "offline".')


class MemberList(Schema):
    members: list[Member]


class InviteIn(Schema):
    username: str


class Invited(Schema):
    username: str


class DmIn(Schema):
    users: list[str]


class NotifyIn(Schema):
    level: Literal["default", "all", "mentions", "none"]


class NotifyOut(Schema):
    room: str
    notify: str


# --- Messages ----------------------------------------------------------------------


class Thumbnail(Schema):
    url: str
    width: int | None
    height: int | None


class Attachment(Schema):
    id: int
    name: str
    size: int
    content_type: str
    url: str
    width: int | None
    height: int | None
    thumbnail: Thumbnail | None


class Message(Schema):
    """A message as history, sends and edits return it (the socket's `message` event)."""

    room: str
    id: int
    user: str
    body: str
    created: str = Field(description="ISO 8601 with its offset.")
    nonce: str | None
    html: str = Field(description="The body rendered as sanitized HTML.")
    edited: str | None
    mentions: list[str]
    broadcast: str | None = Field(description='"channel" or "here" when the body says so.')
    reactions: dict[str, list[str]] = Field(description="Emoji to the usernames of who reacted.")
    attachments: list[Attachment]
    deleted: bool
    thread: int | None = Field(description="A reply: its root's id.")
    in_channel: bool
    replies: int | None = Field(None, description="A root: how many replies.")
    last_reply: str | None = None
    repliers: list[str] | None = None


class ThreadState(Schema):
    """The reader's own state of a thread (the socket's `thread_read` fields)."""

    room: str
    root: int
    following: bool
    last_read_id: int
    unread: int
    mentions: int


class MessageList(Schema):
    messages: list[Message] = Field(description="Oldest first.")
    root: Message | None = Field(None, description="With ?thread=: the thread's root.")
    state: ThreadState | None = Field(None, description="With ?thread=: the reader's state.")


class MessageOut(Schema):
    message: Message


class MessageSendIn(Schema):
    body: str
    nonce: str | None = Field(None, description="The client's id; a retry answers 200.")
    thread: int | None = Field(None, description="Reply in this root's thread.")
    in_channel: bool | None = Field(None, description="A reply also shown in the room.")
    attachments: list[int] | None = Field(None, description="Ids of the sender's uploads.")


class MessageEditIn(Schema):
    body: str


class ReactionIn(Schema):
    emoji: str


class Reaction(Schema):
    emoji: str
    users: list[str] = Field(description="Who reacted with it now.")


# --- Threads -----------------------------------------------------------------------


class FollowedThread(Schema):
    room: str
    root: Message
    following: bool
    last_read_id: int
    unread: int
    mentions: int


class ThreadList(Schema):
    threads: list[FollowedThread]
    next: str | None = Field(description="The cursor of the next page; null at the end.")


# --- Drafts ------------------------------------------------------------------------


class Draft(Schema):
    room: str
    thread: int | None
    body: str
    version: int
    updated: str | None


class DraftList(Schema):
    drafts: list[Draft]


class DraftOut(Schema):
    draft: Draft


class DraftIn(Schema):
    room: str
    thread: int | None = None
    body: str
    version: int = Field(ge=0, description="The stored draft's version this text is based on.")


class DraftConflict(Error):
    draft: Draft = Field(description="The draft as stored, newer than the one sent.")


# --- Groups ------------------------------------------------------------------------


class Group(Schema):
    handle: str
    name: str
    description: str
    members: list[str]


class GroupList(Schema):
    groups: list[Group]


class GroupOut(Schema):
    group: Group


class GroupIn(Schema):
    handle: str
    name: str | None = None
    description: str | None = None
    members: list[str] | None = None


class GroupUpdateIn(Schema):
    handle: str | None = None
    name: str | None = None
    description: str | None = None
    members: list[str] | None = None


# --- Uploads -----------------------------------------------------------------------


class UploadOut(Schema):
    upload: Attachment


class FileIn(Schema):
    file: bytes = Field(description="The file, as the one field of multipart/form-data.")


# --- People, profile, session ------------------------------------------------------


class Status(Schema):
    text: str
    emoji: str
    expires: str | None


class Person(Schema):
    username: str
    display_name: str
    title: str
    time_zone: str
    status: Status | None
    avatar: str | None = Field(description="The picture's URL; null for none.")
    dnd_until: str | None


class PeopleList(Schema):
    people: list[Person]


class ProfileOut(Schema):
    profile: Person


class ProfileIn(Schema):
    display_name: str | None = None
    title: str | None = None
    time_zone: str | None = None
    status: dict[str, str | None] | None = None
    dnd_until: str | None = None


class SessionOut(Schema):
    user: str = Field(description="The signed-in username.")


class User(Schema):
    username: str


class UserList(Schema):
    users: list[User]


class EmojiEntry(Schema):
    emoji: str
    name: str
    shortcodes: list[str]


class EmojiCatalog(Schema):
    emoji: list[EmojiEntry]


# --- Search ------------------------------------------------------------------------


class SearchHit(Schema):
    id: int
    room: str
    room_name: str
    room_kind: str
    people: list[str]
    user: str
    user_display_name: str
    user_avatar: str | None
    created: str
    snippet: list[tuple[str, bool]] = Field(description="[text, matched] pieces of the body.")
    snippet_html: str
    attachments: list[Attachment]
    thread: int | None
    in_channel: bool


class SearchResults(Schema):
    results: list[SearchHit]
    total: int
    total_exact: bool
    start: int
    next: str | None


# --- Tokens ------------------------------------------------------------------------


class Token(Schema):
    id: int
    name: str
    prefix: str = Field(description="The secret's first characters, to tell tokens apart.")
    scope: Literal["read", "write"]
    created: str
    last_used: str | None
    expires: str | None


class TokenList(Schema):
    tokens: list[Token]


class TokenCreated(Token):
    token: str = Field(description="The secret, shown this once: `Authorization: Bearer ...`.")


class TokenIn(Schema):
    name: str = Field(min_length=1, max_length=100)
    scope: Literal["read", "write"] = "write"
    expires: str | None = Field(None, description="ISO 8601 with its offset; null: never.")


# --- Bots and incoming webhooks ----------------------------------------------------


class Bot(Schema):
    username: str
    display_name: str
    owner: str | None = Field(description="Who manages it; null once reassigned to nobody.")
    active: bool
    created: str


class BotList(Schema):
    bots: list[Bot]


class BotOut(Schema):
    bot: Bot


class Webhook(Schema):
    id: int
    name: str
    room: str
    prefix: str = Field(description="The secret's first characters.")
    created: str
    last_used: str | None


class WebhookCreated(Webhook):
    url: str = Field(description="The secret URL to POST to, shown this once.")


class WebhookOut(Schema):
    webhook: WebhookCreated


class WebhookList(Schema):
    webhooks: list[Webhook]


class BotDetail(Schema):
    bot: Bot
    webhooks: list[Webhook]


class BotRoomAdded(Schema):
    bot: Bot
    room: str


class BotIn(Schema):
    username: str
    display_name: str | None = None


class BotUpdateIn(Schema):
    display_name: str | None = None
    owner: str | None = Field(None, description="A new owner's username (admins).")


class BotRoomIn(Schema):
    room: str


class WebhookIn(Schema):
    room: str
    name: str | None = None


# --- Slash commands ----------------------------------------------------------------


class CommandIn(Schema):
    text: str = Field(description="The command as typed, like `/topic Launch day`.")
    thread: int | None = Field(None, description="Run it in this root's thread.")
    nonce: str | None = None


class CommandResult(Schema):
    ok: bool
    text: str = Field(description="Feedback for the person who ran it.")
    message_id: int | None
    message: Message | None = Field(None, description="The message the command sent, if any.")


class Command(Schema):
    name: str
    usage: str
    description: str
    bot: str | None = Field(description="The bot whose command it is; null: built in.")


class CommandList(Schema):
    commands: list[Command]


class CommandOut(Schema):
    command: Command


class CommandRegisterIn(Schema):
    bot: str | None = Field(None, description="The bot's username (a bot's own token: itself).")
    name: str
    description: str | None = None
    usage: str | None = None


class Export(Schema):
    id: int
    scope: Literal["org", "user"]
    status: Literal["queued", "running", "done", "failed"]
    progress: int = Field(description="0 to 100.")
    counts: dict[str, int]
    size: int
    error: str
    created: str
    finished: str | None
    download: str | None = Field(description="Where to download it, once done.")


class ExportOut(Schema):
    export: Export


class ExportList(Schema):
    exports: list[Export]


class ExportIn(Schema):
    scope: Literal["org", "user"]


class OutgoingWebhook(Schema):
    id: int
    bot: str
    owner: str | None
    url: str
    secret: str = Field(description="The HMAC-SHA256 signing secret (docs/webhooks.md).")
    trigger_words: list[str]
    rooms: list[str]
    active: bool
    created: str


class OutgoingWebhookOut(Schema):
    webhook: OutgoingWebhook


class OutgoingWebhookList(Schema):
    webhooks: list[OutgoingWebhook]


class OutgoingWebhookIn(Schema):
    bot: str
    url: str
    trigger_words: list[str] | None = None
    rooms: list[str] | None = None
    active: bool | None = None


class OutgoingWebhookUpdateIn(Schema):
    url: str | None = None
    trigger_words: list[str] | None = None
    rooms: list[str] | None = None
    active: bool | None = None


class Delivery(Schema):
    event_id: str
    type: str | None
    trigger: str | None
    status: Literal["pending", "delivered", "failed"]
    attempts: int
    created: str
    next_attempt_at: str | None
    delivered_at: str | None
    last_status_code: int | None
    last_error: str


class DeliveryList(Schema):
    deliveries: list[Delivery]
