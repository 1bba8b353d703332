"""The audit log's one way in: `audit_record` (append-only).

Services record their own actions, so the admin, the API and the pages are
all covered; who and from where come from the request being served
(`AuditContextMiddleware`) unless the caller names them.
"""

from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

from django.http import HttpRequest, HttpResponse

from accounts.models import User

from .models import AuditEntry

# The request being served in this context (thread or task), if any.
_current: ContextVar[HttpRequest | None] = ContextVar("audit_request", default=None)


class AuditContextMiddleware:
    """Makes the request being served known to `audit_record` (after AuthenticationMiddleware)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        token = _current.set(request)
        try:
            return self.get_response(request)
        finally:
            _current.reset(token)


def client_address(request: HttpRequest | None) -> str | None:
    """The client's address as the login rate limits see it (TRUSTED_PROXY_COUNT aware)."""
    if request is None:
        return None
    from allauth.account.adapter import get_adapter

    try:
        return get_adapter(request).get_client_ip(request) or None
    except Exception:
        return request.META.get("REMOTE_ADDR") or None


def audit_record(
    *,
    action: str,
    actor: User | None = None,
    target: str = "",
    request: HttpRequest | None = None,
    data: dict[str, Any] | None = None,
) -> AuditEntry:
    """Append one entry: `action` ("user.deactivate", "token.create", ...) by `actor` on `target`.

    Call it inside the action's transaction, so a rolled-back action leaves no entry.
    The request (for the actor when not given, and the address) is the one
    being served unless given; from a management command there is none.
    """
    if request is None:
        request = _current.get()
    if actor is None and request is not None and request.user.is_authenticated:
        actor = request.user
    return AuditEntry.objects.create(
        action=action,
        actor=actor,
        actor_name=actor.get_username() if actor is not None else "",
        target=target[:200],
        ip=client_address(request),
        data=data or {},
    )
