"""The bot API (`/api/bots/`) and the incoming webhook endpoint (`/hooks/incoming/<secret>/`)."""

from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from accounts.http import AuthenticatedRequest
from accounts.models import User
from chat.api import STATUS, allow, api_view, json_body
from chat.errors import ChatError, Code
from chat.events import format_time
from chat.protocol import MAX_JSON_DEPTH, TooDeep, json_loads
from chat.ratelimit import SendRateLimiter

from . import bots, selectors, tokens
from .api import _expiry, _session_only, token_data
from .models import IncomingWebhook, Token

# Slack allows about one post a second per webhook, with short bursts.
hook_limiter = SendRateLimiter(settings.WEBHOOK_RATE_LIMIT, settings.WEBHOOK_RATE_BURST)


def hook_url(request: HttpRequest, secret: str) -> str:
    return request.build_absolute_uri(f"/hooks/incoming/{secret}/")


def webhook_data(hook: IncomingWebhook) -> dict[str, Any]:
    return {
        "id": hook.pk,
        "name": hook.name,
        "room": hook.room.slug,
        "prefix": hook.prefix,
        "created": format_time(hook.created),
        "last_used": format_time(hook.last_used) if hook.last_used else None,
    }


def bot_data(bot: User) -> dict[str, Any]:
    return {
        "username": bot.username,
        "display_name": bot.display_name,
        "owner": bot.bot_owner.username if bot.bot_owner else None,
        "active": bot.is_active,
        "created": format_time(bot.date_joined),
    }


@allow("GET", "POST")
@api_view
def bots_view(request: AuthenticatedRequest) -> JsonResponse:
    """GET: the bots one manages (all of them for an admin). POST {"username", "display_name"?}."""
    if request.method == "POST":
        _session_only(request)
        data = json_body(request)
        bot = bots.bot_create(
            actor=request.user,
            username=data.get("username", ""),
            display_name=data.get("display_name", ""),
            request=request,
        )
        return JsonResponse({"bot": bot_data(bot)}, status=201)
    return JsonResponse({"bots": [bot_data(b) for b in bots.bots_managed_by(request.user)]})


@allow("GET", "PATCH", "DELETE")
@api_view
def bot_detail(request: AuthenticatedRequest, username: str) -> HttpResponse:
    """GET; PATCH {"display_name"?, "owner"? (admins)}; DELETE: deactivate the bot."""
    bot = bots.bot_for(request.user, username)
    if request.method == "DELETE":
        _session_only(request)
        bots.bot_deactivate(actor=request.user, bot=bot, request=request)
        return HttpResponse(status=204)
    if request.method == "PATCH":
        _session_only(request)
        data = json_body(request)
        bots.bot_update(
            actor=request.user,
            bot=bot,
            display_name=data.get("display_name"),
            owner=data.get("owner"),
            request=request,
        )
    hooks = IncomingWebhook.objects.filter(bot=bot).select_related("room")
    return JsonResponse({"bot": bot_data(bot), "webhooks": [webhook_data(h) for h in hooks]})


@allow("GET", "POST")
@api_view
def bot_tokens(request: AuthenticatedRequest, username: str) -> JsonResponse:
    """GET: the bot's tokens. POST {"name", "scope"?, "expires"?}: a new one, shown once."""
    bot = bots.bot_for(request.user, username)
    if request.method == "POST":
        _session_only(request)
        data = json_body(request)
        name, scope = data.get("name"), data.get("scope", Token.Scope.WRITE)
        if not isinstance(name, str) or not isinstance(scope, str):
            raise ChatError(Code.INVALID, "A token needs a name, and a scope of read or write.")
        token, secret = tokens.token_create(
            user=bot,
            name=name,
            scope=scope,
            expires=_expiry(data.get("expires")),
            actor=request.user,
            request=request,
        )
        return JsonResponse({**token_data(token), "token": secret}, status=201)
    return JsonResponse({"tokens": [token_data(t) for t in selectors.tokens_of(bot)]})


@allow("DELETE")
@api_view
def bot_token(request: AuthenticatedRequest, username: str, token_id: int) -> HttpResponse:
    bot = bots.bot_for(request.user, username)
    _session_only(request)
    tokens.token_revoke(user=bot, token_id=token_id, actor=request.user, request=request)
    return HttpResponse(status=204)


@allow("POST")
@api_view
def bot_rooms(request: AuthenticatedRequest, username: str) -> JsonResponse:
    """POST {"room"}: add the bot to a room the asker is in."""
    bot = bots.bot_for(request.user, username)
    room = json_body(request).get("room")
    if not isinstance(room, str):
        raise ChatError(Code.INVALID, "room must be a room's slug.")
    bots.bot_room_add(actor=request.user, bot=bot, room=room)
    return JsonResponse({"bot": bot_data(bot), "room": room})


@allow("GET", "POST")
@api_view
def bot_webhooks(request: AuthenticatedRequest, username: str) -> JsonResponse:
    """GET: the bot's incoming webhooks. POST {"room", "name"}: a new one; its URL shown once."""
    bot = bots.bot_for(request.user, username)
    if request.method == "POST":
        _session_only(request)
        data = json_body(request)
        room = data.get("room")
        if not isinstance(room, str):
            raise ChatError(Code.INVALID, "room must be a room's slug.")
        hook, secret = bots.webhook_create(
            actor=request.user, bot=bot, room=room, name=data.get("name", ""), request=request
        )
        return JsonResponse(
            {"webhook": {**webhook_data(hook), "url": hook_url(request, secret)}}, status=201
        )
    hooks = IncomingWebhook.objects.filter(bot=bot).select_related("room")
    return JsonResponse({"webhooks": [webhook_data(h) for h in hooks]})


def _hook_of(request: AuthenticatedRequest, username: str, hook_id: int) -> IncomingWebhook:
    bot = bots.bot_for(request.user, username)
    hook = IncomingWebhook.objects.filter(pk=hook_id, bot=bot).select_related("bot", "room").first()
    if hook is None:
        raise ChatError(Code.NOT_FOUND, "There is no such webhook.")
    return hook


@allow("DELETE")
@api_view
def bot_webhook(request: AuthenticatedRequest, username: str, hook_id: int) -> HttpResponse:
    _session_only(request)
    bots.webhook_delete(
        actor=request.user, hook=_hook_of(request, username, hook_id), request=request
    )
    return HttpResponse(status=204)


@allow("POST")
@api_view
def bot_webhook_rotate(request: AuthenticatedRequest, username: str, hook_id: int) -> JsonResponse:
    """A new secret URL (shown once); the old one stops working at once."""
    _session_only(request)
    hook = _hook_of(request, username, hook_id)
    secret = bots.webhook_rotate(actor=request.user, hook=hook, request=request)
    return JsonResponse({"webhook": {**webhook_data(hook), "url": hook_url(request, secret)}})


# --- the incoming webhook itself ---------------------------------------------------------


def _hook_error(status: int, code: Code | str, detail: str) -> JsonResponse:
    return JsonResponse({"error": code, "detail": detail}, status=status)


def _payload(request: HttpRequest) -> dict[str, Any]:
    """Slack's two forms: a JSON body, or a form field `payload` holding the JSON."""
    if request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        raw: str | bytes = request.POST.get("payload", "")
    else:
        raw = request.body
    try:
        data = json_loads(raw or b"")
    except TooDeep:
        raise ChatError(
            Code.INVALID, f"The JSON nests deeper than {MAX_JSON_DEPTH} levels."
        ) from None
    except (ValueError, RecursionError):
        raise ChatError(Code.INVALID, "The body is not valid JSON.") from None
    if not isinstance(data, dict):
        raise ChatError(Code.INVALID, "The body must be a JSON object.")
    return data


@csrf_exempt
def incoming(request: HttpRequest, secret: str) -> HttpResponse:
    """POST {"text", "username"?}: post `text` into the webhook's room as its bot.

    Answers `ok` as Slack does, or a JSON error. `username` is accepted (so
    Slack senders work unchanged) but the message is always the bot's: a
    webhook must not pass for a person.
    """
    if request.method != "POST":
        response = _hook_error(405, Code.METHOD_NOT_ALLOWED, "Use POST.")
        response["Allow"] = "POST"
        return response
    hook = bots.webhook_for_secret(secret)
    if hook is None:
        return _hook_error(404, Code.NOT_FOUND, "There is no webhook at this address.")
    if not hook_limiter.allow(hook.pk):
        return _hook_error(429, Code.RATE_LIMITED, "Too many posts: at most about one a second.")
    try:
        data = _payload(request)
        text = data.get("text")
        if not isinstance(text, str) or not text.strip():
            raise ChatError(Code.INVALID, "text must be non-empty text.")
        bots.webhook_post(hook=hook, text=text)
    except ChatError as exc:
        return _hook_error(STATUS.get(exc.code, 400), exc.code, exc.detail)
    except RequestDataTooBig:
        return _hook_error(413, Code.TOO_LARGE, "The body is too large.")
    return HttpResponse("ok", content_type="text/plain; charset=utf-8")
