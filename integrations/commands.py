"""Slash commands: /me, /shrug, /topic, /invite, /leave, /mute, /unmute, and bots' own.

They run on the server, so the page, scripts and bots get the same
behaviour: the socket's `command` frame and `POST /api/rooms/<slug>/commands/`
both call `command_run`. Each built-in goes through the same service and
checks as its button on the page. A bot's command is handed to the bot's
outgoing webhook, whose answer is posted as the bot's reply.
"""

import re
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.http import HttpRequest

from accounts.models import User
from chat import notify
from chat import selectors as chat_selectors
from chat import services as chat_services
from chat.errors import ChatError, Code
from chat.models import Message

from . import bots
from .audit import audit_record
from .models import BotCommand
from .outgoing import webhook_trigger

NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}\Z")
_COMMAND = re.compile(r"/([a-z0-9][a-z0-9_-]{0,31})(?:\s+(.*))?\Z", re.DOTALL)
SHRUG = "¯\\\\\\_(ツ)\\_/¯"  # ¯\_(ツ)_/¯, its backslash and underscores kept from markdown


@dataclass(frozen=True)
class Builtin:
    name: str
    usage: str
    description: str


BUILTINS = {
    b.name: b
    for b in (
        Builtin("me", "/me <action>", "Say what you are doing: “alice waves”."),
        Builtin("shrug", "/shrug [message]", "Send a message with ¯\\_(ツ)_/¯ at the end."),
        Builtin("topic", "/topic [new topic]", "Show this room's topic, or set it."),
        Builtin("invite", "/invite @name", "Add someone to this room."),
        Builtin("leave", "/leave", "Leave this room."),
        Builtin("mute", "/mute", "Mute this room's notifications."),
        Builtin("unmute", "/unmute", "Notify again as your default says."),
    )
}


@dataclass
class CommandResult:
    """What a command did: feedback for the person who ran it, and the message it sent."""

    text: str = ""
    message: Message | None = None
    room_slug: str = ""

    def to_wire(self) -> dict[str, Any]:
        return {
            "ok": True,
            "text": self.text,
            "message_id": self.message.pk if self.message else None,
        }


def command_parse(text: str) -> tuple[str, str]:
    """`/name args` -> (name, args); ChatError(invalid) for anything else."""
    found = _COMMAND.match(text.strip()) if isinstance(text, str) else None
    if found is None:
        raise ChatError(Code.INVALID, "A command is / and its name, like /shrug or /topic.")
    return found.group(1), (found.group(2) or "").strip()


def commands_list() -> list[dict[str, Any]]:
    """Every command anyone may run: the built-ins, then bots' (for the composer's completion)."""
    listed = [
        {"name": b.name, "usage": b.usage, "description": b.description, "bot": None}
        for b in BUILTINS.values()
    ]
    for command in BotCommand.objects.filter(bot__is_active=True).select_related("bot"):
        listed.append(
            {
                "name": command.name,
                "usage": command.usage or f"/{command.name}",
                "description": command.description,
                "bot": command.bot.username,
            }
        )
    return listed


def command_run(
    *, user: User, room: str, text: str, thread: int | None = None, nonce: str | None = None
) -> CommandResult:
    """Run the command in `text` in `room` for `user`.

    ChatError for an unknown command, bad arguments, or whatever the
    underlying service refuses (with the same codes as the page's buttons).
    """
    name, args = command_parse(text)
    handler = _HANDLERS.get(name)
    if handler is not None:
        return handler(user, room, args, thread, nonce)
    command = (
        BotCommand.objects.filter(name=name, bot__is_active=True).select_related("bot").first()
    )
    if command is None:
        raise ChatError(Code.INVALID, f"There is no command /{name}. Type / to see the commands.")
    return _bot_command(user, room, command, args, thread)


def _send(user: User, room: str, body: str, thread: int | None, nonce: str | None) -> CommandResult:
    result = chat_services.message_send(
        author=user, room=room, body=body, nonce=nonce, thread=thread
    )
    return CommandResult(message=result.message, room_slug=result.room_slug)


def _me(user: User, room: str, args: str, thread: int | None, nonce: str | None) -> CommandResult:
    if not args:
        raise ChatError(Code.INVALID, "Say what you are doing: /me waves.")
    return _send(user, room, f"/me {args}", thread, nonce)


def _shrug(
    user: User, room: str, args: str, thread: int | None, nonce: str | None
) -> CommandResult:
    return _send(user, room, f"{args} {SHRUG}" if args else SHRUG, thread, nonce)


def _topic(
    user: User, room: str, args: str, thread: int | None, nonce: str | None
) -> CommandResult:
    if not args:
        found = chat_selectors.room_for_reader(user, room)
        return CommandResult(
            text=f"Topic: {found.topic}" if found.topic else "This room has no topic.",
            room_slug=found.slug,
        )
    found = chat_services.room_update(actor=user, room=room, topic=args)
    return CommandResult(text="Topic set.", room_slug=found.slug)


def _invite(
    user: User, room: str, args: str, thread: int | None, nonce: str | None
) -> CommandResult:
    names = [word.lstrip("@") for word in args.split()]
    if len(names) != 1 or not names[0]:
        raise ChatError(Code.INVALID, "Name one person: /invite @name.")
    found, _ = chat_selectors.room_and_membership(user, room)
    already = found.memberships.filter(user__username__iexact=names[0]).exists()
    invitee = chat_services.room_invite(actor=user, room=room, username=names[0])
    verb = "is already in" if already else "added to"
    return CommandResult(text=f"@{invitee.username} {verb} #{found.name}.", room_slug=found.slug)


def _leave(
    user: User, room: str, args: str, thread: int | None, nonce: str | None
) -> CommandResult:
    chat_services.room_leave(actor=user, room=room)
    return CommandResult(text=f"You left #{room}.", room_slug=room)


def _mute(user: User, room: str, args: str, thread: int | None, nonce: str | None) -> CommandResult:
    notify.notify_level_set(user=user, room=room, level="none")
    return CommandResult(text="Muted: this room no longer notifies you.", room_slug=room)


def _unmute(
    user: User, room: str, args: str, thread: int | None, nonce: str | None
) -> CommandResult:
    notify.notify_level_set(user=user, room=room, level="default")
    return CommandResult(text="Unmuted.", room_slug=room)


_HANDLERS = {
    "me": _me,
    "shrug": _shrug,
    "topic": _topic,
    "invite": _invite,
    "leave": _leave,
    "mute": _mute,
    "unmute": _unmute,
}


def _bot_command(
    user: User, room: str, command: BotCommand, args: str, thread: int | None
) -> CommandResult:
    """Hand the command to its bot's outgoing webhook; the bot answers in the room."""
    found, membership = chat_selectors.room_and_membership(user, room)
    if membership is None:
        raise ChatError(Code.NOT_MEMBER, f"Join #{found.slug} to use commands in it.")
    event = {
        "type": "command",
        "command": f"/{command.name}",
        "text": args,
        "user": user.username,
        "room": {"slug": found.slug, "name": found.name},
        "thread": thread,
    }
    with transaction.atomic():
        sent = webhook_trigger(bot=command.bot, event=event)
    if not sent:
        raise ChatError(
            Code.UNAVAILABLE, f"The bot behind /{command.name} cannot be reached right now."
        )
    return CommandResult(
        text=f"/{command.name} sent to @{command.bot.username}.", room_slug=found.slug
    )


# --- bots registering their commands ------------------------------------------------------


def bot_command_register(
    *,
    actor: User,
    bot: User,
    name: str,
    description: str = "",
    usage: str = "",
    request: HttpRequest | None = None,
) -> BotCommand:
    """A new `/name` for `bot`: its owner, an admin, or the bot itself (with its token)."""
    if not (actor.pk == bot.pk or bots.may_manage(actor, bot)):
        raise bots.NoSuchBot()
    if not isinstance(name, str) or not NAME.match(name.lstrip("/")):
        raise ChatError(Code.INVALID, "A command's name is 1 to 32 of a-z, 0-9, _ and -.")
    name = name.lstrip("/")
    if name in BUILTINS:
        raise ChatError(Code.INVALID, f"/{name} is built in.")
    if not isinstance(description, str) or not isinstance(usage, str):
        raise ChatError(Code.INVALID, "description and usage are text.")
    with transaction.atomic():
        if BotCommand.objects.filter(name=name).exists():
            raise ChatError(Code.INVALID, f"/{name} is taken.")
        command = BotCommand.objects.create(
            name=name, bot=bot, description=description.strip()[:200], usage=usage.strip()[:100]
        )
        audit_record(
            action="command.register",
            actor=actor,
            target=f"bot:{bot.username}",
            request=request,
            data={"command": name},
        )
    return command


def bot_command_remove(*, actor: User, name: str, request: HttpRequest | None = None) -> None:
    command = BotCommand.objects.filter(name=name).select_related("bot").first()
    if command is None or not (actor.pk == command.bot_id or bots.may_manage(actor, command.bot)):
        raise ChatError(Code.NOT_FOUND, f"There is no command /{name} of yours.")
    with transaction.atomic():
        audit_record(
            action="command.remove",
            actor=actor,
            target=f"bot:{command.bot.username}",
            request=request,
            data={"command": name},
        )
        command.delete()
