"""The JSON API (session-authenticated): history, rooms, members, messages.

Each view parses its input, calls one service or selector, and serializes;
writes go through the same services as socket frames, so their events reach
every open socket the same way.
"""

import functools
import gzip
import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, JsonResponse, QueryDict

from accounts.http import AuthenticatedRequest

from . import events, selectors, services
from .errors import ChatError, Code, NotAuthenticated, RateLimited
from .models import Room
from .protocol import FrameError, TooDeep, attachment_ids, json_loads, reply_fields
from .ratelimit import writes
from .realtime import presence
from .threads import selectors as thread_selectors

_READS = frozenset({"GET", "HEAD", "OPTIONS"})

STATUS = {
    Code.INVALID: 400,
    Code.TOO_LONG: 400,
    Code.ROOM_EXISTS: 400,
    Code.NOT_AUTHENTICATED: 401,
    Code.NOT_MEMBER: 403,
    Code.FORBIDDEN: 403,
    Code.NO_SUCH_ROOM: 404,
    Code.NOT_FOUND: 404,
    Code.RATE_LIMITED: 429,
    Code.TOO_LARGE: 413,
    Code.QUOTA_EXCEEDED: 413,
    Code.CONFLICT: 409,
    Code.UNAVAILABLE: 503,
}


@dataclass(frozen=True)
class HistoryParams:
    after: int | None
    before: int | None
    limit: int
    # A thread's replies only: the root's id.
    thread: int | None = None
    # Only what the room itself shows: no reply that stays in its thread.
    in_room: bool = False


def _error(status: int, code: str, detail: str) -> JsonResponse:
    return JsonResponse({"error": code, "detail": detail}, status=status)


def error_response(error: ChatError) -> JsonResponse:
    """The JSON answer to a refusal: its code, its detail, and the status its code has."""
    return _error(STATUS.get(error.code, 400), error.code, error.detail)


def allow(*methods: str) -> Callable[[Callable[..., HttpResponse]], Callable[..., HttpResponse]]:
    """Only these methods (HEAD with GET); any other gets 405 in JSON, like every API error."""
    allowed = {*methods, "HEAD"} if "GET" in methods else set(methods)

    def decorate(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if request.method not in allowed:
                response = _error(405, Code.METHOD_NOT_ALLOWED, f"Use {', '.join(methods)}.")
                response["Allow"] = ", ".join(sorted(allowed))
                return response
            return view(request, *args, **kwargs)

        return wrapper

    return decorate


def _api(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """401 for anonymous users; ChatError becomes its JSON error with the right status.

    Writes share the user's bucket with socket frames (chat.ratelimit.writes):
    past it, 429 `rate_limited` and nothing done.
    """

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request.user.is_authenticated:
            return error_response(NotAuthenticated())
        if request.method not in _READS and not writes.allow(request.user.pk):
            return error_response(RateLimited())
        try:
            return view(request, *args, **kwargs)
        except ChatError as exc:
            return error_response(exc)

    return wrapper


# The API's one way in (who is asking, their write budget, errors in JSON),
# for API views that live with their feature (chat.uploads).
api_view = _api


def not_found(request: HttpRequest) -> HttpResponse:
    """An /api/ path that names nothing."""
    return _error(404, Code.NOT_FOUND, "There is nothing at this address.")


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """A refused CSRF check: JSON for the API, Django's page elsewhere."""
    if request.path.startswith("/api/"):
        return _error(403, Code.CSRF_FAILED, "The CSRF token is missing or wrong; reload the page.")
    from django.views.csrf import csrf_failure as django_csrf_failure

    return django_csrf_failure(request, reason=reason)


def _json_body(request: HttpRequest) -> dict[str, Any]:
    try:
        raw = request.body
    except RequestDataTooBig:
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE // 1024
        raise ChatError(Code.TOO_LONG, f"The request body is over {limit} KiB.") from None
    try:
        data = json_loads(raw or b"{}")
    except TooDeep as exc:
        raise ChatError(Code.INVALID, str(exc)) from None
    except ValueError:
        raise ChatError(Code.INVALID, "The request body is not valid JSON.") from None
    if not isinstance(data, dict):
        raise ChatError(Code.INVALID, "The request body must be a JSON object.")
    if not _storable(data):
        raise ChatError(Code.INVALID, "The request contains NUL or broken Unicode.")
    return data


# For API views that live with their feature (accounts: profiles).
json_body = _json_body


def _storable(value: Any) -> bool:
    if isinstance(value, str):
        return services.text_is_storable(value)
    if isinstance(value, dict):
        return all(_storable(k) and _storable(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_storable(v) for v in value)
    return True


def _optional_bool(data: dict[str, Any], name: str) -> bool | None:
    """A JSON true or false, or None when absent: "false" is not false."""
    value = data.get(name)
    if value is not None and not isinstance(value, bool):
        raise ChatError(Code.INVALID, f"{name} must be true or false.")
    return value


def _non_negative_int(query: QueryDict, name: str) -> int | None:
    raw = query.get(name)
    if raw is None:
        return None
    if not raw.isascii() or not raw.isdigit() or len(raw) > 18:
        raise ValueError(f"{name} must be a non-negative whole number.")
    return int(raw)


def _history_params(query: QueryDict) -> HistoryParams:
    after = _non_negative_int(query, "after")
    before = _non_negative_int(query, "before")
    limit = _non_negative_int(query, "limit")
    if limit is None:
        limit = selectors.HISTORY_DEFAULT_LIMIT
    elif limit < 1:
        raise ValueError("limit must be at least 1.")
    thread = _non_negative_int(query, "thread")
    in_room = query.get("in_room")
    if in_room not in (None, "0", "1"):
        raise ValueError("in_room must be 0 or 1.")
    return HistoryParams(
        after, before, min(limit, selectors.HISTORY_MAX_LIMIT), thread, in_room == "1"
    )


def messages_data(page: list, room_slug: str) -> list[dict[str, Any]]:
    """Messages with their reactions, mentions and files: four queries for any page."""
    ids = [m.id for m in page]
    reactions, mentions = selectors.message_extras(ids)
    files = selectors.message_attachments(ids)
    return [
        events.message_data(
            m,
            room_slug,
            reactions=reactions.get(m.id),
            mentions=mentions.get(m.id),
            attachments=files.get(m.id),
        )
        for m in page
    ]


def _message_post(request: AuthenticatedRequest, slug: str) -> JsonResponse:
    """POST {"body", "nonce"?, "thread"?, "in_channel"?, "attachments"?}: the socket's `send`.

    The same service, checks and error codes; the message reaches every open
    socket of the room. 201 with the stored message; a retry with the same
    nonce answers 200 with the message stored the first time.
    """
    data = _json_body(request)
    body = data.get("body", "")
    if not isinstance(body, str):
        raise ChatError(Code.INVALID, "body must be a string.")
    try:
        nonce = services.nonce_validate(data.get("nonce"))
        attachments = (
            attachment_ids(data["attachments"]) if data.get("attachments") is not None else ()
        )
        reply = reply_fields(data)
    except FrameError as exc:
        raise ChatError(exc.code, exc.detail) from None
    result = services.message_send(
        author=request.user,
        room=slug,
        body=body,
        nonce=nonce,
        attachments=attachments,
        thread=reply["thread"],
        in_channel=reply["in_channel"],
    )
    [message] = messages_data([result.message], result.room_slug)
    return JsonResponse({"message": message}, status=201 if result.created else 200)


@allow("GET", "POST")
@_api
def room_messages(request: AuthenticatedRequest, slug: str) -> JsonResponse:
    """GET: catch-up (`after`) and scrollback (`before`, or neither), oldest first.

    With `thread`: that root's replies, and the root itself as `root`.
    POST: send a message (`_message_post`).
    """
    if request.method == "POST":
        return _message_post(request, slug)
    try:
        params = _history_params(request.GET)
    except ValueError as exc:
        raise ChatError(Code.INVALID, str(exc)) from None
    room = selectors.room_for_reader(request.user, slug)
    root = None
    if params.thread is not None:
        root = thread_selectors.root_in_room(room.id, params.thread)
    if params.after is not None:
        page = selectors.messages_after(
            room,
            params.after,
            params.limit,
            params.before,
            thread=params.thread,
            in_room_only=params.in_room,
        )
    else:
        page = selectors.messages_before(
            room, params.before, params.limit, thread=params.thread, in_room_only=params.in_room
        )
    if root is None:
        return JsonResponse({"messages": messages_data(page, room.slug)})
    [root_data, *replies] = messages_data([root, *page], room.slug)
    # The reader's own state of the thread (following, marker, counts), so a
    # page can show it without the whole Threads list.
    state = thread_selectors.state(request.user, root)
    return JsonResponse({"messages": replies, "root": root_data, "state": state})


def sidebar_data(entry: dict[str, Any]) -> dict[str, Any]:
    return {
        **events.room_data(entry["room"]),
        "unread": entry["unread"],
        "mentions": entry["mentions"],
        "thread_unread": entry["thread_unread"],
        "thread_mentions": entry["thread_mentions"],
        "last_read_id": entry["last_read_id"],
        "members": entry["members"],
        "notify": entry["notify"],
    }


@allow("GET", "POST")
@_api
def rooms(request: AuthenticatedRequest) -> JsonResponse:
    """GET: the user's rooms with counts (?browse=1: every public channel). POST: create one."""
    if request.method == "POST":
        data = _json_body(request)
        room = services.room_create(
            actor=request.user,
            name=data.get("name", ""),
            slug=data.get("slug") or "",
            topic=data.get("topic") or "",
            private=bool(_optional_bool(data, "private")),
        )
        return JsonResponse({"room": events.room_data(room)}, status=201)
    if request.GET.get("browse"):
        return JsonResponse(
            {
                "rooms": [
                    {**events.room_data(room), "joined": joined, "members_count": count}
                    for room, joined, count in selectors.channels_to_browse(request.user)
                ]
            }
        )
    sidebar = selectors.rooms_for_sidebar(request.user)
    return JsonResponse({"rooms": [sidebar_data(e) for e in sidebar]})


@allow("PATCH")
@_api
def room_detail(request: AuthenticatedRequest, slug: str) -> JsonResponse:
    data = _json_body(request)
    room = services.room_update(
        actor=request.user,
        room=slug,
        name=data.get("name"),
        topic=data.get("topic"),
        archived=_optional_bool(data, "archived"),
    )
    return JsonResponse({"room": events.room_data(room)})


@allow("POST")
@_api
def room_join(request: AuthenticatedRequest, slug: str) -> JsonResponse:
    room = services.room_join(actor=request.user, room=slug)
    return JsonResponse({"room": events.room_data(room)})


@allow("POST")
@_api
def room_leave(request: AuthenticatedRequest, slug: str) -> JsonResponse:
    services.room_leave(actor=request.user, room=slug)
    return JsonResponse({"left": slug})


@allow("GET", "POST")
@_api
def room_members(request: AuthenticatedRequest, slug: str) -> JsonResponse:
    """GET: the members and their presence. POST {"username"}: invite someone."""
    if request.method == "POST":
        user = services.room_invite(
            actor=request.user, room=slug, username=str(_json_body(request).get("username", ""))
        )
        return JsonResponse({"username": user.username}, status=201)
    room = selectors.room_for_reader(request.user, slug)
    members = selectors.members_of(room)
    states = presence.states([user_id for user_id, _ in members])
    return JsonResponse(
        {"members": [{"username": name, "presence": states[uid]} for uid, name in members]}
    )


@allow("DELETE")
@_api
def room_member(request: AuthenticatedRequest, slug: str, username: str) -> HttpResponse:
    services.room_member_remove(actor=request.user, room=slug, username=username)
    return HttpResponse(status=204)


@allow("POST")
@_api
def room_read(request: AuthenticatedRequest, slug: str) -> JsonResponse:
    message_id = _json_body(request).get("id")
    if isinstance(message_id, bool) or not isinstance(message_id, int) or message_id < 0:
        raise ChatError(Code.INVALID, "id must be a non-negative whole number.")
    marker = services.read_marker_set(user=request.user, room=slug, message_id=message_id)
    return JsonResponse(marker)


@allow("POST")
@_api
def dms(request: AuthenticatedRequest) -> JsonResponse:
    users = _json_body(request).get("users")
    if not isinstance(users, list):
        raise ChatError(Code.INVALID, "users must be a list of usernames.")
    room = services.dm_open(actor=request.user, usernames=users)
    return JsonResponse({"room": events.room_data(room)})


@allow("GET")
@_api
def users(request: AuthenticatedRequest) -> JsonResponse:
    """Active users by username prefix, for the DM picker and @mention completion."""
    prefix = request.GET.get("q", "")[:150]
    if not services.text_is_storable(prefix):
        raise ChatError(Code.INVALID, "q contains NUL or broken Unicode.")
    room: Room | None = None
    if request.GET.get("room"):
        room = selectors.room_for_reader(request.user, request.GET["room"])
    names = selectors.users_by_prefix(prefix, room)
    return JsonResponse({"users": [{"username": name} for name in names]})


@allow("GET")
@_api
def emoji(request: HttpRequest) -> HttpResponse:
    """The emoji catalog for the picker and `:shortcode:` completion (the same for everyone)."""
    body = _emoji_json()
    response = HttpResponse(content_type="application/json")
    if "gzip" in request.headers.get("Accept-Encoding", ""):
        response.content = _emoji_gzipped()
        response["Content-Encoding"] = "gzip"
    else:
        response.content = body
    response["Cache-Control"] = "private, max-age=86400"
    response["Vary"] = "Accept-Encoding, Cookie"
    return response


@functools.cache
def _emoji_json() -> bytes:
    return json.dumps({"emoji": selectors.emoji_catalog()}, ensure_ascii=False).encode()


@functools.cache
def _emoji_gzipped() -> bytes:
    return gzip.compress(_emoji_json(), mtime=0)


@allow("PATCH", "DELETE")
@_api
def message_detail(request: AuthenticatedRequest, message_id: int) -> HttpResponse:
    if request.method == "DELETE":
        services.message_delete(actor=request.user, message_id=message_id)
        return HttpResponse(status=204)
    body = _json_body(request).get("body")
    if not isinstance(body, str):
        raise ChatError(Code.INVALID, "body must be a string.")
    message = services.message_edit(actor=request.user, message_id=message_id, body=body)
    [data] = messages_data([message], message.room.slug)
    return JsonResponse({"message": data})


@allow("POST")
@_api
def message_reactions(request: AuthenticatedRequest, message_id: int) -> JsonResponse:
    emoji = _json_body(request).get("emoji")
    if not isinstance(emoji, str):
        raise ChatError(Code.INVALID, "emoji must be a string.")
    users = services.reaction_toggle(actor=request.user, message_id=message_id, emoji=emoji)
    return JsonResponse({"emoji": emoji, "users": users})
