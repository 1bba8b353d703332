"""Message search: the page and the JSON API, both thin over chat.search."""

from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from accounts.http import AuthenticatedRequest

from . import events
from .api import allow, error_response
from .errors import NoSuchRoom, NotAuthenticated
from .models import Room
from .ratelimit import searches
from .search import SearchError, SearchHit, messages_search, search_room_for

TOO_FAST = "You are searching too fast; wait a moment and try again."


def _error(status: int, code: str, detail: str) -> JsonResponse:
    return JsonResponse({"error": code, "detail": detail}, status=status)


def _hit_data(hit: SearchHit) -> dict[str, Any]:
    return {
        "id": hit.id,
        "room": hit.room,
        "room_name": hit.room_name,
        "user": hit.user,
        "created": events.format_time(hit.created),
        "snippet": [[text, marked] for text, marked in hit.snippet],
    }


@require_GET
@login_required
def search_page(request: AuthenticatedRequest) -> HttpResponse:
    """The search form and, once something was typed, the hits linking into their rooms."""
    query = request.GET.get("q", "")
    slug = request.GET.get("room", "")
    room: Room | None = None
    if slug:
        try:
            room = search_room_for(request.user, slug)
        except NoSuchRoom as exc:
            raise Http404(exc.detail) from None
    hits: list[SearchHit] = []
    error = ""
    if query.strip():
        try:
            if not searches.allow(request.user.pk):
                raise SearchError(TOO_FAST)
            hits = messages_search(request.user, query, room=room)
        except SearchError as exc:
            error = str(exc)
    return render(
        request,
        "chat/search.html",
        {
            "query": query,
            "room": room,
            "hits": hits,
            "error": error,
            "searched": bool(query.strip()) and not error,
        },
    )


@allow("GET")
def search_api(request: HttpRequest) -> JsonResponse:
    """GET /api/search/?q=...&room=...: the hits, best first, as JSON."""
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
        hits = messages_search(request.user, request.GET.get("q", ""), room=room)
    except SearchError as exc:
        return _error(400, "invalid", str(exc))
    return JsonResponse({"results": [_hit_data(hit) for hit in hits]})
