"""Account-side reads."""

from datetime import datetime
from typing import Any

from allauth.account.models import EmailAddress
from allauth.mfa.models import Authenticator
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
from django.contrib.sessions.backends.base import SessionBase
from django.db.models import F
from django.db.models.functions import Lower, Now
from django.utils import timezone
from django.utils.crypto import constant_time_compare

from chat.events import format_time
from chat.reusable import ReusableQuery

from .models import Invite, Session, SignupPolicy, User
from .session_store import TOKEN_LOGIN_PREFIX, ReadAhead


def login_session_is_valid(*, login_id: str, user_id: int) -> bool:
    """Whether the login a socket was opened in is still signed in as `user_id`.

    False once that session was logged out, expired, or no longer matches the
    account (deactivated, or its password changed from another session). The
    session that changed the password keeps its login id under its new key,
    so it stays valid.
    """
    return (login_id, user_id) in logins_still_valid({(login_id, user_id)})


def session_account_deactivated(session: SessionBase) -> bool:
    """Whether this session was signed in to an account that has since been deactivated.

    Django keeps such a session (its user just reads as anonymous), so it can
    still say whose it was. A logout empties the session, and a password
    changed from another session no longer matches its hash: neither is
    reported as a deactivation.
    """
    user_id = session.get(SESSION_KEY)
    if user_id is None:
        return False
    user = User.objects.filter(pk=user_id, is_active=False).first()
    return user is not None and constant_time_compare(
        session.get(HASH_SESSION_KEY, ""), user.get_session_auth_hash()
    )


def signup_policy() -> SignupPolicy:
    """The admin's sign-up policy; the default (open) until an admin saves one."""
    return SignupPolicy.objects.filter(pk=1).first() or SignupPolicy(pk=1)


TWO_FACTOR_REQUIRED = "two_factor_required"
EMAIL_UNVERIFIED = "email_unverified"


def access_blocks(users: list[User]) -> dict[int, str]:
    """What keeps each of these signed-in users out for now, if anything: user id -> reason.

    `two_factor_required`: the policy asks staff, moderators and admins for
    an authenticator app, and they have none. `email_unverified`: sign-up is
    limited to email domains, and they have not verified an address (anyone
    can type ceo@corp.example). Superusers, created from the command line,
    are never kept out for their address. Pages, the API and the socket all
    ask here. At most three queries, whatever the number of users.
    """
    # Bots sign in with tokens their owner made: no address, no authenticator.
    users = [u for u in users if not u.is_bot]
    policy = signup_policy()
    blocks: dict[int, str] = {}
    if policy.require_2fa_for_staff:
        needing = [u.pk for u in users if u.is_staff or u.is_moderator]
        if needing:
            have = set(
                Authenticator.objects.filter(
                    user_id__in=needing, type=Authenticator.Type.TOTP
                ).values_list("user_id", flat=True)
            )
            missing = [user_id for user_id in needing if user_id not in have]
            blocks.update(dict.fromkeys(missing, TWO_FACTOR_REQUIRED))
    if policy.mode == SignupPolicy.Mode.DOMAINS:
        candidates = [u.pk for u in users if not u.is_superuser and u.pk not in blocks]
        if candidates:
            verified = set(
                EmailAddress.objects.filter(user_id__in=candidates, verified=True).values_list(
                    "user_id", flat=True
                )
            )
            blocks.update(
                (user_id, EMAIL_UNVERIFIED) for user_id in candidates if user_id not in verified
            )
    return blocks


def invite_usable(token: str | None) -> Invite | None:
    """The invite with this token if it can still create an account, else None."""
    if not token:
        return None
    return Invite.objects.filter(
        token=token, expires__gt=timezone.now(), uses__lt=F("max_uses")
    ).first()


def user_has_totp(user: User) -> bool:
    """Whether the account has an activated authenticator app (TOTP)."""
    return Authenticator.objects.filter(user=user, type=Authenticator.Type.TOTP).exists()


# The sessions of these logins and users that are unexpired, with their
# accounts' password hashes: built by the ORM once, then only given new `__in`
# lists. Building it anew for a thousand pairs took longer than the database
# took to answer, on the thread every send and handshake of the process waits
# for (chat.reusable). `Now()` is the database's clock at each run, not a
# value frozen into the reused SQL.
_SIGNED_IN_SESSIONS = ReusableQuery(
    lambda logins, users: Session.objects.filter(
        login_id__in=logins, user_id__in=users, expire_date__gt=Now(), user__is_active=True
    ).values_list("login_id", "user_id", "session_data", "user__password"),
    lists=2,
)


def logins_still_valid(
    pairs: set[tuple[str, int]], verified: dict[tuple[str, int], tuple[str, str]] | None = None
) -> set[tuple[str, int]]:
    """Of these (login id, user id) pairs, those whose session is still signed in.

    `login_session_is_valid` for every open socket of a process at once: one
    query per thousand pairs, for the periodic re-check that catches sessions
    that simply expired.

    `verified`, kept by the caller from one re-check to the next, remembers
    the session data and password hash each pair was found valid with: a
    session row and account that have not changed since are not decoded and
    hashed again (most of the work, for thousands of sockets). Updated in
    place: pairs found valid are recorded, the others dropped.
    """
    valid = _token_logins_live({pair for pair in pairs if pair[0].startswith(TOKEN_LOGIN_PREFIX)})
    pending = sorted(pair for pair in pairs if not pair[0].startswith(TOKEN_LOGIN_PREFIX))
    known = verified if verified is not None else {}
    decode = Session.get_session_store_class()().decode
    for start in range(0, len(pending), 1000):
        chunk = pending[start : start + 1000]
        rows = _SIGNED_IN_SESSIONS.rows(
            sorted({login for login, _ in chunk}), sorted({user for _, user in chunk})
        )
        for login_id, user_id, data, password in rows:
            pair = (login_id, user_id)
            if pair not in pairs:
                continue
            unchanged = known.get(pair) == (data, password)
            if not unchanged and not _signed_in(decode(data), user_id, password):
                continue
            valid.add(pair)
            known[pair] = (data, password)
    for pair in pending:
        if pair not in valid:
            known.pop(pair, None)
    return valid


def login_verified_at_handshake(ahead: ReadAhead, user_id: int) -> tuple[str, str] | None:
    """What `logins_still_valid` would remember for this handshake's login, or None.

    The handshake has read the session row and the account already (`ahead`):
    when that session signs in `user_id`, the pair (session data, password
    hash) it was found valid with. The first periodic re-check after a whole
    organization connected then decodes nothing that has not changed since.
    """
    if ahead.raw is None or ahead.data is None or ahead.user is None or ahead.user.pk != user_id:
        return None
    if not _signed_in(ahead.data, user_id, ahead.user.password):
        return None
    return ahead.raw, ahead.user.password


def _signed_in(data: dict[str, Any], user_id: int, password: str) -> bool:
    """Whether decoded session data signs in `user_id` with its current password."""
    if str(data.get(SESSION_KEY)) != str(user_id) or BACKEND_SESSION_KEY not in data:
        return False
    expected = User(pk=user_id, password=password).get_session_auth_hash()
    return constant_time_compare(data.get(HASH_SESSION_KEY, ""), expected)


def _token_logins_live(pairs: set[tuple[str, int]]) -> set[tuple[str, int]]:
    """Of these token logins ("token:<id>", user id), those whose token still works."""
    if not pairs:
        return set()
    from integrations.models import Token

    wanted = {int(login[len(TOKEN_LOGIN_PREFIX) :]): user for login, user in pairs}
    now = timezone.now()
    live = (
        Token.objects.filter(pk__in=wanted, user__is_active=True)
        .exclude(expires__lte=now)
        .values_list("pk", "user_id")
    )
    return {(f"{TOKEN_LOGIN_PREFIX}{pk}", user) for pk, user in live if wanted.get(pk) == user}


def avatar_url(user: User) -> str | None:
    """The picture's address, naming its version (so it is cached for good); None without one."""
    return f"/avatars/{user.pk}/{user.avatar_version}" if user.avatar else None


def person_data(user: User, now: datetime | None = None) -> dict[str, Any]:
    """What everyone may see of a person: the `profile` event and `GET /api/people/`.

    A status past its expiry is no status: the server never hands it out.
    """
    now = now or timezone.now()
    live = (user.status_text or user.status_emoji) and (
        user.status_expires is None or user.status_expires > now
    )
    return {
        "username": user.username,
        "display_name": user.display_name,
        "bot": user.is_bot,
        "title": user.title,
        "time_zone": user.time_zone,
        "status": (
            {
                "text": user.status_text,
                "emoji": user.status_emoji,
                "expires": format_time(user.status_expires) if user.status_expires else None,
            }
            if live
            else None
        ),
        "avatar": avatar_url(user),
        "dnd_until": (
            format_time(user.dnd_until) if user.dnd_until and user.dnd_until > now else None
        ),
    }


PERSON_FIELDS = (
    "id",
    "username",
    "display_name",
    "is_bot",
    "title",
    "time_zone",
    "status_text",
    "status_emoji",
    "status_expires",
    "avatar",
    "avatar_version",
    "dnd_until",
)


def people_directory() -> list[dict[str, Any]]:
    """Every active person, by username. One query."""
    now = timezone.now()
    users = User.objects.filter(is_active=True).only(*PERSON_FIELDS).order_by(Lower("username"))
    return [person_data(u, now) for u in users]


def avatar_of(user_id: int, version: int) -> User | None:
    """The active user whose current avatar is this version, if any."""
    return (
        User.objects.filter(pk=user_id, avatar_version=version, is_active=True)
        .exclude(avatar="")
        .only("id", "avatar", "avatar_version")
        .first()
    )
