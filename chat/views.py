from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET

from . import events, selectors
from .models import DEFAULT_ROOM_SLUG

ROOM_PAGE_MESSAGES = 50


@login_required
def index(request: HttpRequest) -> HttpResponse:
    return redirect("chat:room", slug=DEFAULT_ROOM_SLUG)


@require_GET
@login_required
def room(request: HttpRequest, slug: str) -> HttpResponse:
    """The newest messages rendered on the server; the page then goes live over the socket."""
    try:
        current = selectors.room_for_reader(request.user, slug)
    except selectors.RoomNotFound:
        raise Http404("No such room.") from None
    rooms = selectors.rooms_of_member(request.user)
    messages = selectors.messages_before(current, None, ROOM_PAGE_MESSAGES)
    return render(
        request,
        "chat/room.html",
        {
            "room": current,
            "rooms": rooms,
            "is_member": any(r.pk == current.pk for r in rooms),
            "chat_messages": [events.message_data(m, current.slug) for m in messages],
            "has_older": len(messages) == ROOM_PAGE_MESSAGES,
            "client_config": {
                "room": current.slug,
                "user": request.user.username,
                "socketPath": "/ws/chat/",
                "historyUrl": f"/api/rooms/{current.slug}/messages/",
                "pageSize": ROOM_PAGE_MESSAGES,
            },
        },
    )
