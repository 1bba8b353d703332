"""allauth policy: who may sign up, and what an account may be created with."""

from allauth.account.adapter import DefaultAccountAdapter
from allauth.core.exceptions import ImmediateHttpResponse
from django import forms
from django.conf import settings
from django.db import transaction
from django.http import HttpRequest
from django.shortcuts import render

from integrations.audit import audit_record

from .models import Invite, SignupPolicy, User
from .selectors import invite_usable, signup_policy
from .services import invite_redeem

# Where the invite link leaves its token until the account is created.
INVITE_SESSION_KEY = "teamchat_invite"


def invite_refused(request: HttpRequest, *, reason: str, status: int) -> ImmediateHttpResponse:
    """The page a visitor sees for a missing, bogus, expired or used-up invite."""
    return ImmediateHttpResponse(
        render(request, "account/invite_invalid.html", {"reason": reason}, status=status)
    )


class AccountAdapter(DefaultAccountAdapter):
    """Sign-up follows the operator's switch and then the admin's SignupPolicy."""

    def is_open_for_signup(self, request: HttpRequest) -> bool:
        if not settings.ACCOUNT_ALLOW_SIGNUP:
            return False
        if signup_policy().mode == SignupPolicy.Mode.INVITE:
            if invite_usable(request.session.get(INVITE_SESSION_KEY)) is None:
                # Said plainly rather than allauth's generic "sign-up is closed".
                raise invite_refused(request, reason="missing", status=403)
        return True

    def _get_login_attempts_cache_key(self, request: HttpRequest, **credentials) -> str:
        """Failed logins count per client address and account, not per account alone.

        Counted per account alone, five wrong passwords from anywhere locked
        the real owner out for five minutes. Per address and account, the
        owner (from their own address) still gets in; the price is that
        guesses spread over many addresses are only held by the per-address
        limit. Strong passwords (Django's validators) and two-factor are the
        answer to that; docs/security.md says so.
        """
        account = super()._get_login_attempts_cache_key(request, **credentials)
        return f"{self.get_client_ip(request)}:{account}"

    def authenticate(self, request: HttpRequest, **credentials):
        """A bot's password, even a right one, signs nobody in: bots use tokens."""
        user = super().authenticate(request, **credentials)
        if user is not None and getattr(user, "is_bot", False):
            self.authentication_failed(request, **credentials)
            return None
        return user

    def clean_signup_email(self, email: str) -> str:
        """Refuse an address outside the allowed domains when the policy says so.

        Only sign-up asks this: a password reset or login by email must keep
        working for existing accounts whatever their address.
        """
        policy = signup_policy()
        if policy.mode == SignupPolicy.Mode.DOMAINS:
            domain = email.rpartition("@")[2].lower()
            if domain not in policy.domains:
                raise forms.ValidationError(
                    f"Sign-up is limited to approved email domains, and {domain} is not "
                    "one of them. Use your work address, or ask an admin for help.",
                    code="domain_not_allowed",
                )
        return email

    def save_user(self, request: HttpRequest, user: User, form, commit: bool = True) -> User:
        if not commit or signup_policy().mode != SignupPolicy.Mode.INVITE:
            return super().save_user(request, user, form, commit=commit)
        token = request.session.get(INVITE_SESSION_KEY)
        # The invite's use and the new account commit together: a sign-up that
        # fails after this point gives the use back.
        with transaction.atomic():
            if not token or not invite_redeem(token=token):
                # It expired, or another sign-up took its last use, since the
                # form was shown.
                raise invite_refused(request, reason="unusable", status=410)
            user = super().save_user(request, user, form, commit=True)
            invite = Invite.objects.filter(token=token).values_list("pk", flat=True).first()
            audit_record(action="invite.accept", actor=user, target=f"invite:{invite}")
        request.session.pop(INVITE_SESSION_KEY, None)
        return user
