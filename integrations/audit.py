"""The audit log's one way in: `audit_record` (append-only)."""

from typing import Any

from django.http import HttpRequest

from accounts.models import User

from .models import AuditEntry


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
    The address comes from `request` when there is one (None from a command).
    """
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
