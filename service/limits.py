"""Request admission: a body-size limit and a per-caller rate limit, as plain ASGI middleware.

Both sit in front of every route, including the run-report hot path, so they are raw ASGI wrappers with
no per-request allocation beyond a closure, and they answer rejections themselves in the API's error shape.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from fastapi import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.errors import error_body
from service.middleware import send_json

#: Probes and scrapes are never throttled: a throttled liveness probe would restart a healthy API.
UNLIMITED_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` when a streamed (chunked) body passes the limit.

    It is an ``HTTPException`` so FastAPI's body reader re-raises it as is (anything else becomes a 400
    "error parsing the body"), and the app's HTTP error handler answers it as 413 ``payload_too_large``.
    """

    def __init__(self, limit: int) -> None:
        super().__init__(status_code=413, detail=_too_large_message(limit))


def _too_large_message(limit: int) -> str:
    return f"the request body is larger than the limit of {limit} bytes (MIXOPT_MAX_BODY_BYTES)"


class BodySizeLimitMiddleware:
    """413 for bodies over ``max_bytes``: by ``Content-Length`` before reading, else by counting chunks."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await self._reject(send)
            return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            # Only reached when no handler answered it (a route that reads the body itself).
            if started:
                raise
            await self._reject(send)

    async def _reject(self, send: Send) -> None:
        await send_json(send, 413, error_body("payload_too_large", _too_large_message(self.max_bytes)),
                        headers=[(b"connection", b"close")])


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers") or ():
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # the server rejects malformed lengths; counting still applies
    return None


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
        now = self.clock()
        bucket = self.buckets.get(key)
        if bucket is None:
            if len(self.buckets) >= self.max_keys:
                self._evict(now)
            bucket = self.buckets[key] = _Bucket(self.burst, now)
        else:
            bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.updated) * self.rate)
            bucket.updated = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        return (1.0 - bucket.tokens) / self.rate

    def _evict(self, now: float) -> None:
        full_after = self.burst / self.rate
        kept = {k: b for k, b in self.buckets.items() if now - b.updated < full_after}
        if len(kept) >= self.max_keys:
            # Every caller is active (or this is a flood of fresh keys): forget the older half, which only
            # ever gives those callers a full bucket back, never a smaller one.
            kept = dict(list(kept.items())[len(kept) // 2:])
        self.buckets = kept


def caller_key(scope: Scope) -> str:
    """SHA-256 of the ``Authorization`` header when there is one (never the token itself), else the client IP.

    Keying on the raw header needs no token lookup, so throttling happens before any database work; an
    invalid token is throttled like a valid one.
    """
    for name, value in scope.get("headers") or ():
        if name == b"authorization":
            return "auth:" + hashlib.sha256(value).hexdigest()
    client = scope.get("client")
    return "ip:" + (client[0] if client else "unknown")


class RateLimitMiddleware:
    """429 with ``Retry-After`` once a caller's token bucket is empty."""

    def __init__(self, app: ASGIApp, rate_per_s: float, burst: int) -> None:
        self.app = app
        self.buckets = TokenBuckets(rate_per_s, burst)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") in UNLIMITED_PATHS:
            await self.app(scope, receive, send)
            return
        wait_s = self.buckets.take(caller_key(scope))
        if wait_s == 0.0:
            await self.app(scope, receive, send)
            return
        retry_after = max(1, math.ceil(wait_s))
        limit = f"limit {self.buckets.rate:g}/s, burst {self.buckets.burst:g} per caller"
        body = error_body("rate_limited", f"too many requests; retry after {retry_after} s ({limit})",
                          retry_after_s=retry_after)
        await send_json(send, 429, body, headers=[(b"retry-after", str(retry_after).encode())])
