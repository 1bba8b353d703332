"""Account-side reads."""

from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
from django.db.models import F
from django.utils import timezone
from django.utils.crypto import constant_time_compare

from .models import Invite, Session, SignupPolicy, User


def login_session_is_valid(*, login_id: str, user_id: int) -> bool:
    """Whether the login a socket was opened in is still signed in as `user_id`.

    False once that session was logged out, expired, or no longer matches the
    account (deactivated, or its password changed from another session). The
    session that changed the password keeps its login id under its new key,
    so it stays valid.
    """
    rows = Session.objects.filter(
        login_id=login_id, user_id=user_id, expire_date__gt=timezone.now()
    ).select_related("user")
    for row in rows:
        user: User | None = row.user
        if user is None or not user.is_active:
            continue
        data = row.get_decoded()
        if str(data.get(SESSION_KEY)) != str(user_id) or BACKEND_SESSION_KEY not in data:
            continue
        if constant_time_compare(data.get(HASH_SESSION_KEY, ""), user.get_session_auth_hash()):
            return True
    return False


def signup_policy() -> SignupPolicy:
    """The admin's sign-up policy; the default (open) until an admin saves one."""
    return SignupPolicy.objects.filter(pk=1).first() or SignupPolicy(pk=1)


def invite_usable(token: str | None) -> Invite | None:
    """The invite with this token if it can still create an account, else None."""
    if not token:
        return None
    return Invite.objects.filter(
        token=token, expires__gt=timezone.now(), uses__lt=F("max_uses")
    ).first()
