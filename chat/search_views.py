"""Message search: the page and the JSON API, both thin over chat.search."""

from typing import Any
from urllib.parse import urlencode

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET

from accounts.http import AuthenticatedRequest

from . import events, selectors
from .api import allow, error_response
from .errors import NoSuchRoom, NotAuthenticated
from .models import Room
from .ratelimit import searches
from .search import (
    SEARCH_DEFAULT_LIMIT,
    SEARCH_MAX_LIMIT,
    SearchError,
    SearchHit,
    SearchPage,
    messages_search,
    search_room_for,
)
from .views import not_found_page

TOO_FAST = "You are searching too fast; wait a moment and try again."


def _error(status: int, code: str, detail: str, **extra: Any) -> JsonResponse:
    return JsonResponse({"error": code, "detail": detail, **extra}, status=status)


def _hit_data(hit: SearchHit) -> dict[str, Any]:
    return {
        "id": hit.id,
        "room": hit.room,
        "room_name": hit.room_name,
        "room_kind": hit.room_kind,
        "people": hit.people,
        "user": hit.user,
        "user_display_name": hit.user_display_name,
        "user_avatar": hit.user_avatar,
        "created": events.format_time(hit.created),
        "snippet": [[text, marked] for text, marked in hit.snippet],
        "snippet_html": hit.snippet_html,
        "attachments": hit.attachments,
        "thread": hit.thread,
        "in_channel": hit.in_channel,
    }


def _page_url(query: str, room: Room | None, cursor: str | None) -> str:
    params = {"q": query}
    if room is not None:
        params["room"] = room.slug
    if cursor:
        params["cursor"] = cursor
    return f"{reverse('search')}?{urlencode(params)}"


@require_GET
@login_required
def search_page(request: AuthenticatedRequest) -> HttpResponse:
    """The search form and, once something was typed, a page of hits linking into their rooms."""
    query = request.GET.get("q", "")
    slug = request.GET.get("room", "")
    cursor = request.GET.get("cursor") or None
    room: Room | None = None
    if slug:
        try:
            room = search_room_for(request.user, slug)
        except NoSuchRoom:
            return not_found_page(request)
    scope_label = ""
    if room is not None:
        people = selectors.dm_people(request.user.pk, {room.pk}) if room.is_direct else {}
        scope_label = ", ".join(people.get(room.pk, [])) or room.name
        scope_label = scope_label if room.is_direct else f"#{room.name}"
    page: SearchPage | None = None
    error = ""
    if query.strip():
        try:
            if not searches.allow(request.user.pk):
                raise SearchError(TOO_FAST)
            page = messages_search(request.user, query, room=room, cursor=cursor)
        except SearchError as exc:
            error = str(exc)
    return render(
        request,
        "chat/search.html",
        {
            "query": query,
            "room": room,
            "scope_label": scope_label,
            "page": page,
            "hits": page.hits if page else [],
            "first": page.start + 1 if page else 0,
            "last": page.start + len(page.hits) if page else 0,
            "next_url": _page_url(query, room, page.next_cursor)
            if page and page.next_cursor
            else "",
            "first_url": _page_url(query, room, None) if cursor else "",
            "error": error,
            "searched": page is not None,
        },
    )


def _limit(value: str | None) -> int:
    if value is None:
        return SEARCH_DEFAULT_LIMIT
    # Above the most a page holds means the most (as for history); digits
    # beyond nine cannot be meant and would cost a long conversion.
    if not (value.isascii() and value.isdigit()) or len(value) > 9 or int(value) < 1:
        raise SearchError("limit must be a whole number, 1 or more.")
    return min(int(value), SEARCH_MAX_LIMIT)


@allow("GET")
def search_api(request: HttpRequest) -> JsonResponse:
    """GET /api/search/?q=...&room=...&cursor=...&limit=...: a page of hits, newest first."""
    if not request.user.is_authenticated:
        return error_response(NotAuthenticated())
    room: Room | None = None
    slug = request.GET.get("room", "")
    if slug:
        try:
            room = search_room_for(request.user, slug)
        except NoSuchRoom as exc:
            return error_response(exc)
    if not searches.allow(request.user.pk):
        return _error(429, "rate_limited", TOO_FAST)
    try:
        page = messages_search(
            request.user,
            request.GET.get("q", ""),
            room=room,
            cursor=request.GET.get("cursor") or None,
            limit=_limit(request.GET.get("limit")),
        )
    except SearchError as exc:
        extra = {"filter": exc.filter} if exc.filter else {}
        return _error(400, exc.code, str(exc), **extra)
    return JsonResponse(
        {
            "results": [_hit_data(hit) for hit in page.hits],
            "total": page.total,
            "total_exact": page.total_exact,
            "start": page.start,
            "next": page.next_cursor,
        }
    )
