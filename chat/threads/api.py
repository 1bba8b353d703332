"""The thread endpoints: the Threads list, following by hand, read markers.

Thin views over chat.threads: each parses its input, calls one service or
selector and serializes. A thread of a room the user may not read is 404
`not_found`, exactly as one that does not exist.
"""

from typing import Any

from django.http import JsonResponse

from accounts.http import AuthenticatedRequest

from .. import events, selectors
from ..api import allow, api_view, json_body
from ..errors import ChatError, Code
from ..models import Message
from . import selectors as thread_selectors
from . import services


def roots_data(roots: list[tuple[Message, str]]) -> list[dict[str, Any]]:
    """Message objects of roots from any rooms (with their room slugs). Three queries."""
    ids = [m.id for m, _ in roots]
    reactions, mentions = selectors.message_extras(ids)
    files = selectors.message_attachments(ids)
    return [
        events.message_data(
            m,
            slug,
            reactions=reactions.get(m.id),
            mentions=mentions.get(m.id),
            attachments=files.get(m.id),
        )
        for m, slug in roots
    ]


@allow("GET")
@api_view
def threads(request: AuthenticatedRequest) -> JsonResponse:
    """`?limit=&cursor=`: the threads the user follows, unread first, then by latest reply."""
    raw = request.GET.get("limit", "")
    if raw and not (raw.isascii() and raw.isdigit() and len(raw) <= 6 and int(raw) > 0):
        raise ChatError(Code.INVALID, "limit must be a whole number of at least 1.")
    limit = int(raw) if raw else thread_selectors.THREADS_DEFAULT_LIMIT
    page = thread_selectors.threads_followed(
        request.user, limit=limit, cursor=request.GET.get("cursor") or None
    )
    objects = roots_data([(t.root, t.room_slug) for t in page.threads])
    return JsonResponse(
        {
            "threads": [
                {
                    "room": t.room_slug,
                    "root": root,
                    "following": True,
                    "last_read_id": t.last_read_id,
                    "unread": t.unread,
                    "mentions": t.mentions,
                }
                for t, root in zip(page.threads, objects, strict=True)
            ],
            "next": page.next,
        }
    )


@allow("POST", "DELETE")
@api_view
def thread_follow(request: AuthenticatedRequest, root_id: int) -> JsonResponse:
    """POST: follow the thread; DELETE: stop following it. Answers the `thread_read` fields."""
    data = services.thread_follow_set(
        user=request.user, root_id=root_id, following=request.method == "POST"
    )
    return JsonResponse(data)


@allow("POST")
@api_view
def thread_read(request: AuthenticatedRequest, root_id: int) -> JsonResponse:
    """`{"id"}`: move the thread's read marker there. Answers the `thread_read` fields."""
    message_id = json_body(request).get("id")
    if isinstance(message_id, bool) or not isinstance(message_id, int) or message_id < 0:
        raise ChatError(Code.INVALID, "id must be a non-negative whole number.")
    result = services.thread_read_set(user=request.user, root_id=root_id, message_id=message_id)
    return JsonResponse(result.data)
