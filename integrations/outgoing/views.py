"""The settings page of outgoing webhooks (a server-rendered form, no script needed)."""

from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from accounts.http import AuthenticatedRequest
from chat.errors import ChatError

from ..bots import bots_managed_by
from . import selectors, services

# Deliveries the page shows per webhook (the API gives 50).
PAGE_DELIVERIES = 10


def _words(text: str) -> list[str]:
    return [w for w in text.replace(",", " ").split() if w]


def _act(request: AuthenticatedRequest) -> None:
    action = request.POST.get("action", "")
    if action == "create":
        services.webhook_create(
            actor=request.user,
            bot=request.POST.get("bot", "") or request.user.username,
            url=request.POST.get("url", ""),
            trigger_words=_words(request.POST.get("trigger_words", "")),
            rooms=_words(request.POST.get("rooms", "")),
            request=request,
        )
        return
    webhook_id = int(request.POST.get("webhook", "0") or 0)
    if action == "rotate":
        services.webhook_rotate(actor=request.user, webhook_id=webhook_id, request=request)
    elif action == "delete":
        services.webhook_delete(actor=request.user, webhook_id=webhook_id, request=request)
    elif action in ("pause", "resume"):
        services.webhook_update(
            actor=request.user,
            webhook_id=webhook_id,
            changes={"active": action == "resume"},
            request=request,
        )


@require_http_methods(["GET", "POST"])
@login_required
def webhooks_page(request: AuthenticatedRequest) -> HttpResponse:
    """The outgoing webhooks the user manages: create, pause, rotate, remove; recent deliveries."""
    error = ""
    if request.method == "POST":
        try:
            _act(request)
            return redirect("settings-webhooks")
        except (ChatError, ValueError) as exc:
            error = exc.detail if isinstance(exc, ChatError) else "That webhook does not exist."
    managed = selectors.webhooks_managed(request.user)
    return render(
        request,
        "integrations/webhooks.html",
        {
            "webhooks": [
                (w, list(selectors.deliveries_recent(w, PAGE_DELIVERIES))) for w in managed
            ],
            "error": error,
            "form": request.POST if error else {},
            # The accounts a webhook can be made for here: one's own, and one's bots.
            "accounts": [
                request.user.username,
                *(b.username for b in bots_managed_by(request.user)),
            ],
            "back_url": "/",
        },
        status=400 if error else 200,
    )
