"""The project's own Redis clients (presence, write limits), plain or behind Sentinel.

The channel layer and the cache are configured in settings; everything else
that talks to Redis gets its client here, so a Sentinel setup
(`REDIS_SENTINELS`) reaches every user and each follows a failover: a
connection to the old primary fails, and the next one asks the sentinels
where the primary is now.
"""

from typing import Any

import redis
import redis.asyncio
import redis.asyncio.sentinel
import redis.sentinel
from django.conf import settings
from redis.connection import parse_url

from chat.realtime.sendnow import RedisConnection, SentinelRedisConnection


def _options() -> dict[str, Any]:
    parsed = parse_url(settings.REDIS_URL)
    return {"db": parsed.get("db", 0), "password": parsed.get("password")}


def _sentinel_kwargs() -> dict[str, Any]:
    return {"password": settings.REDIS_SENTINEL_PASSWORD or None}


def sync_client(**options: Any) -> redis.Redis:
    """A client for synchronous code; `options` go to its connections (timeouts, retries)."""
    if settings.REDIS_SENTINELS:
        sentinel = redis.sentinel.Sentinel(
            settings.REDIS_SENTINELS, sentinel_kwargs=_sentinel_kwargs()
        )
        return sentinel.master_for(settings.REDIS_SENTINEL_MASTER, **_options(), **options)
    return redis.Redis.from_url(settings.REDIS_URL, **options)


def async_client(*, max_connections: int | None = None, wait: float | None = None) -> Any:
    """A client for the event loop; with `max_connections`, a pool that waits `wait` s for one.

    Behind Sentinel the pool does not wait: past its size a call fails, so
    the size given there is a bound the callers keep by batching. Commands
    are sent at once with the GIL kept (`chat.realtime.sendnow`).
    """
    if settings.REDIS_SENTINELS:
        sentinel = redis.asyncio.sentinel.Sentinel(
            settings.REDIS_SENTINELS, sentinel_kwargs=_sentinel_kwargs()
        )
        options = _options()
        options["connection_class"] = SentinelRedisConnection
        if max_connections:
            options["max_connections"] = max_connections
        return sentinel.master_for(settings.REDIS_SENTINEL_MASTER, **options)
    if max_connections:
        pool = redis.asyncio.BlockingConnectionPool.from_url(
            settings.REDIS_URL,
            max_connections=max_connections,
            timeout=wait,
            connection_class=RedisConnection,
        )
        return redis.asyncio.Redis(connection_pool=pool)
    return redis.asyncio.Redis.from_url(settings.REDIS_URL, connection_class=RedisConnection)
