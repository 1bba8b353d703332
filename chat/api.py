"""The history API (JSON, session-authenticated)."""

from dataclasses import dataclass

from django.http import HttpRequest, JsonResponse, QueryDict
from django.views.decorators.http import require_GET

from . import events, selectors


@dataclass(frozen=True)
class HistoryParams:
    after: int | None
    before: int | None
    limit: int


def _error(status: int, code: str, detail: str) -> JsonResponse:
    return JsonResponse({"error": code, "detail": detail}, status=status)


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
    return HistoryParams(after, before, min(limit, selectors.HISTORY_MAX_LIMIT))


@require_GET
def room_messages(request: HttpRequest, slug: str) -> JsonResponse:
    """Catch-up (`after`) and scrollback (`before`, or neither), oldest first."""
    if not request.user.is_authenticated:
        return _error(401, "not_authenticated", "Log in to read messages.")
    try:
        params = _history_params(request.GET)
    except ValueError as exc:
        return _error(400, "invalid", str(exc))
    try:
        room = selectors.room_for_reader(request.user, slug)
    except selectors.RoomNotFound:
        return _error(404, "no_such_room", "No such room.")
    if params.after is not None:
        page = selectors.messages_after(room, params.after, params.limit, params.before)
    else:
        page = selectors.messages_before(room, params.before, params.limit)
    return JsonResponse({"messages": [events.message_data(m, room.slug) for m in page]})
