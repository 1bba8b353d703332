"""Thread reads: roots, follows and their counts, the Threads list."""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypedDict

from django.db.models import (
    Case,
    Count,
    Exists,
    IntegerField,
    Max,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Value,
    When,
)
from django.db.models.functions import Coalesce

from accounts.models import User

from .. import access, selectors
from ..errors import ChatError, Code, NoSuchThread
from ..models import Membership, Message, ThreadFollow
from ..reusable import ReusableQuery

if TYPE_CHECKING:
    from django_stubs_ext import WithAnnotations

    class _Counts(TypedDict):
        unread: int
        mentions: int


THREADS_DEFAULT_LIMIT = 20
THREADS_MAX_LIMIT = 100
# The one answer to a reply whose root cannot take it, whatever the reason
# (unknown, deleted, in another room, itself a reply): nothing leaks.
ROOT_REFUSED = "thread must name a live top-level message of this room."


def read_data(
    slug: str, root_id: int, following: bool, marker: int, unread: int, mentions: int
) -> dict[str, Any]:
    """The `thread_read` fields. Counts are for followed threads: an unfollowed one counts 0."""
    return {
        "room": slug,
        "root": root_id,
        "following": following,
        "last_read_id": marker,
        "unread": unread if following else 0,
        "mentions": mentions if following else 0,
    }


def _count(qs: QuerySet[Message]) -> Coalesce:
    return Coalesce(
        Subquery(
            qs.order_by().values("thread_id").annotate(n=Count("id")).values("n")[:1],
            output_field=IntegerField(),
        ),
        Value(0),
    )


def _counted(follows: QuerySet[ThreadFollow]) -> "QuerySet[WithAnnotations[ThreadFollow, _Counts]]":
    """Follows with `unread` (live replies by others after the marker) and `mentions` of them."""
    unread = Message.objects.filter(
        thread_id=OuterRef("root_id"), id__gt=OuterRef("last_read_id"), is_deleted=False
    ).exclude(author_id=OuterRef("user_id"))
    mentioned = unread.filter(selectors.mentioning(OuterRef(OuterRef("user_id"))))
    return follows.annotate(unread=_count(unread), mentions=_count(mentioned))


def _member() -> Exists:
    """Whether the follow's user is a member of its room: only members follow."""
    return Exists(
        Membership.objects.filter(room_id=OuterRef("room_id"), user_id=OuterRef("user_id"))
    )


# (user id, root id, room slug, following, marker, unread, mentions)
FollowerRow = tuple[int, int, str, bool, int, int, int]


def follower_counts(root_ids: set[int], user_ids: set[int] | None = None) -> list[FollowerRow]:
    """The follows of these roots by members of their rooms, with counts. One query.

    Those following; with `user_ids`, those users' rows whatever their state.
    """
    follows = ThreadFollow.objects.filter(root_id__in=root_ids).filter(_member())
    if user_ids is None:
        follows = follows.filter(following=True)
    else:
        follows = follows.filter(user_id__in=user_ids)
    return list(
        _counted(follows)
        .order_by("root_id", "user_id")
        .values_list(
            "user_id", "root_id", "room__slug", "following", "last_read_id", "unread", "mentions"
        )
    )


def state(user: User, root: Message) -> dict[str, Any]:
    """The user's `thread_read` fields for this thread (not following, 0: no row). One query."""
    rows = follower_counts({root.id}, {user.pk})
    if not rows:
        return read_data(root.room.slug, root.id, False, 0, 0, 0)
    _, _, slug, following, marker, unread, mentions = rows[0]
    return read_data(slug, root.id, following, marker, unread, mentions)


def roots_for_replies(root_ids: set[int]) -> dict[int, Message]:
    """The messages replies name, with whether their author is still a member. One query."""
    if not root_ids:
        return {}
    rows = (
        Message.objects.filter(id__in=root_ids)
        .only(
            "id",
            "room_id",
            "author_id",
            "thread_id",
            "is_deleted",
            "reply_count",
            "last_reply_at",
            "repliers",
        )
        .annotate(
            author_member=Exists(
                Membership.objects.filter(
                    room_id=OuterRef("room_id"), user_id=OuterRef("author_id")
                )
            )
        )
    )
    return {m.id: m for m in rows}


def root_refusal(root: Message | None, room_id: int) -> ChatError | None:
    """Why a reply may not go under `root` in room `room_id` (None: it may)."""
    if root is None or root.room_id != room_id or root.thread_id is not None or root.is_deleted:
        return ChatError(Code.INVALID, ROOT_REFUSED)
    return None


def root_for_reader(user: User, root_id: int) -> tuple[Message, bool]:
    """The root of a thread `user` may read, and whether they are a member of its room.

    A root is a top-level message, live or deleted with live replies.
    NoSuchThread otherwise, and for a room the user may not read. One query.
    """
    root = (
        Message.objects.filter(pk=root_id, thread__isnull=True)
        .filter(selectors.shown())
        .filter(access.readable_through(user.pk))
        .select_related("room", "author")
        .annotate(
            is_member=Exists(Membership.objects.filter(room_id=OuterRef("room_id"), user=user))
        )
        .first()
    )
    if root is None:
        raise NoSuchThread()
    return root, bool(root.is_member)


def root_in_room(room_id: int, root_id: int) -> Message:
    """The root `root_id` of a room already checked for the reader (history `?thread=`)."""
    root = (
        Message.objects.filter(pk=root_id, room_id=room_id, thread__isnull=True)
        .filter(selectors.shown())
        .select_related("author")
        .only(*selectors.MESSAGE_FIELDS)
        .first()
    )
    if root is None:
        raise NoSuchThread()
    return root


def latest_reply_id(root_id: int) -> int:
    return Message.objects.filter(thread_id=root_id).aggregate(m=Max("id"))["m"] or 0


def _followed(user_ids: set[int]) -> "QuerySet[WithAnnotations[ThreadFollow, _Counts]]":
    """Followed threads of these users in rooms they may still read, with their counts."""
    readable = access.public(prefix="room__") | Q(_member())
    follows = ThreadFollow.objects.filter(user_id__in=user_ids, following=True)
    # A root deleted with no reply left is no thread any more.
    follows = follows.filter(Q(root__is_deleted=False) | Q(root__reply_count__gt=0))
    return _counted(follows.filter(readable))


def threads_unread_of(user_ids: set[int]) -> dict[int, list[dict[str, Any]]]:
    """user id -> their followed threads with unread replies (`resumed.threads`). One query."""
    found: dict[int, list[dict[str, Any]]] = {user_id: [] for user_id in user_ids}
    if not user_ids:
        return found
    for user_id, slug, root, marker, unread, mentions in _UNREAD_OF.rows(sorted(user_ids)):
        found[user_id].append(read_data(slug, root, True, marker, unread, mentions))
    return found


# Built once: every reconnecting socket's catch-up ends with it.
_UNREAD_OF = ReusableQuery(
    lambda user_ids: (
        _followed(user_ids)
        .filter(unread__gt=0)
        .order_by("root_id")
        .values_list("user_id", "room__slug", "root_id", "last_read_id", "unread", "mentions")
    ),
    lists=1,
)


@dataclass(frozen=True)
class FollowedThread:
    room_slug: str
    root: Message
    last_read_id: int
    unread: int
    mentions: int


@dataclass(frozen=True)
class FollowedPage:
    threads: list[FollowedThread]
    next: str | None


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def _cursor(flag: int, at: datetime, root_id: int) -> str:
    return f"{flag}_{(at - _EPOCH) // _MICROSECOND}_{root_id}"


def _cursor_parse(cursor: str) -> tuple[int, datetime, int]:
    parts = cursor.split("_")
    if len(parts) != 3 or not all(p.isascii() and p.isdigit() and len(p) <= 18 for p in parts):
        raise ChatError(Code.INVALID, "cursor is not one this list gave.")
    flag, at, root = (int(p) for p in parts)
    return flag, _EPOCH + at * _MICROSECOND, root


_ROOT_FIELDS = tuple(f"root__{name}" for name in selectors.MESSAGE_FIELDS)


def threads_followed(
    user: User, *, limit: int = THREADS_DEFAULT_LIMIT, cursor: str | None = None
) -> FollowedPage:
    """The threads `user` follows in rooms they may still read: unread first, then newest.

    "Newest" by the latest reply (the root's own time when it has none).
    `cursor` is a previous page's `next`. Two queries per page.
    """
    limit = max(1, min(limit, THREADS_MAX_LIMIT))
    rows = _followed({user.pk}).annotate(
        has_unread=Case(When(unread__gt=0, then=Value(1)), default=Value(0)),
        activity=Coalesce("root__last_reply_at", "root__created"),
    )
    if cursor:
        flag, at, root_id = _cursor_parse(cursor)
        rows = rows.filter(
            Q(has_unread__lt=flag)
            | Q(has_unread=flag, activity__lt=at)
            | Q(has_unread=flag, activity=at, root_id__lt=root_id)
        )
    page = list(
        rows.select_related("room", "root__author")
        .order_by("-has_unread", "-activity", "-root_id")
        .only("root_id", "room__slug", "last_read_id", *_ROOT_FIELDS)[: limit + 1]
    )
    more = len(page) > limit
    page = page[:limit]
    next_cursor = None
    if more:
        last = page[-1]
        next_cursor = _cursor(last.has_unread, last.activity, last.root_id)
    found = [
        FollowedThread(f.room.slug, f.root, f.last_read_id, f.unread, f.mentions) for f in page
    ]
    return FollowedPage(found, next_cursor)
