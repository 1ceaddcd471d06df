"""One exception hierarchy for every error the service answers, chosen by HTTP status.

The service's error shape is ``{"error": {"code", "message", "field", ...}}``: ``code`` is stable and
machine-readable (``invalid_mixture``, ``duplicate_name``, ``not_enough_data``, …), ``field`` a dotted path
into the request body (``mixture.pile_cc``, ``runs[3].metrics``) or None. Catch :class:`MixoptError` for
everything, or a subclass for one kind of failure::

    try:
        mx.create_experiment(spec)
    except ConflictError as exc:          # 409, e.g. exc.code == "duplicate_name"
        ...
    except ValidationError as exc:        # 422 (or 400): exc.field names the culprit
        ...
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx


class MixoptError(Exception):
    """An error answer from the service: its HTTP ``status``, ``code``, ``message`` and ``field``.

    ``details`` carries the service's extra information when it sends any (every validation failure of a
    request, the scope a 403 needed); ``request_id`` names the request in the server's logs.
    """

    def __init__(self, status: int, code: str, message: str, field: str | None = None, details: Any = None,
                 request_id: str | None = None) -> None:
        super().__init__(f"{status} {code}: {message}" + (f" (field {field})" if field else ""))
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.details = details
        self.request_id = request_id


class ValidationError(MixoptError):
    """400 or 422: the request is malformed or invalid; ``field`` names the offending part of the body."""


class UnauthenticatedError(MixoptError):
    """401: no usable token (missing, malformed, unknown, revoked or expired)."""


class PermissionDeniedError(MixoptError):
    """403: the token may see the resource but lacks the scope the operation needs."""


class NotFoundError(MixoptError):
    """404: no such experiment, run, job or session in the token's project."""


class ConflictError(MixoptError):
    """409: the request conflicts with what is stored (a duplicate name, a final run, an archived
    experiment) or cannot be answered from it yet."""


class NotEnoughDataError(ConflictError):
    """409 ``not_enough_data``: too few completed runs for a model-based answer; report more first."""


class NoFeasibleMixtureError(ConflictError):
    """409 ``no_feasible_mixture``: no mixture meets the objective's outcome constraints with the required
    probability (``details`` carries the best probability found); no infeasible answer is given instead."""


class PayloadTooLargeError(MixoptError):
    """413: the request body is over the service's size limit; send smaller batches."""


class RetryableError(MixoptError):
    """An answer that says to come back later: ``retry_after`` seconds (from ``Retry-After``), or None."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None, details: Any = None,
                 request_id: str | None = None, retry_after: float | None = None) -> None:
        super().__init__(status, code, message, field, details, request_id)
        self.retry_after = retry_after


class RateLimitedError(RetryableError):
    """429: too many requests from this caller."""


class UnavailableError(RetryableError):
    """503: the service's database is unreachable or restarting; the request stored nothing."""


class StorageFullError(MixoptError):
    """507: the service's database is out of disk space; the request stored nothing."""


class ServerError(MixoptError):
    """Any other 5xx: a bug or an outage in the service (``request_id`` finds it in the logs)."""


class JobFailedError(MixoptError):
    """A background job ended in state ``failed``; ``job`` is its final state as the service reported it
    (``status`` is that of the answer that reported it: 200)."""

    def __init__(self, job: Mapping[str, Any]) -> None:
        super().__init__(200, "job_failed", str(job.get("error") or "job failed"))
        self.job = dict(job)


#: The exception for each HTTP status; codes in :data:`BY_CODE` refine it.
BY_STATUS: dict[int, type[MixoptError]] = {
    400: ValidationError, 401: UnauthenticatedError, 403: PermissionDeniedError, 404: NotFoundError,
    409: ConflictError, 413: PayloadTooLargeError, 422: ValidationError, 429: RateLimitedError,
    503: UnavailableError, 507: StorageFullError,
}
BY_CODE: dict[str, type[MixoptError]] = {"not_enough_data": NotEnoughDataError,
                                         "no_feasible_mixture": NoFeasibleMixtureError}


def retry_after(response: httpx.Response) -> float | None:
    """The ``Retry-After`` header in seconds (the service sends whole seconds), or None."""
    value = response.headers.get("retry-after")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def error_from_response(response: httpx.Response) -> MixoptError:
    """The typed exception for an error answer (status >= 400), whatever its body holds."""
    try:
        payload = response.json()
    except ValueError:
        payload = None
    error = payload.get("error") if isinstance(payload, dict) else None
    if not isinstance(error, dict):
        error = {}
    status = response.status_code
    code = str(error.get("code") or "http_error")
    cls = BY_CODE.get(code) or BY_STATUS.get(status) or (ServerError if status >= 500 else MixoptError)
    args = (status, code, str(error.get("message") or response.text[:200] or response.reason_phrase),
            error.get("field"), error.get("details"), error.get("request_id"))
    if issubclass(cls, RetryableError):
        return cls(*args, retry_after=retry_after(response))
    return cls(*args)
