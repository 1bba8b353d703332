"""The invite link, and the session's state for the chat page."""

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from chat.api import allow

from .adapters import INVITE_SESSION_KEY
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
