from functools import cache

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect
from django.urls import reverse

from .selectors import EMAIL_UNVERIFIED, TWO_FACTOR_REQUIRED, access_blocks
from .services import run_collecting_rechecks


class SocketSessionCheckMiddleware:
    """After the response, tell the affected sockets to re-check their sessions.

    Sits outside SessionMiddleware so the session is already saved (or
    flushed) when the sockets look at it.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return run_collecting_rechecks(self.get_response, request)


@cache
def _open_paths() -> dict[str, tuple[str, ...]]:
    """What each kind of blocked user may still reach, besides logging out and static files."""
    common = (reverse("account_logout"), settings.STATIC_URL)
    return {
        # The two-factor pages, the password prompt that guards them, and the
        # email pages (allauth lets only a verified address turn two-factor on).
        TWO_FACTOR_REQUIRED: (
            reverse("mfa_index"),
            reverse("account_reauthenticate"),
            reverse("account_email"),
            reverse("account_email_verification_sent"),  # also prefixes the confirm links
            *common,
        ),
        EMAIL_UNVERIFIED: (
            reverse("account_email"),
            reverse("account_email_verification_sent"),
            reverse("account_reauthenticate"),
            *common,
        ),
    }


_WHERE = {TWO_FACTOR_REQUIRED: "mfa_activate_totp", EMAIL_UNVERIFIED: "account_email"}
_WHY = {
    TWO_FACTOR_REQUIRED: "Your account needs two-factor authentication here. Set up an "
    "authenticator app to continue.",
    EMAIL_UNVERIFIED: "Verify your email address to continue: follow the link we sent you, "
    "or send it again below.",
}


class AccessGateMiddleware:
    """Keep a signed-in user out until they meet the admin's policy (accounts.selectors).

    Two-factor for staff, moderators and admins when the policy asks for it;
    a verified email address under the email-domains sign-up policy. Pages
    redirect to where it can be done; the JSON API answers 403 in JSON. The
    socket handshake applies the same rule (chat.realtime). Runs after
    AuthenticationMiddleware; costs nothing for anonymous users.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = request.user
        if user.is_authenticated:
            reason = access_blocks([user]).get(user.pk)
            if reason is not None and not request.path.startswith(_open_paths()[reason]):
                if request.path.startswith("/api/"):
                    return JsonResponse({"error": reason, "detail": _WHY[reason]}, status=403)
                messages.warning(request, _WHY[reason])
                return redirect(_WHERE[reason])
        return self.get_response(request)
