"""Request id and server timing as a plain ASGI middleware.

A raw ASGI wrapper costs a fraction of Starlette's ``BaseHTTPMiddleware`` per request, which matters on
the hot paths (run reports, online observations) that orchestrators call hundreds of times a second.
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.logs import request_id_var

log = logging.getLogger("mixopt.api")


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        rid = headers.get(b"x-request-id", b"").decode("latin-1")[:64] or uuid.uuid4().hex[:16]
        token = request_id_var.set(rid)
        t0 = time.perf_counter()
        status: dict[str, Any] = {}

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                elapsed_ms = 1000 * (time.perf_counter() - t0)
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", rid.encode("latin-1")),
                                      (b"server-timing", f"app;dur={elapsed_ms:.3f}".encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        finally:
            if log.isEnabledFor(logging.DEBUG):
                log.debug("request", extra={"method": scope.get("method"), "path": scope.get("path"),
                                            "status": status.get("code"),
                                            "ms": round(1000 * (time.perf_counter() - t0), 2)})
            request_id_var.reset(token)
