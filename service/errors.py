"""Typed API errors and the single JSON error shape every response uses.

``{"error": {"code": "invalid_mixture", "message": "...", "field": "mixture.pile_cc"}}`` — the ``field``
is a dotted path into the request body (list items as ``runs[3]``) so a client can point at the culprit.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from mixing.errors import InfeasibleConstraintsError, MixingError, NotEnoughDataError

log = logging.getLogger("mixopt.errors")


class ApiError(Exception):
    """An error with an HTTP status, a stable machine-readable code and the offending field."""

    status_code = 400
    code = "bad_request"

    def __init__(self, message: str, field: str | None = None, code: str | None = None,
                 details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.details = details
        if code is not None:
            self.code = code

    def body(self) -> dict[str, Any]:
        err: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.field is not None:
            err["field"] = self.field
        if self.details is not None:
            err["details"] = self.details
        return {"error": err}


class InvalidInput(ApiError):
    status_code = 422
    code = "invalid_input"


class NotFound(ApiError):
    status_code = 404
    code = "not_found"


class Conflict(ApiError):
    status_code = 409
    code = "conflict"


class Unavailable(ApiError):
    status_code = 503
    code = "unavailable"


def field_path(loc: tuple[Any, ...] | list[Any]) -> str:
    """``("body", "runs", 3, "mixture")`` -> ``"runs[3].mixture"`` (the leading "body" is implied)."""
    parts = list(loc)
    if parts and parts[0] == "body":
        parts = parts[1:]
    out = ""
    for p in parts:
        if isinstance(p, int):
            out += f"[{p}]"
        else:
            out += ("." if out else "") + str(p)
    return out or "body"


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        details = [
            {"field": field_path(e.get("loc", ())), "message": e.get("msg", ""), "type": e.get("type", "")}
            for e in errors
        ]
        first = details[0] if details else {"field": "body", "message": "invalid request"}
        code = "malformed_json" if errors and errors[0].get("type") == "json_invalid" else "invalid_input"
        body = {"error": {"code": code, "message": f"{first['field']}: {first['message']}",
                          "field": first["field"], "details": details}}
        return JSONResponse(body, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return JSONResponse({"error": {"code": code, "message": str(exc.detail)}}, status_code=exc.status_code)

    @app.exception_handler(InfeasibleConstraintsError)
    async def _infeasible(_: Request, exc: InfeasibleConstraintsError) -> JSONResponse:
        return JSONResponse(InvalidInput(str(exc), field="domains", code="infeasible_constraints").body(), 422)

    @app.exception_handler(NotEnoughDataError)
    async def _not_enough(_: Request, exc: NotEnoughDataError) -> JSONResponse:
        return JSONResponse(Conflict(str(exc), code="not_enough_data").body(), 409)

    @app.exception_handler(MixingError)
    async def _mixing(_: Request, exc: MixingError) -> JSONResponse:
        log.warning("algorithm error", extra={"error": str(exc), "type": type(exc).__name__})
        return JSONResponse(Conflict(str(exc), code="algorithm_error").body(), 409)

    @app.exception_handler(OperationalError)
    async def _db_down(_: Request, exc: OperationalError) -> JSONResponse:
        log.error("database unavailable", extra={"error": str(exc.orig)[:300]})
        return JSONResponse(Unavailable("database unavailable, retry later", code="database_unavailable").body(),
                            503, headers={"Retry-After": "1"})

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", extra={"path": request.url.path})
        return JSONResponse({"error": {"code": "internal_error", "message": "internal server error"}}, 500)
