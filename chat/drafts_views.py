"""The drafts API: `GET /api/drafts/` lists them, `PUT /api/drafts/` stores one.

Thin: parse, call chat.drafts, serialize. A refused change (`409 conflict`)
carries the stored draft, so the client can show both texts.
"""

from typing import Any

from django.http import JsonResponse

from accounts.http import AuthenticatedRequest

from . import drafts
from .api import STATUS, allow, api_view, json_body
from .errors import ChatError, Code


def _id_or_none(data: dict[str, Any], name: str) -> int | None:
    value = data.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 2**63:
        raise ChatError(Code.INVALID, f"{name} must be a message id.")
    return value


@allow("GET", "PUT")
@api_view
def drafts_view(request: AuthenticatedRequest) -> JsonResponse:
    """GET: the user's drafts with text, newest first. PUT {room, thread?, body, version}."""
    if request.method != "PUT":
        return JsonResponse({"drafts": drafts.drafts_of(request.user)})
    data = json_body(request)
    room, body, version = data.get("room"), data.get("body"), data.get("version")
    if not isinstance(room, str) or not room:
        raise ChatError(Code.INVALID, "room must be a room's slug.")
    if not isinstance(body, str):
        raise ChatError(Code.INVALID, "body must be a string.")
    if isinstance(version, bool) or not isinstance(version, int) or not 0 <= version < 2**63:
        raise ChatError(Code.INVALID, "version must be the draft's version this text was based on.")
    try:
        saved = drafts.draft_save(
            user=request.user,
            room=room,
            thread=_id_or_none(data, "thread"),
            body=body,
            version=version,
        )
    except drafts.DraftConflict as conflict:
        answer = {"error": conflict.code, "detail": conflict.detail, "draft": conflict.draft}
        return JsonResponse(answer, status=STATUS[Code.CONFLICT])
    return JsonResponse({"draft": saved})
