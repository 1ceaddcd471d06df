"""Token buckets: how often a caller may do something, and the 429 that says when to come back."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from starlette.types import Send

from service.api.errors import error_body
from service.api.middleware import send_json
from service.errors import ErrorCode


@dataclass
class _Bucket:
    tokens: float
    updated: float


class TokenBuckets:
    """One token bucket per caller key: ``rate`` tokens a second, at most ``burst`` stored.

    In-process state: with N API processes a caller may make N times the rate in total. Touched only from
    the event loop thread, so it needs no lock. Idle callers' buckets (refilled to full) are dropped when
    the table grows past ``max_keys``, so memory stays bounded whatever the number of distinct callers.
    """

    def __init__(self, rate: float, burst: int, max_keys: int = 100_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.max_keys = max_keys
        self.clock = clock
        self.buckets: dict[str, _Bucket] = {}

    def take(self, key: str) -> float:
        """Spend one token for ``key``: 0.0 when allowed, else the seconds until a token is available."""
        bucket = self._refilled(key)
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        return (1.0 - bucket.tokens) / self.rate

    def wait(self, key: str) -> float:
        """The seconds until ``key`` could spend a token (0.0: now), spending none."""
        bucket = self.buckets.get(key)
        if bucket is None:
            return 0.0
        tokens = min(self.burst, bucket.tokens + (self.clock() - bucket.updated) * self.rate)
        return 0.0 if tokens >= 1.0 else (1.0 - tokens) / self.rate

    def _refilled(self, key: str) -> _Bucket:
        now = self.clock()
        bucket = self.buckets.get(key)
        if bucket is None:
            if len(self.buckets) >= self.max_keys:
                self._evict(now)
            bucket = self.buckets[key] = _Bucket(self.burst, now)
        else:
            bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.updated) * self.rate)
            bucket.updated = now
        return bucket

    def _evict(self, now: float) -> None:
        full_after = self.burst / self.rate
        kept = {k: b for k, b in self.buckets.items() if now - b.updated < full_after}
        if len(kept) >= self.max_keys:
            # Every caller is active (or this is a flood of fresh keys): forget the older half, which only
            # ever gives those callers a full bucket back, never a smaller one.
            kept = dict(list(kept.items())[len(kept) // 2:])
        self.buckets = kept


async def send_rate_limited(send: Send, wait_s: float, limit: str) -> None:
    """429 ``rate_limited`` with ``Retry-After`` (whole seconds, at least 1) and what the limit is."""
    retry_after = max(1, math.ceil(wait_s))
    body = error_body(ErrorCode.rate_limited, f"too many requests; retry after {retry_after} s ({limit})",
                      retry_after_s=retry_after)
    await send_json(send, 429, body, headers=[(b"retry-after", str(retry_after).encode())])
