"""Settings pages for integrations (server-rendered forms, no script needed)."""

from datetime import timedelta

from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_http_methods

from accounts.http import AuthenticatedRequest
from chat.errors import ChatError

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
