"""Request admission: a body-size limit and a per-caller rate limit, as plain ASGI middleware.

Both sit in front of every route, including the run-report hot path, so they are raw ASGI wrappers with
no per-request allocation beyond a closure, and they answer rejections themselves in the API's error shape.
"""

from __future__ import annotations

from fastapi import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.api.auth import caller, client_ip
from service.api.errors import error_body
from service.api.middleware import send_json
from service.api.throttle import TokenBuckets, send_rate_limited
from service.errors import ErrorCode

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
    """413 for bodies over the limit: by ``Content-Length`` before reading, else by counting chunks.

    The limit is ``max_bytes`` for a request with a caller (see :func:`service.api.auth.caller`), else
    ``anonymous_max_bytes``.
    """

    def __init__(self, app: ASGIApp, max_bytes: int, anonymous_max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.anonymous_max_bytes = anonymous_max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # Only an authenticated caller (or anyone, on an API running open) may send a large body; no public
        # route takes one, so a request with no caller is held to a few KiB.
        limit = self.max_bytes if caller(scope) is not None else self.anonymous_max_bytes
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await self._reject(send, limit)
            return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
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
            await self._reject(send, limit)

    @staticmethod
    async def _reject(send: Send, limit: int) -> None:
        await send_json(send, 413, error_body(ErrorCode.payload_too_large, _too_large_message(limit)),
                        headers=[(b"connection", b"close")])


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers") or ():
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # the server rejects malformed lengths; counting still applies
    return None


class RateLimitMiddleware:
    """429 with ``Retry-After`` once a caller's token bucket is empty.

    Sits inside :class:`~service.api.auth.AuthenticationMiddleware`, so a protected request is keyed on the
    authenticated token's id: rewriting the ``Authorization`` header (case, spaces) does not make a new
    caller. Other requests, and every request of an API running open, are keyed on the client address.
    """

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
        limit = f"limit {self.buckets.rate:g}/s, burst {self.buckets.burst:g} per caller"
        await send_rate_limited(send, wait_s, limit)


def caller_key(scope: Scope) -> str:
    """The authenticated token's id when there is one, else the client address."""
    principal = caller(scope)
    if principal is not None and principal.token_id is not None:
        return "token:" + principal.token_id
    return "ip:" + client_ip(scope)
