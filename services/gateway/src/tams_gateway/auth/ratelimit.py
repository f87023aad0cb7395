"""Per-principal rate limiting: a token bucket per caller, answered 429 with `Retry-After`.

Each authenticated principal gets `rate` requests a second on average with bursts of
`burst`; failed authentications are counted against the client's address instead, which slows
password guessing. Buckets live in this gateway instance's memory (several gateway replicas
each allow the rate), and the least recently used are forgotten beyond `MAX_BUCKETS`.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from dataclasses import dataclass

MAX_BUCKETS = 100_000


@dataclass
class Bucket:
    tokens: float
    updated: float


class RateLimiter:
    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = max(1, burst)
        self._buckets: OrderedDict[str, Bucket] = OrderedDict()

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def wait(self, key: str, now: float | None = None) -> float:
        """The seconds until `key`'s bucket has a token (0: it has one now), spending none."""
        if not self.enabled:
            return 0.0
        bucket = self._buckets.get(key)
        if bucket is None:
            return 0.0
        tokens = self._refilled(bucket, time.monotonic() if now is None else now)
        return 0.0 if tokens >= 1 else (1 - tokens) / self.rate

    def take(self, key: str, now: float | None = None) -> float:
        """Spend one token of `key`'s bucket: 0 if allowed, else the seconds to wait."""
        if not self.enabled:
            return 0.0
        now = time.monotonic() if now is None else now
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = Bucket(tokens=float(self.burst), updated=now)
            self._buckets[key] = bucket
            while len(self._buckets) > MAX_BUCKETS:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
            bucket.tokens = self._refilled(bucket, now)
            bucket.updated = now
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return 0.0
        return (1 - bucket.tokens) / self.rate

    def _refilled(self, bucket: Bucket, now: float) -> float:
        """The bucket's tokens at `now`: what it had, plus what the rate added since."""
        return min(self.burst, bucket.tokens + (now - bucket.updated) * self.rate)


def retry_after(wait_s: float) -> str:
    """`Retry-After` is whole seconds; never 0, or a client would retry at once."""
    return str(max(1, math.ceil(wait_s)))
