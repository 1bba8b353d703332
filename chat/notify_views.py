"""The API of notification settings: a room's level for its member, and user groups."""

from django.http import HttpResponse, JsonResponse

from accounts.http import AuthenticatedRequest

from . import notify
from .api import allow, api_view, json_body


@allow("PUT")
@api_view
def room_notify(request: AuthenticatedRequest, slug: str) -> JsonResponse:
    """PUT {"level"}: how much of this room may interrupt the member asking."""
    level = json_body(request).get("level")
    return JsonResponse(notify.notify_level_set(user=request.user, room=slug, level=level))


@allow("GET", "POST")
@api_view
def groups(request: AuthenticatedRequest) -> JsonResponse:
    """GET: every user group (for @-completion). POST: define one (admins)."""
    if request.method == "POST":
        data = json_body(request)
        group = notify.group_create(
            actor=request.user,
            handle=data.get("handle"),
            name=data.get("name", ""),
            description=data.get("description", ""),
            members=data.get("members"),
        )
        return JsonResponse({"group": notify.group_data(group)}, status=201)
    return JsonResponse({"groups": notify.groups_list()})


@allow("PATCH", "DELETE")
@api_view
def group_detail(request: AuthenticatedRequest, handle: str) -> HttpResponse:
    """PATCH: change a group (admins). DELETE: remove it (admins)."""
    if request.method == "DELETE":
        notify.group_delete(actor=request.user, handle=handle)
        return HttpResponse(status=204)
    data = json_body(request)
    group = notify.group_update(
        actor=request.user,
        handle=handle,
        new_handle=data.get("handle"),
        name=data.get("name"),
        description=data.get("description"),
        members=data.get("members"),
    )
    return JsonResponse({"group": notify.group_data(group)})
