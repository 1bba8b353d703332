from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET

from accounts.http import AuthenticatedRequest
from accounts.selectors import people_directory

from . import api, drafts, events, selectors
from .errors import NoSuchRoom
from .models import DEFAULT_ROOM_SLUG

ROOM_PAGE_MESSAGES = 50


def not_found_page(request: HttpRequest) -> HttpResponse:
    """The branded 404 page, for a room that does not exist or is not the user's to see.

    Rendered here rather than by raising Http404: under DEBUG (scripts/run)
    Django answers Http404 with its technical page, and a mistyped or private
    room link is an everyday event for a user, not a bug for a developer.
    Both cases get the same page, so nothing tells them apart.
    """
    return render(request, "404.html", status=404)


@login_required
def index(request: AuthenticatedRequest) -> HttpResponse:
    return redirect("chat:room", slug=DEFAULT_ROOM_SLUG)


@require_GET
@login_required
def room(request: AuthenticatedRequest, slug: str) -> HttpResponse:
    """The room page, with its newest messages as data; the page then goes live over the socket.

    The messages travel in the page's chat-config and static/js/render.js
    builds them, as it builds every later message: one renderer, so a message
    looks the same whether it came with the page or over the socket. The log
    position is read first: the socket resumes from it, so whatever changes
    while the page is being built still reaches the page.
    """
    seq = selectors.latest_seq()
    try:
        current, membership = selectors.room_and_membership(request.user, slug)
    except NoSuchRoom:
        return not_found_page(request)
    sidebar = selectors.rooms_for_sidebar(request.user)
    messages = selectors.messages_before(current, None, ROOM_PAGE_MESSAGES, in_room_only=True)
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
            "has_older": len(messages) == ROOM_PAGE_MESSAGES,
            "client_config": {
                "room": current.slug,
                "roomName": current.name,
                "roomKind": current.kind,
                "user": request.user.username,
                "socketPath": "/ws/chat/",
                "historyUrl": f"/api/rooms/{current.slug}/messages/",
                "sessionUrl": reverse("api-session"),
                # The per-user send bucket, so the composer paces a burst of
                # messages under it instead of having them refused.
                "sendRate": settings.CHAT_RATE_LIMIT,
                "sendBurst": settings.CHAT_RATE_BURST,
                "pageSize": ROOM_PAGE_MESSAGES,
                # Checked before uploading, so a file too large is said at once.
                "uploadMaxBytes": settings.UPLOADS_MAX_BYTES,
                "messages": api.messages_data(messages, current.slug),
                "seq": seq,
                "isMember": is_member,
                "canWrite": is_member and not current.is_archived,
                "canManage": can_manage,
                "isModerator": request.user.is_moderator,
                "lastReadId": membership.last_read_id if membership else None,
                "rooms": [api.sidebar_data(e) for e in sidebar],
                "roomData": events.room_data(current),
                # Everyone's public profile; `profile` events keep it current.
                "people": people_directory(),
                # The user's drafts; `draft` events keep them current.
                "drafts": drafts.drafts_of(request.user),
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
