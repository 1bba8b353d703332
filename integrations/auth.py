"""Bearer tokens on the JSON API and the socket handshake.

`Authorization: Bearer <token>` stands in for the session cookie on every
/api/ endpoint and on the socket. The request then acts as the token's
user with the same checks as a session, minus CSRF (a script holding a
token is not a browser a page could trick into sending it). Pages stay
session-only.
"""

from collections.abc import Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from channels.db import database_sync_to_async
from channels.security.websocket import WebsocketDenier
from django.http import HttpRequest, HttpResponse, JsonResponse

from chat.errors import Code
from teamchat import metrics

from .models import Token
from .tokens import token_authenticate

_READS = frozenset({"GET", "HEAD", "OPTIONS"})


def bearer_secret(value: str | bytes | None) -> str | None:
    """The token in an `Authorization: Bearer <token>` value; "" for a malformed one; None without.

    None (no bearer credentials) for a missing header or another scheme.
    """
    if not value:
        return None
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    scheme, _, secret = value.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return secret.strip()


def _refusal(status: int, code: Code, detail: str) -> JsonResponse:
    response = JsonResponse({"error": code, "detail": detail}, status=status)
    if status == 401:
        response["WWW-Authenticate"] = 'Bearer realm="api"'
    return response


class BearerTokenMiddleware:
    """Authenticates /api/ requests that carry a bearer token (after AuthenticationMiddleware).

    A wrong, revoked or expired token gets 401 in JSON even if a session
    cookie came along: the caller asked to be the token's user. A read-only
    token gets 403 on anything but a read.
    """

    sync_capable = True
    async_capable = False

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path.startswith("/api/"):
            secret = bearer_secret(request.headers.get("Authorization"))
            if secret is not None:
                refused = self._authenticate(request, secret)
                if refused is not None:
                    return refused
        return self.get_response(request)

    @staticmethod
    def _authenticate(request: HttpRequest, secret: str) -> HttpResponse | None:
        token = token_authenticate(secret) if secret else None
        if token is None:
            metrics.TOKEN_AUTH.labels("refused").inc()
            return _refusal(
                401, Code.NOT_AUTHENTICATED, "The token is missing, wrong, expired or revoked."
            )
        metrics.TOKEN_AUTH.labels("accepted").inc()
        request.user = token.user
        request.auth_token = token  # type: ignore[attr-defined]
        # Django's CSRF check protects cookies a browser sends by itself; a
        # bearer token is never sent that way.
        request._dont_enforce_csrf_checks = True  # type: ignore[attr-defined]
        if token.scope == Token.Scope.READ and request.method not in _READS:
            return _refusal(403, Code.FORBIDDEN, "This token may only read.")
        return None


def request_token(request: HttpRequest) -> Token | None:
    """The token a request authenticated with, or None for a session."""
    return getattr(request, "auth_token", None)


class BearerSocketAuth:
    """Routes a socket handshake with a bearer token around the session stack.

    With `Authorization: Bearer`, a valid token puts its user in the scope
    (with `token_id` and `token_scope`) and the handshake goes straight to
    `token_app`: no Origin is needed, since a page cannot set that header.
    A wrong token refuses the handshake (HTTP 403). Without the header, the
    handshake goes through `session_app` (Origin check, session, user) as before.
    """

    def __init__(self, *, session_app: Any, token_app: Any) -> None:
        self.session_app = session_app
        self.token_app = token_app
        self.denier = WebsocketDenier.as_asgi()
        if iscoroutinefunction(self.session_app):
            markcoroutinefunction(self)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        if scope["type"] != "websocket":
            return await self.session_app(scope, receive, send)
        header = next((v for k, v in scope.get("headers", ()) if k == b"authorization"), None)
        secret = bearer_secret(header)
        if secret is None:
            return await self.session_app(scope, receive, send)
        token = await database_sync_to_async(token_authenticate)(secret) if secret else None
        if token is None:
            metrics.TOKEN_AUTH.labels("refused").inc()
            metrics.HANDSHAKES.labels("refused_token").inc()
            return await self.denier(scope, receive, send)  # type: ignore[arg-type]
        metrics.TOKEN_AUTH.labels("accepted").inc()
        scope = {**scope, "user": token.user, "token_id": token.pk, "token_scope": token.scope}
        return await self.token_app(scope, receive, send)
