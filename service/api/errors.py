"""The one JSON error shape every answer uses, and the one place errors become HTTP answers.

``{"error": {"code": "invalid_mixture", "message": "...", "field": "mixture.pile_cc"}}`` — the ``field``
is a dotted path into the request body (list items as ``runs[3]``) so a client can point at the culprit.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import DataError, DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from mixing.errors import (
    InfeasibleConstraintsError,
    MixingError,
    NoFeasibleMixtureError,
    NotEnoughDataError,
    UnsupportedFidelityError,
)
from service.errors import (
    ApiError,
    Conflict,
    ErrorCode,
    InvalidInput,
    StorageFull,
    Unavailable,
    is_storage_full,
)
from service.store.errors import InvalidRecord, RecordConflict, RecordNotFound, StoreError

log = logging.getLogger("mixopt.errors")


class ErrorInfo(BaseModel):
    """What went wrong, for programs (``code``, ``field``) and for people (``message``)."""

    model_config = ConfigDict(extra="forbid")

    code: str = Field(description="stable and machine-readable: invalid_mixture, duplicate_name, "
                                  "not_enough_data, unauthenticated, rate_limited, database_unavailable, …")
    message: str = Field(description="what went wrong and how to fix it, for people")
    field: str | None = Field(description="dotted path into the request (mixture.pile_cc, runs[3].metrics) of "
                                          "the value to blame; null when no single field is")
    details: Any = Field(default=None, description="more about the error where there is more: every invalid "
                                                   "field of a 422, the scope a 403 needed")
    request_id: str | None = Field(default=None, description="on a 500: the id that finds it in the logs")
    retry_after_s: int | None = Field(default=None, description="on a 429: seconds to wait, as Retry-After")


class ErrorResponse(BaseModel):
    """The one shape of every error answer: ``{"error": {"code", "message", "field", ...}}``."""

    model_config = ConfigDict(extra="forbid")

    error: ErrorInfo


def api_error_body(exc: ApiError) -> dict[str, Any]:
    return error_body(exc.code, exc.message, exc.field, details=exc.details)


def answer(exc: ApiError, headers: dict[str, str] | None = None) -> JSONResponse:
    """The HTTP answer to ``exc``: its status, the error body and its headers (``WWW-Authenticate``)."""
    return JSONResponse(api_error_body(exc), status_code=exc.status_code, headers=headers or exc.headers)


#: The HTTP status of each refusal of the store (a subclass answers as the base it derives from).
STORE_STATUS: dict[type[StoreError], int] = {RecordNotFound: 404, RecordConflict: 409, InvalidRecord: 422}

#: Error codes of HTTP errors raised by the framework or by the request-limit middleware.
HTTP_ERROR_CODES = {400: ErrorCode.malformed_body, 404: ErrorCode.not_found, 405: ErrorCode.method_not_allowed,
                    413: ErrorCode.payload_too_large, 429: ErrorCode.rate_limited}


def error_body(code: str, message: str, field: str | None = None, *, details: Any = None,
               request_id: str | None = None, retry_after_s: int | None = None) -> dict[str, Any]:
    """An :class:`ErrorResponse` as JSON-ready data: ``field`` always present (null when no single field is
    to blame), the optional members only when set."""
    optional = {"details": details, "request_id": request_id, "retry_after_s": retry_after_s}
    info = ErrorInfo(code=code, message=message, field=field, **{k: v for k, v in optional.items() if v is not None})
    return ErrorResponse(error=info).model_dump(exclude_unset=True)


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


def install_error_handlers(app: FastAPI, authorize: Callable[[Request], Awaitable[Any]] | None = None) -> None:
    """Error responses for every exception type the app raises.

    ``authorize`` runs before a request-validation answer: FastAPI parses and validates the body before
    it resolves dependencies, so without it a caller whose token lacks the scope would learn from a 422
    what the body should look like instead of getting the 403 every other request of theirs gets (the 401
    of a caller with no valid token comes earlier, before the body is read).
    """
    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return answer(exc)

    @app.exception_handler(StoreError)
    async def _store_error(_: Request, exc: StoreError) -> JSONResponse:
        status = next(code for kind, code in STORE_STATUS.items() if isinstance(exc, kind))
        return JSONResponse(error_body(exc.code, exc.message, exc.field), status_code=status)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        if authorize is not None:
            try:
                await authorize(request)
            except ApiError as denied:
                return answer(denied)
        errors = exc.errors()
        details = [
            {"field": field_path(e.get("loc", ())), "message": e.get("msg", ""), "type": e.get("type", "")}
            for e in errors
        ]
        first = details[0] if details else {"field": "body", "message": "invalid request"}
        code = ErrorCode.invalid_input
        if errors and errors[0].get("type") == "json_invalid":
            # The location of a JSON syntax error is a character offset, not a path into the body.
            code = ErrorCode.malformed_json
            first = {"field": "body", "message": f"{errors[0].get('ctx', {}).get('error', 'invalid JSON')} "
                                                 f"at character {errors[0].get('loc', ('body', 0))[-1]}"}
            details = [{**first, "type": "json_invalid"}]
        body = error_body(code, f"{first['field']}: {first['message']}", first["field"], details=details)
        return JSONResponse(body, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = HTTP_ERROR_CODES.get(exc.status_code, ErrorCode.http_error)
        return JSONResponse(error_body(code, str(exc.detail)), status_code=exc.status_code,
                            headers=exc.headers)

    @app.exception_handler(InfeasibleConstraintsError)
    async def _infeasible(_: Request, exc: InfeasibleConstraintsError) -> JSONResponse:
        return answer(InvalidInput(str(exc), field="domains", code=ErrorCode.infeasible_constraints))

    @app.exception_handler(UnsupportedFidelityError)
    async def _fidelity(_: Request, exc: UnsupportedFidelityError) -> JSONResponse:
        return answer(InvalidInput(str(exc), field="fidelity", code=ErrorCode.invalid_fidelity))

    @app.exception_handler(NotEnoughDataError)
    async def _not_enough(_: Request, exc: NotEnoughDataError) -> JSONResponse:
        return answer(Conflict(str(exc), code=ErrorCode.not_enough_data))

    @app.exception_handler(NoFeasibleMixtureError)
    async def _no_feasible(_: Request, exc: NoFeasibleMixtureError) -> JSONResponse:
        return answer(Conflict(str(exc), field="objective.constraints", code=ErrorCode.no_feasible_mixture,
                               details={"best_probability": exc.best_probability,
                                        "feasibility_probability": exc.threshold}))

    @app.exception_handler(MixingError)
    async def _mixing(_: Request, exc: MixingError) -> JSONResponse:
        log.warning("algorithm error", extra={"error": str(exc), "type": type(exc).__name__})
        return answer(Conflict(str(exc), code=ErrorCode.algorithm_error))

    async def _db_down(_: Request, exc: Exception) -> JSONResponse:
        """Lost connection, server restarting, pool exhausted, deadlock victim: retryable, so 503."""
        if isinstance(exc, DBAPIError) and is_storage_full(exc):
            log.error("database storage full", extra={"error": str(exc.orig)[:300]})
            return answer(StorageFull("the database is out of disk space; nothing was stored"))
        log.error("database unavailable", extra={"error": str(getattr(exc, "orig", exc))[:300]})
        return answer(Unavailable("database unavailable, retry later", code=ErrorCode.database_unavailable),
                      headers={"Retry-After": "1"})

    for db_error in (OperationalError, InterfaceError, PoolTimeout):
        app.add_exception_handler(db_error, _db_down)

    @app.exception_handler(DataError)
    async def _unstorable(_: Request, exc: DataError) -> JSONResponse:
        """A value the database cannot hold (a NUL in text, an integer out of range): the request's fault."""
        reason = str(exc.orig).splitlines()[0][:200]
        return answer(InvalidInput(f"a value in the request cannot be stored: {reason}",
                                   code=ErrorCode.unstorable_value))

    # Unexpected exceptions are answered (500, no traceback) and logged by RequestContextMiddleware, which
    # still knows the request id; a handler here would run outside it, in Starlette's ServerErrorMiddleware.
