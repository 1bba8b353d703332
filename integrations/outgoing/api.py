"""The API of outgoing webhooks: `/api/webhooks/outgoing/` (see docs/webhooks.md).

Only who may manage a webhook (the account itself, its owner, an admin)
sees it; for anyone else it does not exist (`404 not_found`).
"""

from typing import Any

from django.http import HttpResponse, JsonResponse

from accounts.http import AuthenticatedRequest
from chat.api import allow, api_view, json_body
from chat.events import format_time

from ..models import Delivery, OutgoingWebhook
from . import selectors, services


def webhook_data(webhook: OutgoingWebhook) -> dict[str, Any]:
    """A webhook as its managers see it, signing secret included."""
    return {
        "id": webhook.pk,
        "bot": webhook.bot.username,
        "owner": webhook.owner.username if webhook.owner else None,
        "url": webhook.url,
        "secret": webhook.secret,
        "trigger_words": webhook.trigger_words,
        "rooms": sorted(r.slug for r in webhook.rooms.all()),
        "active": webhook.active,
        "created": format_time(webhook.created),
    }


def delivery_data(delivery: Delivery) -> dict[str, Any]:
    payload = delivery.payload
    return {
        "event_id": str(delivery.event_id),
        "type": payload.get("type"),
        "trigger": payload.get("trigger"),
        "status": delivery.status,
        "attempts": delivery.attempts,
        "created": format_time(delivery.created),
        "next_attempt_at": (
            format_time(delivery.next_attempt_at)
            if delivery.status == Delivery.Status.PENDING
            else None
        ),
        "delivered_at": format_time(delivery.delivered_at) if delivery.delivered_at else None,
        "last_status_code": delivery.last_status_code,
        "last_error": delivery.last_error,
    }


@allow("GET", "POST")
@api_view
def webhooks(request: AuthenticatedRequest) -> JsonResponse:
    """GET: the webhooks the user manages.

    POST {"bot", "url", "trigger_words"?, "rooms"?, "active"?}: set one up.
    """
    if request.method == "POST":
        data = json_body(request)
        webhook = services.webhook_create(
            actor=request.user,
            bot=data.get("bot"),
            url=data.get("url"),
            trigger_words=data.get("trigger_words"),
            rooms=data.get("rooms"),
            active=data.get("active", True) is not False,
            request=request,
        )
        return JsonResponse({"webhook": webhook_data(webhook)}, status=201)
    return JsonResponse(
        {"webhooks": [webhook_data(w) for w in selectors.webhooks_managed(request.user)]}
    )


@allow("GET", "PATCH", "DELETE")
@api_view
def webhook_detail(request: AuthenticatedRequest, webhook_id: int) -> HttpResponse:
    """GET: the webhook. PATCH: change url, trigger_words, rooms, active. DELETE: remove it."""
    if request.method == "DELETE":
        services.webhook_delete(actor=request.user, webhook_id=webhook_id, request=request)
        return HttpResponse(status=204)
    if request.method == "PATCH":
        webhook = services.webhook_update(
            actor=request.user, webhook_id=webhook_id, changes=json_body(request), request=request
        )
    else:
        webhook = services.webhook_for_manager(request.user, webhook_id)
    return JsonResponse({"webhook": webhook_data(webhook)})


@allow("POST")
@api_view
def webhook_rotate(request: AuthenticatedRequest, webhook_id: int) -> JsonResponse:
    """POST: a new signing secret (the old one stops at once)."""
    webhook = services.webhook_rotate(actor=request.user, webhook_id=webhook_id, request=request)
    return JsonResponse({"webhook": webhook_data(webhook)})


@allow("GET")
@api_view
def webhook_deliveries(request: AuthenticatedRequest, webhook_id: int) -> JsonResponse:
    """GET: the webhook's last 50 deliveries, newest first, with their status and last error."""
    webhook = services.webhook_for_manager(request.user, webhook_id)
    return JsonResponse(
        {"deliveries": [delivery_data(d) for d in selectors.deliveries_recent(webhook)]}
    )
