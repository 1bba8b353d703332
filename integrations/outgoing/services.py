"""Outgoing webhooks: set one up, change it, rotate its secret, remove it, queue an event.

Who may manage the webhook of an account: the account itself, its owner
(for a bot account that has one) and admins. Everyone else gets the same
`not_found` as for a webhook that does not exist. Every change is audit-logged
in its transaction.
"""

from typing import Any

from django.db import transaction
from django.http import HttpRequest

from accounts.models import User
from chat.errors import ChatError, Code
from chat.models import Room

from ..audit import audit_record
from ..models import OutgoingWebhook, webhook_secret_new
from . import netguard
from .triggers import delivery_new
from .wakeup import outbox_notify

URL_MAX_CHARS = 2000
TRIGGER_WORDS_MAX = 20
TRIGGER_WORD_MAX_CHARS = 50


def may_manage(user: User, bot: User) -> bool:
    """Whether `user` may see and change the outgoing webhook of the account `bot`."""
    if user.is_chat_admin or user.pk == bot.pk:
        return True
    return bot.is_bot and bot.bot_owner_id == user.pk


def url_validate(url: object) -> str:
    """The URL if a webhook may have it: http(s), and only public addresses (see netguard)."""
    if not isinstance(url, str) or not url.strip():
        raise ChatError(Code.INVALID, "A webhook needs a url (http:// or https://).")
    url = url.strip()
    if len(url) > URL_MAX_CHARS:
        raise ChatError(Code.INVALID, f"The url is longer than {URL_MAX_CHARS} characters.")
    try:
        netguard.url_check(url)
    except netguard.Refused as exc:
        raise ChatError(Code.INVALID, str(exc)) from exc
    return url


def trigger_words_validate(words: object) -> list[str]:
    """The distinct trigger words (trimmed, in order), or `invalid`."""
    if words is None:
        return []
    if not isinstance(words, list) or not all(isinstance(w, str) for w in words):
        raise ChatError(Code.INVALID, "trigger_words must be a list of words.")
    found: dict[str, str] = {}
    for word in words:
        word = word.strip()
        if not word:
            continue
        if len(word) > TRIGGER_WORD_MAX_CHARS or any(c.isspace() or ord(c) < 32 for c in word):
            raise ChatError(
                Code.INVALID,
                f"A trigger word is one word of at most {TRIGGER_WORD_MAX_CHARS} characters.",
            )
        found.setdefault(word.lower(), word)
    if len(found) > TRIGGER_WORDS_MAX:
        raise ChatError(Code.INVALID, f"A webhook has at most {TRIGGER_WORDS_MAX} trigger words.")
    return list(found.values())


def rooms_validate(bot: User, slugs: object) -> list[Room]:
    """The rooms named, each one the bot is a member of; else `invalid` naming the others."""
    if slugs is None:
        return []
    if not isinstance(slugs, list) or not all(isinstance(s, str) for s in slugs):
        raise ChatError(Code.INVALID, "rooms must be a list of room slugs.")
    wanted = list(dict.fromkeys(s.strip().lstrip("#") for s in slugs if s.strip()))
    rooms = {r.slug: r for r in Room.objects.filter(slug__in=wanted, memberships__user=bot)}
    missing = [s for s in wanted if s not in rooms]
    if missing:
        raise ChatError(Code.INVALID, f"{bot.username} is not a member of: {', '.join(missing)}.")
    return [rooms[s] for s in wanted]


def _bot_named(actor: User, username: object) -> User:
    if not isinstance(username, str) or not username.strip():
        raise ChatError(Code.INVALID, "Name the account the webhook answers for (bot).")
    bot = User.objects.filter(username__iexact=username.strip().lstrip("@")).first()
    if bot is None or not may_manage(actor, bot):
        raise ChatError(
            Code.NOT_FOUND, "There is no such account, or you may not manage its webhooks."
        )
    return bot


def webhook_for_manager(actor: User, webhook_id: int) -> OutgoingWebhook:
    """The webhook if `actor` may manage it; `not_found` if it does not exist or they may not."""
    webhook = OutgoingWebhook.objects.select_related("bot", "owner").filter(pk=webhook_id).first()
    if webhook is None or not may_manage(actor, webhook.bot):
        raise ChatError(Code.NOT_FOUND, "There is no such webhook.")
    return webhook


def _audit(action: str, actor: User, webhook: OutgoingWebhook, request: HttpRequest | None,
           **data: Any) -> None:  # fmt: skip
    audit_record(
        action=action,
        actor=actor,
        target=f"bot:{webhook.bot.username}",
        request=request,
        data={"kind": "outgoing", "webhook": webhook.pk, **data},
    )


def webhook_create(
    *,
    actor: User,
    bot: object,
    url: object,
    trigger_words: object = None,
    rooms: object = None,
    active: bool = True,
    request: HttpRequest | None = None,
) -> OutgoingWebhook:
    """Set up the outgoing webhook of the account named `bot` (one per account), with a new secret.

    The url is checked now as the worker will check it (public addresses
    only, unless the admin allows private ones), so a mistake shows at once.
    """
    account = _bot_named(actor, bot)
    checked_url = url_validate(url)
    words = trigger_words_validate(trigger_words)
    room_list = rooms_validate(account, rooms)
    with transaction.atomic():
        if OutgoingWebhook.objects.select_for_update().filter(bot=account).exists():
            raise ChatError(
                Code.CONFLICT,
                f"{account.username} already has an outgoing webhook; change or remove it.",
            )
        webhook = OutgoingWebhook.objects.create(
            bot=account, owner=actor, url=checked_url, trigger_words=words, active=active
        )
        webhook.rooms.set(room_list)
        _audit("webhook.create", actor, webhook, request, url=checked_url, trigger_words=words,
               rooms=[r.slug for r in room_list])  # fmt: skip
    return webhook


def webhook_update(
    *,
    actor: User,
    webhook_id: int,
    changes: dict[str, Any],
    request: HttpRequest | None = None,
) -> OutgoingWebhook:
    """Change any of url, trigger_words, rooms and active (the keys present in `changes`)."""
    webhook = webhook_for_manager(actor, webhook_id)
    unknown = set(changes) - {"url", "trigger_words", "rooms", "active"}
    if unknown:
        raise ChatError(Code.INVALID, f"Unknown fields: {', '.join(sorted(unknown))}.")
    fields: list[str] = []
    if "url" in changes:
        webhook.url = url_validate(changes["url"])
        fields.append("url")
    if "trigger_words" in changes:
        webhook.trigger_words = trigger_words_validate(changes["trigger_words"])
        fields.append("trigger_words")
    if "active" in changes:
        if not isinstance(changes["active"], bool):
            raise ChatError(Code.INVALID, "active is true or false.")
        webhook.active = changes["active"]
        fields.append("active")
    room_list = rooms_validate(webhook.bot, changes["rooms"]) if "rooms" in changes else None
    with transaction.atomic():
        if fields:
            webhook.save(update_fields=fields)
        if room_list is not None:
            webhook.rooms.set(room_list)
        changed = {f: getattr(webhook, f) for f in fields}
        if room_list is not None:
            changed["rooms"] = [r.slug for r in room_list]
        _audit("webhook.update", actor, webhook, request, **changed)
    return webhook


def webhook_rotate(
    *, actor: User, webhook_id: int, request: HttpRequest | None = None
) -> OutgoingWebhook:
    """A new signing secret, used from the next delivery on; the old one stops at once."""
    webhook = webhook_for_manager(actor, webhook_id)
    with transaction.atomic():
        webhook.secret = webhook_secret_new()
        webhook.save(update_fields=["secret"])
        _audit("webhook.rotate", actor, webhook, request)
    return webhook


def webhook_delete(*, actor: User, webhook_id: int, request: HttpRequest | None = None) -> None:
    """Remove the webhook and its deliveries, pending ones included (none is sent after)."""
    webhook = webhook_for_manager(actor, webhook_id)
    with transaction.atomic():
        _audit("webhook.delete", actor, webhook, request, url=webhook.url)
        webhook.delete()


def webhook_trigger(*, bot: User, event: dict[str, Any]) -> bool:
    """Queue `event` for `bot`'s active outgoing webhook, in the caller's transaction.

    The delivery gets an `event_id` and the event names the `bot`; the worker
    sends it like any other and posts a `{"text"}` answer in
    `event["room"]["slug"]` (in `event["thread"]` or the message's thread if
    given). False, and nothing queued, if the bot has no active webhook.
    """
    webhook_id = (
        OutgoingWebhook.objects.filter(bot=bot, active=True).values_list("id", flat=True).first()
    )
    if webhook_id is None:
        return False
    delivery_new(webhook_id, {**event, "bot": bot.username}).save()
    outbox_notify()
    return True
