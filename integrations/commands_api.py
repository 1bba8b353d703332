"""Slash commands over HTTP: run one in a room; list, register and remove bots' commands."""

from django.http import HttpResponse, JsonResponse

from accounts.http import AuthenticatedRequest
from accounts.models import User
from chat.api import allow, api_view, json_body, messages_data
from chat.errors import ChatError, Code
from chat.protocol import FrameError, reply_fields

from . import bots, commands


@allow("POST")
@api_view
def room_command(request: AuthenticatedRequest, slug: str) -> JsonResponse:
    """POST {"text", "thread"?, "nonce"?}: run `text` (a slash command) in the room."""
    data = json_body(request)
    text = data.get("text")
    if not isinstance(text, str):
        raise ChatError(Code.INVALID, "text must be the command, like /topic Launch day.")
    try:
        thread = reply_fields(data)["thread"]
    except FrameError as exc:
        raise ChatError(exc.code, exc.detail) from None
    nonce = chat_nonce(data.get("nonce"))
    result = commands.command_run(
        user=request.user, room=slug, text=text, thread=thread, nonce=nonce
    )
    body = result.to_wire()
    if result.message is not None:
        [body["message"]] = messages_data([result.message], result.room_slug)
    return JsonResponse(body)


def chat_nonce(value: object) -> str | None:
    from chat.services import nonce_validate

    return nonce_validate(value)


@allow("GET", "POST")
@api_view
def commands_view(request: AuthenticatedRequest) -> JsonResponse:
    """GET: every command (for completion). POST {"bot", "name", "description"?, "usage"?}."""
    if request.method == "POST":
        data = json_body(request)
        bot_name = data.get("bot")
        if bot_name is None and request.user.is_bot:
            bot: User = request.user  # a bot registering its own, with its token
        elif isinstance(bot_name, str):
            bot = bots.bot_for(request.user, bot_name)
        else:
            raise ChatError(Code.INVALID, "bot must be the bot's username.")
        command = commands.bot_command_register(
            actor=request.user,
            bot=bot,
            name=data.get("name", ""),
            description=data.get("description", ""),
            usage=data.get("usage", ""),
            request=request,
        )
        return JsonResponse(
            {"command": {"name": command.name, "usage": command.usage or f"/{command.name}",
                         "description": command.description, "bot": bot.username}},
            status=201,
        )  # fmt: skip
    return JsonResponse({"commands": commands.commands_list()})


@allow("DELETE")
@api_view
def command_detail(request: AuthenticatedRequest, name: str) -> HttpResponse:
    commands.bot_command_remove(actor=request.user, name=name, request=request)
    return HttpResponse(status=204)
