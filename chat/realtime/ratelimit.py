"""Per-user token buckets for socket sends, kept in process memory."""

import time
from dataclasses import dataclass, field


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

    def _forget_full(self, now: float) -> None:
        # A bucket that has refilled completely is the same as no bucket.
        refill = self.burst / self.rate if self.rate > 0 else float("inf")
        for user_id, bucket in list(self._buckets.items()):
            if now - bucket.updated >= refill:
                del self._buckets[user_id]
