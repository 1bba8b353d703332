"""The invite link, and the session's state for the chat page."""

from django.core.files.storage import storages
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, JsonResponse
from django.http.response import HttpResponseBase
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from chat.api import allow, api_view, json_body
from chat.errors import ChatError, Code

from . import selectors, services
from .adapters import INVITE_SESSION_KEY
from .http import AuthenticatedRequest
from .models import Invite
from .selectors import session_account_deactivated

DEACTIVATED = "account_deactivated"


@never_cache
@require_GET
def invite_accept(request: HttpRequest, token: str) -> HttpResponse:
    """`/accounts/invite/<token>/`: keep a usable invite in the session and go to sign-up.

    Nothing is used up here; one use is taken when the account is created.
    """
    invite = Invite.objects.filter(token=token).first()
    if invite is None:
        return render(request, "account/invite_invalid.html", {"reason": "unknown"}, status=404)
    if not invite.is_usable:
        reason = "expired" if invite.is_expired else "used_up"
        return render(request, "account/invite_invalid.html", {"reason": reason}, status=410)
    request.session[INVITE_SESSION_KEY] = invite.token
    return redirect("account_signup")


@never_cache
@allow("GET")
def session_status(request: HttpRequest) -> JsonResponse:
    """`GET /api/session/`: who this session is signed in as, or why it is not.

    For the chat page once its socket was closed with 4401, which does not
    say why: `account_deactivated` is worth telling apart from a sign-out,
    since signing in again will not help.
    """
    if request.user.is_authenticated:
        return JsonResponse({"user": request.user.get_username()})
    if session_account_deactivated(request.session):
        return JsonResponse(
            {
                "error": DEACTIVATED,
                "detail": "Your account has been deactivated. "
                "Ask an admin of this TeamChat if you think this is a mistake.",
            },
            status=401,
        )
    return JsonResponse({"error": "not_authenticated", "detail": "Log in first."}, status=401)


# --- People -----------------------------------------------------------------------


@allow("GET")
@api_view
def people(request: AuthenticatedRequest) -> JsonResponse:
    """`GET /api/people/`: everyone's public profile, for names, pictures and cards."""
    return JsonResponse({"people": selectors.people_directory()})


@allow("GET", "PATCH")
@api_view
def profile(request: AuthenticatedRequest) -> JsonResponse:
    """`GET/PATCH /api/profile/`: one's own profile; PATCH any of its fields."""
    user = request.user
    if request.method == "PATCH":
        data = json_body(request)
        user = services.profile_update(user=user, data=data)
    return JsonResponse({"profile": selectors.person_data(user)})


@allow("POST", "DELETE")
@api_view
def profile_avatar(request: AuthenticatedRequest) -> JsonResponse:
    """`POST` a picture (multipart field `file`) to make it one's avatar; `DELETE` it."""
    if request.method == "DELETE":
        user = services.avatar_clear(user=request.user)
    else:
        file = request.FILES.get("file") if list(request.FILES) == ["file"] else None
        if file is None:
            raise ChatError(Code.INVALID, "Send one picture, as multipart/form-data in `file`.")
        user = services.avatar_set(user=request.user, file=file)
    return JsonResponse({"profile": selectors.person_data(user)})


@require_GET
def avatar(request: HttpRequest, user_id: int, version: int) -> HttpResponseBase:
    """A person's picture, to signed-in users; 404 for anyone else or an old version."""
    found = selectors.avatar_of(user_id, version) if request.user.is_authenticated else None
    if found is None:
        raise Http404
    kind = "image/png" if (found.avatar.name or "").endswith(".png") else "image/jpeg"
    # Through the storage as configured now (the field keeps the one it started with).
    response = FileResponse(storages["uploads"].open(found.avatar.name or ""), content_type=kind)
    response["Cache-Control"] = "private, max-age=31536000, immutable"
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return response
