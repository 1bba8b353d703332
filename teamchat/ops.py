"""Operations endpoints (no login): liveness, readiness, and this process's Prometheus metrics."""

import asyncio
import ipaddress
import time
import uuid
from typing import Any

from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import connection
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.utils.crypto import constant_time_compare
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4, generate_latest

from . import drain

# How long readiness waits for each service before calling it failed.
READY_TIMEOUT_SECONDS = 2.0

# Headers a reverse proxy adds: a request carrying one came from elsewhere,
# even though the proxy itself connects from loopback.
_PROXIED = ("HTTP_X_FORWARDED_FOR", "HTTP_X_REAL_IP", "HTTP_FORWARDED")


def _may_read_metrics(request: HttpRequest) -> bool:
    token = settings.METRICS_TOKEN
    given = request.headers.get("Authorization", "")
    if token and constant_time_compare(given, f"Bearer {token}"):
        return True
    try:
        loopback = ipaddress.ip_address(request.META.get("REMOTE_ADDR", "")).is_loopback
    except ValueError:
        return False
    return loopback and not any(header in request.META for header in _PROXIED)


@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus text format, to loopback clients or with `Bearer $METRICS_TOKEN`; else 404."""
    if not _may_read_metrics(request):
        raise Http404
    return HttpResponse(generate_latest(), content_type=CONTENT_TYPE_PLAIN_0_0_4)


@never_cache
@require_GET
def healthz(request: HttpRequest) -> HttpResponse:
    """Liveness: 200 whenever the process serves requests; touches neither database nor Redis."""
    return JsonResponse({"ok": True})


def _database_ping() -> dict[str, Any]:
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    result: dict[str, Any] = {"ok": True, "ms": round((time.perf_counter() - started) * 1000, 2)}
    pool = getattr(connection, "pool", None)  # Django's psycopg pool, on PostgreSQL
    if pool is not None:
        stats = pool.get_stats()
        result["pool"] = {
            "size": stats.get("pool_size", 0),
            "available": stats.get("pool_available", 0),
            "waiting": stats.get("requests_waiting", 0),
            "max": pool.max_size,
        }
    return result


async def _layer_round_trip() -> dict[str, Any]:
    """A message sent to a channel of its own and received back.

    Not a process-local ("specific.") channel: those share one Redis key per
    process, which only the fan-out receives from (chat.realtime.layerreceive).
    """
    layer = get_channel_layer()
    if layer is None:
        raise RuntimeError("no channel layer")
    started = time.perf_counter()
    channel = f"readyz.{uuid.uuid4().hex}"
    await layer.send(channel, {"type": "readyz.ping"})
    await layer.receive(channel)
    return {"ok": True, "ms": round((time.perf_counter() - started) * 1000, 2)}


async def _check(what: Any) -> dict[str, Any]:
    try:
        return await asyncio.wait_for(what, READY_TIMEOUT_SECONDS)
    except TimeoutError:
        return {"ok": False, "error": f"no answer within {READY_TIMEOUT_SECONDS:g} s"}
    except Exception as exc:
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:300]}


@never_cache
@require_GET
async def readyz(request: HttpRequest) -> HttpResponse:
    """Readiness: 200 when the database and the channel layer both answer, else 503 naming which.

    Also 503 while the process drains on SIGTERM. The JSON carries each
    check's time, and the database pool's state.
    """
    database, layer = await asyncio.gather(
        _check(database_sync_to_async(_database_ping)()), _check(_layer_round_trip())
    )
    failed = [name for name, check in (("database", database), ("channel_layer", layer))
              if not check["ok"]]  # fmt: skip
    if drain.draining():
        failed.append("draining")
    body = {"ready": not failed, "failed": failed, "database": database, "channel_layer": layer}
    return JsonResponse(body, status=200 if not failed else 503)
