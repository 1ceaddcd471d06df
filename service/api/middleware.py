"""Request id, server timing and the last-resort 500 as a plain ASGI middleware.

A raw ASGI wrapper costs a fraction of Starlette's ``BaseHTTPMiddleware`` per request, which matters on
the hot paths (run reports, online observations) that orchestrators call hundreds of times a second.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Iterable
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.api.errors import error_body
from service.errors import ErrorCode
from service.logs import request_id_var

log = logging.getLogger("mixopt.api")


async def send_json(send: Send, status: int, body: dict[str, Any],
                    headers: Iterable[tuple[bytes, bytes]] = ()) -> None:
    """Answer from inside a raw ASGI middleware, without building a Starlette response object."""
    payload = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(payload)).encode()), *headers]})
    await send({"type": "http.response.body", "body": payload})


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
        except Exception:
            # The traceback goes to the log with the request id; the client gets the id and nothing else.
            log.exception("unhandled error", extra={"method": scope.get("method"), "path": scope.get("path")})
            if "code" in status:
                raise  # the response already started; the server can only drop the connection
            await send_json(send_with_headers, 500, error_body(ErrorCode.internal_error, "internal server error",
                                                               request_id=rid))
        finally:
            if log.isEnabledFor(logging.DEBUG):
                log.debug("request", extra={"method": scope.get("method"), "path": scope.get("path"),
                                            "status": status.get("code"),
                                            "ms": round(1000 * (time.perf_counter() - t0), 2)})
            request_id_var.reset(token)
