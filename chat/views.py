from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET

from accounts.http import AuthenticatedRequest

from . import api, events, selectors
from .errors import NoSuchRoom
from .models import DEFAULT_ROOM_SLUG

ROOM_PAGE_MESSAGES = 50


@login_required
def index(request: AuthenticatedRequest) -> HttpResponse:
    return redirect("chat:room", slug=DEFAULT_ROOM_SLUG)


@require_GET
@login_required
def room(request: AuthenticatedRequest, slug: str) -> HttpResponse:
    """The newest messages rendered on the server; the page then goes live over the socket.

    The log position is read first: the socket resumes from it, so whatever
    changes while the page is being built still reaches the page.
    """
    seq = selectors.latest_seq()
    try:
        current, membership = selectors.room_and_membership(request.user, slug)
    except NoSuchRoom as exc:
        raise Http404(exc.detail) from None
    sidebar = selectors.rooms_for_sidebar(request.user)
    messages = selectors.messages_before(current, None, ROOM_PAGE_MESSAGES)
    is_member = membership is not None
    can_manage = not current.is_direct and (
        current.created_by_id == request.user.pk or request.user.is_chat_admin
    )
    dm_names: list[str] = next((e["members"] for e in sidebar if e["room"].pk == current.pk), [])
    return render(
        request,
        "chat/room.html",
        {
            "room": current,
            "rooms": [e for e in sidebar if not e["room"].is_direct],
            "dms": [e for e in sidebar if e["room"].is_direct],
            "is_member": is_member,
            "can_write": is_member and not current.is_archived,
            "can_manage": can_manage,
            "dm_names": dm_names,
            "chat_messages": api.messages_data(messages, current.slug),
            "has_older": len(messages) == ROOM_PAGE_MESSAGES,
            "client_config": {
                "room": current.slug,
                "roomName": current.name,
                "roomKind": current.kind,
                "user": request.user.username,
                "socketPath": "/ws/chat/",
                "historyUrl": f"/api/rooms/{current.slug}/messages/",
                "pageSize": ROOM_PAGE_MESSAGES,
                "seq": seq,
                "isMember": is_member,
                "canWrite": is_member and not current.is_archived,
                "canManage": can_manage,
                "isModerator": request.user.is_moderator,
                "lastReadId": membership.last_read_id if membership else None,
                "rooms": [api.sidebar_data(e) for e in sidebar],
                "roomData": events.room_data(current),
            },
        },
    )


@require_GET
@login_required
def browse(request: AuthenticatedRequest) -> HttpResponse:
    """Every public channel, to join; and the form to create a channel."""
    return render(
        request,
        "chat/browse.html",
        {"channels": selectors.channels_to_browse(request.user)},
    )
