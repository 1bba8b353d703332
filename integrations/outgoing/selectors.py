"""Reads for outgoing webhooks: the ones a person manages, a webhook's last deliveries."""

from django.db.models import Q, QuerySet

from accounts.models import User

from ..models import Delivery, OutgoingWebhook
from .services import may_manage

RECENT_DELIVERIES = 50


def webhooks_managed(user: User) -> list[OutgoingWebhook]:
    """Every webhook `user` may manage (admins: all), newest first, rooms loaded."""
    webhooks = OutgoingWebhook.objects.select_related("bot", "owner").prefetch_related("rooms")
    if not user.is_chat_admin:
        webhooks = webhooks.filter(
            Q(bot=user) | Q(owner=user) | Q(bot__is_bot=True, bot__bot_owner=user)
        )
    return [w for w in webhooks if may_manage(user, w.bot)]


def deliveries_recent(
    webhook: OutgoingWebhook, limit: int = RECENT_DELIVERIES
) -> QuerySet[Delivery]:
    """The webhook's latest deliveries, newest first."""
    return Delivery.objects.filter(webhook=webhook).order_by("-created", "-id")[:limit]
