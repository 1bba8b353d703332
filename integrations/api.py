"""The token API: `/api/tokens/` (PROTOCOL v2, Tokens and bots).

Creating and revoking a token takes a signed-in session (with its CSRF
check): a token cannot mint or revoke tokens. Listing works with either.
"""

from datetime import datetime
from typing import Any

from django.http import HttpResponse, JsonResponse
from django.utils.dateparse import parse_datetime

from accounts.http import AuthenticatedRequest
from chat.api import allow, api_view, json_body
from chat.errors import ChatError, Code
from chat.events import format_time

from . import selectors, tokens
from .auth import request_token
from .models import Token


def token_data(token: Token) -> dict[str, Any]:
    """A token as lists show it: never its secret, only the first characters."""
    return {
        "id": token.pk,
        "name": token.name,
        "prefix": token.prefix,
        "scope": token.scope,
        "created": format_time(token.created),
        "last_used": format_time(token.last_used) if token.last_used else None,
        "expires": format_time(token.expires) if token.expires else None,
    }


def _session_only(request: AuthenticatedRequest) -> None:
    if request_token(request) is not None:
        raise ChatError(Code.FORBIDDEN, "Tokens are created and revoked from a signed-in session.")


def _expiry(value: object) -> datetime | None:
    if value is None:
        return None
    parsed = parse_datetime(value) if isinstance(value, str) else None
    if parsed is None or parsed.tzinfo is None:
        raise ChatError(Code.INVALID, "expires must be an ISO 8601 time with its offset, or null.")
    return parsed


@allow("GET", "POST")
@api_view
def tokens_view(request: AuthenticatedRequest) -> JsonResponse:
    """GET: the user's tokens, without secrets. POST {"name", "scope"?, "expires"?}: a new one."""
    if request.method == "POST":
        _session_only(request)
        data = json_body(request)
        name = data.get("name")
        if not isinstance(name, str):
            raise ChatError(Code.INVALID, "A token needs a name of 1 to 100 characters.")
        scope = data.get("scope", Token.Scope.WRITE)
        if not isinstance(scope, str):
            raise ChatError(Code.INVALID, "A token's scope is read or write.")
        token, secret = tokens.token_create(
            user=request.user,
            name=name,
            scope=scope,
            expires=_expiry(data.get("expires")),
            request=request,
        )
        return JsonResponse({**token_data(token), "token": secret}, status=201)
    return JsonResponse({"tokens": [token_data(t) for t in selectors.tokens_of(request.user)]})


@allow("DELETE")
@api_view
def token_detail(request: AuthenticatedRequest, token_id: int) -> HttpResponse:
    """DELETE: revoke the token now; its open sockets close with 4401."""
    _session_only(request)
    tokens.token_revoke(user=request.user, token_id=token_id, request=request)
    return HttpResponse(status=204)
