"""Bot accounts and their incoming webhooks.

A bot is a User with `is_bot`: it has no usable password, so it never signs
in on the web; it acts through tokens (integrations.tokens) and webhooks.
Its owner manages it; an admin manages every bot and hands one to another
owner. Every change is in the audit log.
"""

import hashlib
import secrets

from django.db import IntegrityError, transaction
from django.http import HttpRequest
from django.utils import timezone

from accounts.models import User
from accounts.selectors import signup_policy
from accounts.services import user_set_active
from chat import selectors as chat_selectors
from chat import services as chat_services
from chat.errors import ChatError, Code
from chat.models import Membership

from .audit import audit_record
from .models import IncomingWebhook

HOOK_PREFIX = "wh_"
_SHOWN = 8


class NoSuchBot(ChatError):
    def __init__(self) -> None:
        super().__init__(Code.NOT_FOUND, "There is no such bot.")


def may_create_bots(user: User) -> bool:
    """Admins always; members when the admin's policy allows it."""
    return user.is_chat_admin or (not user.is_bot and signup_policy().members_may_create_bots)


def may_manage(actor: User, bot: User) -> bool:
    """The bot's owner and admins manage a bot; nobody else sees it as theirs."""
    return bot.is_bot and (actor.is_chat_admin or bot.bot_owner_id == actor.pk)


def bot_for(actor: User, username: str) -> User:
    """The bot `username` if `actor` may manage it; else NoSuchBot, whether or not it exists."""
    bot = User.objects.filter(username__iexact=username, is_bot=True).first()
    if bot is None or not may_manage(actor, bot):
        raise NoSuchBot()
    return bot


def bots_managed_by(actor: User) -> list[User]:
    """The bots `actor` manages: their own, or every bot for an admin."""
    bots = User.objects.filter(is_bot=True).select_related("bot_owner").order_by("username")
    return list(bots if actor.is_chat_admin else bots.filter(bot_owner=actor))


def bot_create(
    *, actor: User, username: str, display_name: str = "", request: HttpRequest | None = None
) -> User:
    """A new bot owned by `actor` (a member of #general like anyone); audit-logged."""
    if not may_create_bots(actor):
        raise ChatError(Code.FORBIDDEN, "Only admins may create bots here.")
    if not isinstance(username, str) or not isinstance(display_name, str):
        raise ChatError(Code.INVALID, "username and display_name must be text.")
    username = username.strip()
    display_name = display_name.strip()[:64]
    bot = User(username=username, display_name=display_name, is_bot=True, bot_owner=actor)
    bot.set_unusable_password()
    try:
        bot.full_clean(exclude=["password", "email"])
    except Exception as exc:
        messages = getattr(exc, "message_dict", {}).get("username") or [str(exc)]
        raise ChatError(Code.INVALID, " ".join(messages)) from None
    try:
        with transaction.atomic():
            bot.save()
            audit_record(
                action="bot.create",
                actor=actor,
                target=f"bot:{bot.username}",
                request=request,
                data={"owner": actor.username},
            )
    except IntegrityError:
        raise ChatError(Code.INVALID, "That username is taken.") from None
    return bot


def bot_update(
    *,
    actor: User,
    bot: User,
    display_name: str | None = None,
    owner: str | None = None,
    request: HttpRequest | None = None,
) -> User:
    """Rename a bot (its managers) or hand it to another owner (admins only)."""
    if not may_manage(actor, bot):
        raise NoSuchBot()
    with transaction.atomic():
        if display_name is not None:
            if not isinstance(display_name, str) or len(display_name.strip()) > 64:
                raise ChatError(Code.INVALID, "display_name is text of at most 64 characters.")
            bot.display_name = display_name.strip()
            bot.save(update_fields=["display_name"])
        if owner is not None:
            if not actor.is_chat_admin:
                raise ChatError(Code.FORBIDDEN, "Only an admin may give a bot another owner.")
            new_owner = User.objects.filter(
                username__iexact=str(owner), is_active=True, is_bot=False
            ).first()
            if new_owner is None:
                raise ChatError(Code.INVALID, "The new owner must be an active person.")
            previous = bot.bot_owner.username if bot.bot_owner else None
            bot.bot_owner = new_owner
            bot.save(update_fields=["bot_owner"])
            audit_record(
                action="bot.reassign",
                actor=actor,
                target=f"bot:{bot.username}",
                request=request,
                data={"from": previous, "to": new_owner.username},
            )
    return bot


def bot_deactivate(*, actor: User, bot: User, request: HttpRequest | None = None) -> None:
    """Switch a bot off: its tokens and webhooks stop working, its sockets close."""
    if not may_manage(actor, bot):
        raise NoSuchBot()
    with transaction.atomic():
        if user_set_active(bot, active=False):
            audit_record(
                action="bot.deactivate", actor=actor, target=f"bot:{bot.username}", request=request
            )


def bot_room_add(*, actor: User, bot: User, room: str) -> None:
    """Put the bot in a room the actor is in, with the rules of any invite."""
    if not may_manage(actor, bot):
        raise NoSuchBot()
    chat_services.room_invite(actor=actor, room=room, username=bot.username)


# --- incoming webhooks ----------------------------------------------------------------


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def _new_secret() -> str:
    return HOOK_PREFIX + secrets.token_urlsafe(30)


def webhook_create(
    *, actor: User, bot: User, room: str, name: str, request: HttpRequest | None = None
) -> tuple[IncomingWebhook, str]:
    """A webhook posting into `room` as `bot`; returns it and its secret (shown once).

    The actor must be able to post in the room; the bot is added to it if
    it is not a member yet.
    """
    if not may_manage(actor, bot):
        raise NoSuchBot()
    if not isinstance(name, str) or not 1 <= len(name.strip()) <= 100:
        raise ChatError(Code.INVALID, "A webhook needs a name of 1 to 100 characters.")
    found, membership = chat_selectors.room_and_membership(actor, room)
    if membership is None:
        raise ChatError(Code.NOT_MEMBER, "Join the room first.")
    if not Membership.objects.filter(room=found, user=bot).exists():
        chat_services.room_invite(actor=actor, room=found.slug, username=bot.username)
    secret = _new_secret()
    with transaction.atomic():
        hook = IncomingWebhook.objects.create(
            bot=bot,
            room=found,
            name=name.strip(),
            prefix=secret[: len(HOOK_PREFIX) + _SHOWN],
            digest=_digest(secret),
            created_by=actor,
        )
        audit_record(
            action="webhook.create",
            actor=actor,
            target=f"bot:{bot.username}",
            request=request,
            data={"webhook": hook.pk, "room": found.slug, "kind": "incoming"},
        )
    return hook, secret


def webhook_rotate(
    *, actor: User, hook: IncomingWebhook, request: HttpRequest | None = None
) -> str:
    """A new secret URL; the old one stops working at once."""
    if not may_manage(actor, hook.bot):
        raise NoSuchBot()
    secret = _new_secret()
    with transaction.atomic():
        hook.prefix = secret[: len(HOOK_PREFIX) + _SHOWN]
        hook.digest = _digest(secret)
        hook.save(update_fields=["prefix", "digest"])
        audit_record(
            action="webhook.rotate",
            actor=actor,
            target=f"bot:{hook.bot.username}",
            request=request,
            data={"webhook": hook.pk, "kind": "incoming"},
        )
    return secret


def webhook_delete(
    *, actor: User, hook: IncomingWebhook, request: HttpRequest | None = None
) -> None:
    if not may_manage(actor, hook.bot):
        raise NoSuchBot()
    with transaction.atomic():
        audit_record(
            action="webhook.delete",
            actor=actor,
            target=f"bot:{hook.bot.username}",
            request=request,
            data={"webhook": hook.pk, "kind": "incoming"},
        )
        hook.delete()


def webhook_for_secret(secret: str) -> IncomingWebhook | None:
    """The live webhook with this secret (its bot active), or None."""
    if not secret.startswith(HOOK_PREFIX) or len(secret) > 200:
        return None
    hook = (
        IncomingWebhook.objects.select_related("bot", "room")
        .filter(digest=_digest(secret), bot__is_active=True)
        .first()
    )
    if hook is not None:
        IncomingWebhook.objects.filter(pk=hook.pk).update(last_used=timezone.now())
    return hook


def webhook_post(*, hook: IncomingWebhook, text: str) -> chat_services.SendResult:
    """Post `text` into the webhook's room as its bot, through the one write path."""
    return chat_services.message_send(author=hook.bot, room=hook.room.slug, body=text, nonce=None)
