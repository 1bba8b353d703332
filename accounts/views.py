"""The invite link: remember the invite, then continue to allauth's sign-up."""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from .adapters import INVITE_SESSION_KEY
from .models import Invite


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
