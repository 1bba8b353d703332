from functools import cache

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse

from .selectors import signup_policy, user_has_totp
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
def _setup_paths() -> tuple[str, ...]:
    # What a staff user without an authenticator may still reach: the
    # two-factor pages, the password prompt that guards them, the email pages
    # (allauth lets only a verified address turn two-factor on), logging out,
    # and the static files those pages load.
    return (
        reverse("mfa_index"),
        reverse("account_reauthenticate"),
        reverse("account_email"),
        reverse("account_email_verification_sent"),  # also prefixes the confirm links
        reverse("account_logout"),
        settings.STATIC_URL,
    )


class StaffTwoFactorMiddleware:
    """Send staff without an authenticator app (TOTP) to set one up first.

    Only when the admin's SignupPolicy requires two-factor for staff. Runs
    after AuthenticationMiddleware; costs nothing for anonymous users and
    non-staff.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = request.user
        if (
            user.is_authenticated
            and user.is_staff
            and not request.path.startswith(_setup_paths())
            and signup_policy().require_2fa_for_staff
            and not user_has_totp(user)
        ):
            messages.warning(
                request,
                "Staff accounts need two-factor authentication here. Set up an "
                "authenticator app to continue.",
            )
            return redirect("mfa_activate_totp")
        return self.get_response(request)
