"""Thread writes: what replies change, read markers in threads, following by hand."""

from dataclasses import dataclass
from typing import Any

from django.db import connection
from django.db.models import Count, Max
from django.utils import timezone

from accounts.models import User

from .. import access, events
from ..eventlog import Item, logged_change
from ..models import Event, Message, ThreadFollow
from . import selectors

# The latest people to reply that a root shows, newest first.
REPLIERS_SHOWN = 5


def _read_events(rows: list[selectors.FollowerRow]) -> list[Event]:
    return [
        Event(kind="thread_read", user_id=user, data=selectors.read_data(slug, root, f, at, u, m))
        for user, root, slug, f, at, u, m in rows
    ]


def _log(rows: list[Event], items: list[Item]) -> None:
    """Write these events in one statement and queue their items, in seq order."""
    for event in Event.objects.bulk_create(rows):
        text = events.encode(events.stored_event(event.kind, event.data, event.seq))
        rooms = (event.room_id,) if event.room_id is not None else ()
        items.append(Item(text, rooms, event.user_id, seq=event.seq))


def _thread_event(root: Message, slug: str) -> Event:
    data = {"room": slug, "root": root.id, **events.thread_summary(root)}
    return Event(kind="thread", room_id=root.room_id, data=data)


# --- the send path ------------------------------------------------------------


@dataclass(frozen=True)
class StoredReply:
    """A reply just inserted by a send's transaction, and the members it mentions."""

    message: Message
    room_slug: str
    mentioned: tuple[int, ...]


def replies_stored(
    replies: list[StoredReply], roots: dict[int, Message], items: list[Item]
) -> None:
    """Everything a batch of new replies changes, inside the send's logged change.

    The roots' summaries; the follows (each replier and whoever a reply
    mentions, even after an unfollow; the root's author at the first reply,
    unless they unfollowed); each replier's marker moved to their reply; then
    a `thread` event per root and a `thread_read` event per follower. A
    constant number of queries, whatever the replies and followers. `roots`
    come from selectors.roots_for_replies, read in the same logged change.
    """
    if not replies:
        return
    by_root: dict[int, list[StoredReply]] = {}
    for reply in replies:
        assert reply.message.thread_id is not None
        by_root.setdefault(reply.message.thread_id, []).append(reply)
    forced: dict[tuple[int, int], tuple[int, int]] = {}  # (user, root) -> (room, marker)
    soft: dict[tuple[int, int], tuple[int, int]] = {}
    slugs: dict[int, str] = {}
    for root_id, group in by_root.items():
        root = roots[root_id]
        slugs[root_id] = group[0].room_slug
        if root.reply_count == 0 and getattr(root, "author_member", False):
            soft[(root.author_id, root_id)] = (root.room_id, 0)
        names = list(root.repliers)
        for reply in group:
            message = reply.message
            who = message.author.username
            names = [who, *(n for n in names if n != who)]
            key = (message.author_id, root_id)
            forced[key] = (root.room_id, max(message.id, forced.get(key, (0, 0))[1]))
            for user_id in reply.mentioned:
                forced.setdefault((user_id, root_id), (root.room_id, 0))
        root.reply_count += len(group)
        root.last_reply_at = max(r.message.created for r in group)
        root.repliers = names[:REPLIERS_SHOWN]
    Message.objects.bulk_update(
        [roots[r] for r in by_root], ["reply_count", "last_reply_at", "repliers"]
    )
    _follows_upsert(forced, refollow=True)
    _follows_upsert({k: v for k, v in soft.items() if k not in forced}, refollow=False)
    rows = [_thread_event(roots[r], slugs[r]) for r in by_root]
    _log(rows + _read_events(selectors.follower_counts(set(by_root))), items)


def _follows_upsert(wanted: dict[tuple[int, int], tuple[int, int]], *, refollow: bool) -> None:
    """Make these (user, root) -> (room, marker) rows follow, markers moved forward to `marker`.

    `refollow`: an explicit unfollow is overridden; otherwise an existing row
    is left as it is. One statement, whatever the number of rows.
    """
    if not wanted:
        return
    table = ThreadFollow._meta.db_table
    values = ", ".join(["(%s, %s, %s, %s, %s, %s)"] * len(wanted))
    now = timezone.now()
    params = [
        v for (user, root), (room, at) in wanted.items() for v in (user, root, room, True, at, now)
    ]
    conflict = "DO NOTHING"
    if refollow:
        # SQLite (the zero-setup default) spells GREATEST as a two-argument MAX.
        greatest = "GREATEST" if connection.vendor == "postgresql" else "MAX"
        conflict = (
            "DO UPDATE SET following = %s, "
            f"last_read_id = {greatest}({table}.last_read_id, EXCLUDED.last_read_id)"
        )
        params.append(True)
    sql = (
        f"INSERT INTO {table} (user_id, root_id, room_id, following, last_read_id, created) "  # noqa: S608  (placeholders only)
        f"VALUES {values} ON CONFLICT (user_id, root_id) {conflict}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


# --- edits and deletions of replies -------------------------------------------


def reply_edited(message: Message, mentioned: list[User], items: list[Item]) -> None:
    """An edited reply, inside the edit's logged change: whoever it now mentions follows,
    and the followers who have it unread get their mention counts again."""
    root_id = message.thread_id
    assert root_id is not None
    _follows_upsert({(u.pk, root_id): (message.room_id, 0) for u in mentioned}, refollow=True)
    rows = selectors.follower_counts({root_id})
    _log(_read_events([r for r in rows if r[4] < message.id and r[0] != message.author_id]), items)


def reply_deleted(message: Message, items: list[Item]) -> None:
    """A deleted reply, inside the delete's logged change: the root's summary from its
    live replies, and the counts of the followers who had it unread."""
    root_id = message.thread_id
    assert root_id is not None
    live = Message.objects.filter(thread_id=root_id, is_deleted=False)
    summary = live.aggregate(n=Count("id"), last=Max("created"))
    latest = live.values("author__username").annotate(newest=Max("id")).order_by("-newest")
    root = Message.objects.select_related("room").get(pk=root_id)
    root.reply_count = summary["n"]
    root.last_reply_at = summary["last"]
    root.repliers = [row["author__username"] for row in latest[:REPLIERS_SHOWN]]
    root.save(update_fields=["reply_count", "last_reply_at", "repliers"])
    rows = selectors.follower_counts({root_id})
    unread_for = [r for r in rows if r[4] < message.id and r[0] != message.author_id]
    _log([_thread_event(root, root.room.slug), *_read_events(unread_for)], items)


# --- reading and following ----------------------------------------------------


def _root_for_member(user: User, root_id: int) -> Message:
    """The root, if `user` is a member of its room (not_found / not_member otherwise)."""
    root, is_member = selectors.root_for_reader(user, root_id)
    room = root.room
    access.check_member(room.slug, public=access.is_public(room), is_member=is_member)
    return root


def _logged_state(user: User, root: Message, items: list[Item]) -> dict[str, Any]:
    """The user's state of the thread, logged as a `thread_read` event to their sockets."""
    data = selectors.state(user, root)
    _log([Event(kind="thread_read", user_id=user.pk, data=data)], items)
    return data


@dataclass(frozen=True)
class ThreadReadResult:
    data: dict[str, Any]
    # Whether it changed and was logged (then every socket of the user is told).
    logged: bool


def thread_read_set(*, user: User, root_id: int, message_id: int) -> ThreadReadResult:
    """Move `user`'s read marker in the thread of `root_id` to `message_id` (back too).

    The marker never passes the thread's newest reply. A thread the user has
    no follow row for keeps no marker: the answer is its state and nothing
    is written. When the marker moves, every socket of the user is told
    (`thread_read`); when it does not, nothing is locked or logged.
    """
    root = _root_for_member(user, root_id)
    new = min(message_id, selectors.latest_reply_id(root.id))
    row = ThreadFollow.objects.filter(user=user, root=root).only("last_read_id").first()
    if row is None or row.last_read_id == new:
        return ThreadReadResult(selectors.state(user, root), logged=False)
    with logged_change() as items:
        moved = ThreadFollow.objects.filter(pk=row.pk).exclude(last_read_id=new)
        if not moved.update(last_read_id=new):  # another tab moved it there, and said so
            return ThreadReadResult(selectors.state(user, root), logged=False)
        data = _logged_state(user, root, items)
    return ThreadReadResult(data, logged=True)


def thread_follow_set(*, user: User, root_id: int, following: bool) -> dict[str, Any]:
    """Follow or unfollow a thread by hand; every socket of the user is told when it changes.

    Following a thread one never followed starts with it read (one follows
    what one is looking at). An unfollow is kept, so the root's author is not
    made to follow again at the first reply (their own reply or a mention is).
    """
    root = _root_for_member(user, root_id)
    with logged_change() as items:
        row = ThreadFollow.objects.select_for_update().filter(user=user, root=root).first()
        if row is not None and row.following == following:
            return selectors.state(user, root)
        if row is None:
            ThreadFollow.objects.create(
                user=user,
                root=root,
                room_id=root.room_id,
                following=following,
                last_read_id=selectors.latest_reply_id(root.id),
            )
        else:
            ThreadFollow.objects.filter(pk=row.pk).update(following=following)
        return _logged_state(user, root, items)
