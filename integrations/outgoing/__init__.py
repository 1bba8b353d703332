"""Outgoing webhooks: events for a bot POSTed to its URL through a durable outbox.

See docs/webhooks.md. `webhook_trigger` queues an event for a bot from
other features (slash commands registered by bots).
"""

from typing import Any

from accounts.models import User


def webhook_trigger(*, bot: User, event: dict[str, Any]) -> bool:
    """Queue `event` for `bot`'s outgoing webhook in the current transaction; False if it has none.

    See `integrations.outgoing.services.webhook_trigger`.
    """
    from .services import webhook_trigger as trigger

    return trigger(bot=bot, event=event)
