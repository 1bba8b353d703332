"""Per-user token buckets: in process memory, or shared by every process through Redis."""

import asyncio
import logging
import time
import weakref
from dataclasses import dataclass, field
from typing import Any

import redis
import redis.asyncio
from django.conf import settings

from teamchat import redisconn

log = logging.getLogger(__name__)


@dataclass
class _Bucket:
    tokens: float
    updated: float = field(default_factory=time.monotonic)


class SendRateLimiter:
    """Allows `rate` sends per second per user with bursts of up to `burst`."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = float(burst)
        self._buckets: dict[int, _Bucket] = {}

    def allow(self, user_id: int) -> bool:
        now = time.monotonic()
        bucket = self._buckets.get(user_id)
        if bucket is None:
            if len(self._buckets) > 10_000:
                self._forget_full(now)
            bucket = self._buckets[user_id] = _Bucket(self.burst, now)
        else:
            bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.updated) * self.rate)
            bucket.updated = now
        if bucket.tokens < 1.0:
            return False
        bucket.tokens -= 1.0
        return True

    def reset(self) -> None:
        """Every bucket full again (tests)."""
        self._buckets.clear()

    def _forget_full(self, now: float) -> None:
        # A bucket that has refilled completely is the same as no bucket.
        refill = self.burst / self.rate if self.rate > 0 else float("inf")
        for user_id, bucket in list(self._buckets.items()):
            if now - bucket.updated >= refill:
                del self._buckets[user_id]


# Takes up to ARGV[3] tokens from a bucket (rate ARGV[1]/s, burst ARGV[2]) kept
# in a hash, on Redis's own clock; returns how many it took.
_TAKE = """
local now = redis.call('TIME')
now = tonumber(now[1]) + tonumber(now[2]) / 1000000
local rate, burst, want = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local found = redis.call('HMGET', KEYS[1], 't', 'ts')
local tokens, ts = tonumber(found[1]), tonumber(found[2])
if tokens == nil then tokens, ts = burst, now end
tokens = math.min(burst, tokens + math.max(0, now - ts) * rate)
local grant = math.min(want, math.floor(tokens))
redis.call('HSET', KEYS[1], 't', tokens - grant, 'ts', now)
redis.call('EXPIRE', KEYS[1], math.ceil(burst / math.max(rate, 0.001)) + 60)
return grant
"""


class SharedRateLimiter:
    """Per-user token buckets shared by every server process, through Redis.

    One bucket per user for all their writes, whichever process or path (the
    socket or the HTTP API) they come through. A process takes tokens from
    Redis a few at a time (a lease) and spends them from memory, so the hot
    path makes a round trip once per lease, not once per frame; a user
    refused is not asked about again until a token can have come back.
    Without Redis (one process) it is a local token bucket.
    """

    def __init__(self, rate: float, burst: int, name: str = "writes") -> None:
        self.rate = rate
        self.burst = float(burst)
        self.name = name
        # user id -> tokens leased to this process and not yet spent
        self._buckets: dict[int, float] = {}
        # user id -> when Redis last refused (monotonic)
        self._refused: dict[int, float] = {}
        self._local = SendRateLimiter(rate, burst)
        self._sync: Any = None
        # One client per event loop (a test session may run several).
        self._async: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()

    def reset(self) -> None:
        """Forget this process's leases and refusals (tests; Redis keeps its buckets)."""
        self._buckets.clear()
        self._refused.clear()
        self._local.reset()

    @property
    def _lease(self) -> int:
        return int(max(1, min(50, self.burst // 4)))

    def _key(self, user_id: int) -> str:
        return f"{settings.CHANNEL_LAYER_PREFIX}:limit:{self.name}:{user_id}"

    def _spend(self, user_id: int) -> bool | None:
        """True or False when memory can answer; None when Redis must be asked."""
        left = self._buckets.get(user_id, 0)
        if left >= 1:
            self._buckets[user_id] = left - 1
            return True
        refused = self._refused.get(user_id)
        if refused is not None and time.monotonic() - refused < 1.0 / max(self.rate, 1e-9):
            return False
        return None

    def _granted(self, user_id: int, grant: int) -> bool:
        if grant < 1:
            self._buckets.pop(user_id, None)
            self._refused[user_id] = time.monotonic()
            if len(self._refused) > 10_000:
                self._refused.clear()
            return False
        self._refused.pop(user_id, None)
        self._buckets[user_id] = grant - 1
        if len(self._buckets) > 10_000:
            self._buckets.clear()  # leases are small; giving a few back is harmless
        return True

    def allow(self, user_id: int) -> bool:
        """From synchronous code (HTTP views): may this user write now?"""
        if not settings.REDIS_URL:
            self._local.rate, self._local.burst = self.rate, self.burst
            return self._local.allow(user_id)
        known = self._spend(user_id)
        if known is not None:
            return known
        if self._sync is None:
            self._sync = redisconn.sync_client().register_script(_TAKE)
        try:
            grant = int(self._sync(keys=[self._key(user_id)], args=self._args()))
        except redis.RedisError:
            log.warning("could not reach Redis for the write limit; counting in this process")
            self._local.rate, self._local.burst = self.rate, self.burst
            return self._local.allow(user_id)
        return self._granted(user_id, grant)

    async def aallow(self, user_id: int) -> bool:
        """From the event loop (sockets): may this user write now?"""
        if not settings.REDIS_URL:
            self._local.rate, self._local.burst = self.rate, self.burst
            return self._local.allow(user_id)
        known = self._spend(user_id)
        if known is not None:
            return known
        loop = asyncio.get_running_loop()
        script = self._async.get(loop)
        if script is None:
            client = redisconn.async_client()
            script = self._async[loop] = client.register_script(_TAKE)
        try:
            grant = int(await script(keys=[self._key(user_id)], args=self._args()))
        except redis.RedisError:
            log.warning("could not reach Redis for the write limit; counting in this process")
            self._local.rate, self._local.burst = self.rate, self.burst
            return self._local.allow(user_id)
        return self._granted(user_id, grant)

    def _args(self) -> list[float]:
        return [self.rate, self.burst, self._lease]


# Every write of a user, socket and HTTP API alike, in every process.
writes = SharedRateLimiter(settings.CHAT_RATE_LIMIT, settings.CHAT_RATE_BURST)
# Searches (the page and the API), in every process: each reads indexes of
# every message the user may read.
searches = SharedRateLimiter(
    settings.CHAT_SEARCH_RATE_LIMIT, settings.CHAT_SEARCH_RATE_BURST, name="search"
)


def hourly_allowed(what: str, user_id: int, limit: int) -> bool:
    """Count one `what` (room, invite, group DM) for the user; False past `limit` this hour.

    In the cache (Redis in production, so across processes): one round trip,
    for actions a person does a few times a day.
    """
    from django.core.cache import cache

    key = f"hourly:{what}:{user_id}:{int(time.time() // 3600)}"
    cache.add(key, 0, timeout=3700)
    try:
        return cache.incr(key) <= limit
    except ValueError:  # expired between the two calls: a new hour
        cache.set(key, 1, timeout=3700)
        return True


# Files uploaded, in every process: each is stored, typed and maybe thumbnailed.
uploads = SharedRateLimiter(
    settings.UPLOADS_RATE_LIMIT, settings.UPLOADS_RATE_BURST, name="uploads"
)
