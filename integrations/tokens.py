"""Personal access tokens: create, authenticate, list, revoke.

A token is `tc_` followed by 40 URL-safe random characters. Only its SHA-256
digest is stored (the secret has 240 bits, so a fast hash is enough and a
lookup is one indexed query); the first characters are kept to tell tokens
apart in a list.
"""

import hashlib
import secrets
from datetime import datetime, timedelta

from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone

from accounts.models import User
from chat.errors import ChatError, Code

from .audit import audit_record
from .models import Token

TOKEN_PREFIX = "tc_"  # noqa: S105 (a marker, not a secret)
_SHOWN = 8  # characters after the prefix kept to show
# A use is written at most this often per token: a busy script does not
# turn every request into a write.
_LAST_USED_EVERY = timedelta(minutes=1)


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def token_create(
    *,
    user: User,
    name: str,
    scope: str = Token.Scope.WRITE,
    expires: datetime | None = None,
    actor: User | None = None,
    request: HttpRequest | None = None,
) -> tuple[Token, str]:
    """A new token for `user` (a person, or a bot by its owner); returns it and its secret.

    The secret is not stored and cannot be shown again. Audit-logged.
    """
    name = name.strip()
    if not name or len(name) > 100:
        raise ChatError(Code.INVALID, "A token needs a name of 1 to 100 characters.")
    if scope not in Token.Scope.values:
        raise ChatError(Code.INVALID, "A token's scope is read or write.")
    if expires is not None and expires <= timezone.now():
        raise ChatError(Code.INVALID, "A token's expiry must be in the future.")
    secret = TOKEN_PREFIX + secrets.token_urlsafe(30)
    with transaction.atomic():
        token = Token.objects.create(
            user=user,
            name=name,
            prefix=secret[: len(TOKEN_PREFIX) + _SHOWN],
            digest=_digest(secret),
            scope=scope,
            expires=expires,
        )
        audit_record(
            action="token.create",
            actor=actor or user,
            target=f"user:{user.username}",
            request=request,
            data={"token": token.pk, "name": name, "scope": scope},
        )
    return token, secret


def token_authenticate(secret: str) -> Token | None:
    """The live token with this secret (its user loaded), or None.

    None for an unknown or expired token, or one whose user is inactive.
    """
    if not secret.startswith(TOKEN_PREFIX) or len(secret) > 200:
        return None
    token = Token.objects.select_related("user").filter(digest=_digest(secret)).first()
    now = timezone.now()
    if token is None or not token.user.is_active:
        return None
    if token.expires is not None and token.expires <= now:
        return None
    if token.last_used is None or now - token.last_used >= _LAST_USED_EVERY:
        Token.objects.filter(pk=token.pk).update(last_used=now)
        token.last_used = now
    return token


def token_revoke(
    *, user: User, token_id: int, actor: User | None = None, request: HttpRequest | None = None
) -> None:
    """Revoke one of `user`'s tokens at once: it stops working and its open sockets close (4401)."""
    from chat import eventlog

    with transaction.atomic():
        token = Token.objects.filter(pk=token_id, user=user).first()
        if token is None:
            raise ChatError(Code.NOT_FOUND, "There is no such token.")
        audit_record(
            action="token.revoke",
            actor=actor or user,
            target=f"user:{user.username}",
            request=request,
            data={"token": token.pk, "name": token.name},
        )
        token.delete()
        transaction.on_commit(lambda: eventlog.user_sockets_recheck(user.pk))
