"""Settings pages for integrations (server-rendered forms, no script needed)."""

from datetime import timedelta
from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_http_methods

from accounts.http import AuthenticatedRequest
from chat.errors import ChatError, Code

from . import selectors, tokens
from .models import Token

# The expiry choices the page offers, in days (None: never).
EXPIRY_CHOICES = [(30, "30 days"), (90, "90 days"), (365, "1 year"), (None, "Never")]


@require_http_methods(["GET", "POST"])
@login_required
def tokens_page(request: AuthenticatedRequest) -> HttpResponse:
    """Create, list and revoke one's personal access tokens; a new secret is shown once."""
    created: tuple[Token, str] | None = None
    error = ""
    if request.method == "POST":
        try:
            if request.POST.get("action") == "revoke":
                tokens.token_revoke(
                    user=request.user,
                    token_id=int(request.POST.get("token", "0") or 0),
                    request=request,
                )
                return redirect("settings-tokens")
            days = request.POST.get("expires", "")
            created = tokens.token_create(
                user=request.user,
                name=request.POST.get("name", ""),
                scope=request.POST.get("scope", Token.Scope.WRITE),
                expires=timezone.now() + timedelta(days=int(days)) if days.isdigit() else None,
                request=request,
            )
        except (ChatError, ValueError) as exc:
            error = exc.detail if isinstance(exc, ChatError) else "That token does not exist."
    return render(
        request,
        "integrations/tokens.html",
        {
            "tokens": selectors.tokens_of(request.user),
            "created": created[0] if created else None,
            "secret": created[1] if created else "",
            "error": error,
            "scopes": Token.Scope.choices,
            "expiry_choices": EXPIRY_CHOICES,
            "now": timezone.now(),
            "back_url": "/",
        },
        status=400 if error else 200,
    )


def _my_rooms(user: Any) -> list[Any]:
    from chat.models import Room

    return list(
        Room.objects.filter(memberships__user=user, is_archived=False)
        .exclude(kind=Room.Kind.DIRECT)
        .order_by("name")
        .only("slug", "name")
    )


@require_http_methods(["GET", "POST"])
@login_required
def bots_page(request: AuthenticatedRequest) -> HttpResponse:
    """Create and manage one's bots: tokens, rooms, incoming webhooks (secrets shown once)."""
    from . import bots
    from .bots_api import hook_url
    from .models import IncomingWebhook

    actor = request.user
    shown: dict[str, str] = {}
    error = ""
    if request.method == "POST":
        action = request.POST.get("action", "")
        try:
            if action == "create":
                bots.bot_create(
                    actor=actor,
                    username=request.POST.get("username", ""),
                    display_name=request.POST.get("display_name", ""),
                    request=request,
                )
            else:
                bot = bots.bot_for(actor, request.POST.get("bot", ""))
                if action == "token":
                    token, secret = tokens.token_create(
                        user=bot,
                        name=request.POST.get("name", ""),
                        scope=request.POST.get("scope", Token.Scope.WRITE),
                        actor=actor,
                        request=request,
                    )
                    shown = {"what": f"Token “{token.name}” for {bot.username}", "secret": secret}
                elif action == "revoke":
                    tokens.token_revoke(
                        user=bot,
                        token_id=int(request.POST.get("token", "0") or 0),
                        actor=actor,
                        request=request,
                    )
                elif action == "room":
                    bots.bot_room_add(actor=actor, bot=bot, room=request.POST.get("room", ""))
                elif action == "webhook":
                    hook, secret = bots.webhook_create(
                        actor=actor,
                        bot=bot,
                        room=request.POST.get("room", ""),
                        name=request.POST.get("name", ""),
                        request=request,
                    )
                    shown = {
                        "what": f"Webhook “{hook.name}” URL",
                        "secret": hook_url(request, secret),
                    }
                elif action in ("rotate", "unhook"):
                    found = IncomingWebhook.objects.filter(
                        pk=int(request.POST.get("webhook", "0") or 0), bot=bot
                    ).first()
                    if found is None:
                        raise ChatError(Code.NOT_FOUND, "There is no such webhook.")
                    hook = found
                    if action == "rotate":
                        secret = bots.webhook_rotate(actor=actor, hook=hook, request=request)
                        shown = {
                            "what": f"New URL of “{hook.name}”",
                            "secret": hook_url(request, secret),
                        }
                    else:
                        bots.webhook_delete(actor=actor, hook=hook, request=request)
                elif action == "deactivate":
                    bots.bot_deactivate(actor=actor, bot=bot, request=request)
                else:
                    raise ChatError(Code.INVALID, "Unknown action.")
        except (ChatError, ValueError) as exc:
            error = exc.detail if isinstance(exc, ChatError) else "That does not exist."
        if not error and not shown:
            return redirect("settings-bots")
    managed = bots.bots_managed_by(actor)
    hooks = IncomingWebhook.objects.filter(bot__in=managed).select_related("room")
    entries = [
        {
            "bot": bot,
            "tokens": list(selectors.tokens_of(bot)),
            "webhooks": [h for h in hooks if h.bot_id == bot.pk],
        }
        for bot in managed
    ]
    return render(
        request,
        "integrations/bots.html",
        {
            "entries": entries,
            "may_create": bots.may_create_bots(actor),
            "rooms": _my_rooms(actor),
            "shown": shown,
            "error": error,
            "scopes": Token.Scope.choices,
            "back_url": "/",
        },
        status=400 if error else 200,
    )
