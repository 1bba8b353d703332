"""The outbox's worker side: take due deliveries, POST them signed, record what happened.

At least once: a delivery is marked delivered only after a 2xx answer. A
worker takes a delivery by moving its `next_attempt_at` forward by the lease
(WEBHOOK_LEASE_SECONDS) and counting the attempt, in one short transaction
(`FOR UPDATE SKIP LOCKED` on PostgreSQL, so workers never take the same row);
a worker killed while sending leaves the row pending, and it is taken again
when the lease runs out. The attempt count is the lease's fence: a worker
whose lease ran out (and whose delivery another worker took since) records
nothing.

The signature is Slack's scheme (X-Slack-Signature) under TeamChat's names:
`X-TeamChat-Signature: v0=hex(HMAC-SHA256(secret, "v0:{timestamp}:{body}"))`
with the timestamp in `X-TeamChat-Request-Timestamp`.
"""

import hashlib
import hmac
import json
import logging
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.db.models import F
from django.utils import timezone

from chat import services as chat_services
from chat.errors import ChatError
from teamchat import metrics

from ..models import Delivery
from . import netguard
from .triggers import triggers_suppressed

log = logging.getLogger(__name__)

SIGNATURE_VERSION = "v0"
SIGNATURE_HEADER = "X-TeamChat-Signature"
TIMESTAMP_HEADER = "X-TeamChat-Request-Timestamp"
EVENT_ID_HEADER = "X-TeamChat-Event-Id"
USER_AGENT = "TeamChat-Webhooks/1"
# An answer is read up to this size; a bigger one is delivered but not posted.
ANSWER_MAX_BYTES = 64 * 1024
ERROR_MAX_CHARS = 500


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """`v0=` and the hex HMAC-SHA256, keyed by `secret`, of `v0:{timestamp}:{body}`."""
    base = f"{SIGNATURE_VERSION}:{timestamp}:".encode() + body
    digest = hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    return f"{SIGNATURE_VERSION}={digest}"


def body_of(payload: dict[str, Any]) -> bytes:
    """The bytes POSTed (and signed) for a delivery's payload: compact UTF-8 JSON."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


def client_new() -> httpx.Client:
    """The worker's HTTP client: checked and pinned addresses, no redirects, no proxies from env."""
    timeout = settings.WEBHOOK_TIMEOUT_SECONDS
    # No kept-alive connections: one to an IP verified for one name must not
    # carry a request for another name that resolves to the same IP.
    return httpx.Client(
        transport=netguard.PinnedTransport(
            retries=0, limits=httpx.Limits(max_keepalive_connections=0)
        ),
        follow_redirects=False,
        timeout=httpx.Timeout(timeout),
        trust_env=False,
        headers={"User-Agent": USER_AGENT},
    )


@dataclass(frozen=True)
class Outcome:
    """What one attempt came to."""

    delivered: bool
    status_code: int | None = None
    error: str = ""
    # The answer's {"text"}, to post as the bot's reply.
    reply: str | None = None
    # No point trying again (a refused address, an unusable URL).
    final: bool = False


def deliveries_claim(limit: int) -> list[Delivery]:
    """Take up to `limit` due deliveries for this worker: lease them and count the attempt."""
    now = timezone.now()
    with transaction.atomic():
        due = (
            Delivery.objects.filter(status=Delivery.Status.PENDING, next_attempt_at__lte=now)
            .order_by("next_attempt_at", "id")
            .select_related("webhook", "webhook__bot")
        )
        if connection.vendor == "postgresql":
            due = due.select_for_update(skip_locked=True, of=("self",))
        taken = list(due[:limit])
        if taken:
            lease = now + timedelta(seconds=settings.WEBHOOK_LEASE_SECONDS)
            Delivery.objects.filter(pk__in=[d.pk for d in taken]).update(
                attempts=F("attempts") + 1, next_attempt_at=lease
            )
    for delivery in taken:
        delivery.attempts += 1
    return taken


def _reply_of(response: httpx.Response, answer: bytes) -> str | None:
    if not answer or "json" not in response.headers.get("content-type", "json"):
        return None
    try:
        data = json.loads(answer)
    except ValueError:
        return None
    text = data.get("text") if isinstance(data, dict) else None
    return text if isinstance(text, str) and text.strip() else None


def delivery_send(client: httpx.Client, delivery: Delivery) -> Outcome:
    """POST the delivery once, signed; never raises for what the receiver or network does."""
    webhook = delivery.webhook
    if not webhook.active or not webhook.bot.is_active:
        return Outcome(False, error="The webhook is turned off.", final=True)
    body = body_of(delivery.payload)
    timestamp = int(time.time())
    headers = {
        "Content-Type": "application/json",
        SIGNATURE_HEADER: signature(webhook.secret, timestamp, body),
        TIMESTAMP_HEADER: str(timestamp),
        EVENT_ID_HEADER: str(delivery.event_id),
    }
    deadline = time.monotonic() + 3 * settings.WEBHOOK_TIMEOUT_SECONDS
    try:
        netguard.target_of(webhook.url)
        with client.stream("POST", webhook.url, content=body, headers=headers) as response:
            status = response.status_code
            if 300 <= status < 400:
                where = response.headers.get("location", "")[:200]
                return Outcome(False, status, f"HTTP {status}: redirect to {where!r} not followed.")
            if not 200 <= status < 300:
                return Outcome(False, status, f"HTTP {status} {response.reason_phrase}")
            answer = b""
            for chunk in response.iter_bytes():
                answer += chunk
                if len(answer) > ANSWER_MAX_BYTES:
                    return Outcome(True, status, "The answer was too big to read for a reply.")
                if time.monotonic() > deadline:
                    return Outcome(True, status, "The answer was too slow to read for a reply.")
            return Outcome(True, status, reply=_reply_of(response, answer))
    except netguard.Refused as exc:
        return Outcome(False, error=str(exc), final=not exc.retry)
    except httpx.TimeoutException:
        return Outcome(False, error=f"No answer within {settings.WEBHOOK_TIMEOUT_SECONDS:g} s.")
    except httpx.HTTPError as exc:
        detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        return Outcome(False, error=detail)


def _reply_post(delivery: Delivery, text: str) -> str:
    """Post the receiver's answer as the bot's reply; "" if posted, else why not.

    The nonce comes from the event id: a delivery sent again (after a worker
    died between posting and recording) does not post its reply twice.
    """
    payload = delivery.payload
    room = payload.get("room")
    message = payload.get("message")
    slug = room.get("slug") if isinstance(room, dict) else None
    if not isinstance(slug, str):
        return "The event names no room to reply in."
    thread = message.get("thread") if isinstance(message, dict) else payload.get("thread")
    try:
        with triggers_suppressed():
            chat_services.message_send(
                author=delivery.webhook.bot,
                room=slug,
                body=text,
                nonce=f"webhook-{delivery.event_id.hex}",
                thread=thread if isinstance(thread, int) else None,
            )
    except ChatError as exc:
        return f"Delivered; the reply was not posted: {exc.detail}"
    return ""


def delivery_finish(delivery: Delivery, outcome: Outcome) -> str:
    """Record an attempt: delivered, a retry after the next delay, or failed. Returns the status.

    Only while this worker's lease holds (the attempt count is unchanged):
    a late worker records nothing and posts no reply.
    """
    mine = Delivery.objects.filter(
        pk=delivery.pk, status=Delivery.Status.PENDING, attempts=delivery.attempts
    )
    now = timezone.now()
    if outcome.delivered:
        if not mine.exists():
            return "lost"
        note = _reply_post(delivery, outcome.reply) if outcome.reply else ""
        mine.update(
            status=Delivery.Status.DELIVERED,
            delivered_at=now,
            last_status_code=outcome.status_code,
            last_error=(note or outcome.error)[:ERROR_MAX_CHARS],
        )
        return Delivery.Status.DELIVERED
    delays = settings.WEBHOOK_RETRY_DELAYS
    error = outcome.error[:ERROR_MAX_CHARS]
    if outcome.final or delivery.attempts > len(delays):
        updated = mine.update(
            status=Delivery.Status.FAILED, last_error=error, last_status_code=outcome.status_code
        )
        return Delivery.Status.FAILED if updated else "lost"
    retry_at = now + timedelta(seconds=delays[delivery.attempts - 1])
    updated = mine.update(
        next_attempt_at=retry_at, last_error=error, last_status_code=outcome.status_code
    )
    return Delivery.Status.PENDING if updated else "lost"


def deliveries_prune() -> int:
    """Delete delivered and failed deliveries older than WEBHOOK_DELIVERIES_KEEP_DAYS; how many."""
    cutoff = timezone.now() - timedelta(days=settings.WEBHOOK_DELIVERIES_KEEP_DAYS)
    old = Delivery.objects.filter(
        created__lt=cutoff, status__in=[Delivery.Status.DELIVERED, Delivery.Status.FAILED]
    )
    deleted, _ = old.delete()
    return deleted


# What an attempt's status is counted as.
_ATTEMPT_RESULTS: dict[str, str] = {
    Delivery.Status.DELIVERED: "delivered",
    Delivery.Status.PENDING: "retry",
    Delivery.Status.FAILED: "failed",
}


def deliveries_process(client: httpx.Client, limit: int = 20) -> int:
    """Take a batch of due deliveries and attempt each; returns how many were taken."""
    taken = deliveries_claim(limit)
    for delivery in taken:
        try:
            outcome = delivery_send(client, delivery)
            status = delivery_finish(delivery, outcome)
        except DatabaseError:
            raise  # the worker reconnects; the lease brings the delivery back
        except Exception as exc:
            # A bug must not stop every other delivery: this one counts a failed attempt.
            log.exception("webhook delivery %s failed in the worker", delivery.event_id)
            outcome = Outcome(False, error=f"The worker failed: {type(exc).__name__}")
            status = delivery_finish(delivery, outcome)
        metrics.WEBHOOK_ATTEMPTS.labels(_ATTEMPT_RESULTS.get(status, "lost")).inc()
        log.info(
            "webhook delivery %s attempt %d: %s%s",
            delivery.event_id,
            delivery.attempts,
            status,
            f" ({outcome.error})" if outcome.error else "",
        )
    return len(taken)
