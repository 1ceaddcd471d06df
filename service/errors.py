"""Typed errors of the service, each with a stable code, the offending field and the HTTP status it maps to.

Raised by validation, operations and the store; :mod:`service.api.errors` is the one place that turns them
(and the database's and the algorithms' errors) into HTTP answers.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from sqlalchemy.exc import DBAPIError, StatementError


class ErrorCode(StrEnum):
    """Every ``error.code`` an answer carries: stable, for programs to branch on (README: Errors)."""

    invalid_input = "invalid_input"
    invalid_mixture = "invalid_mixture"
    invalid_fidelity = "invalid_fidelity"
    missing_metric = "missing_metric"
    constraint_violation = "constraint_violation"
    infeasible_constraints = "infeasible_constraints"
    domain_mismatch = "domain_mismatch"
    mixture_mismatch = "mixture_mismatch"
    fidelity_mismatch = "fidelity_mismatch"
    client_run_id_mismatch = "client_run_id_mismatch"
    duplicate_in_batch = "duplicate_in_batch"
    batch_too_large = "batch_too_large"
    unknown_method = "unknown_method"
    unknown_law = "unknown_law"
    unknown_scope = "unknown_scope"
    invalid_project = "invalid_project"
    invalid_page_token = "invalid_page_token"
    page_size_too_large = "page_size_too_large"
    unstorable_value = "unstorable_value"
    malformed_json = "malformed_json"
    malformed_body = "malformed_body"
    bad_request = "bad_request"
    not_found = "not_found"
    method_not_allowed = "method_not_allowed"
    payload_too_large = "payload_too_large"
    rate_limited = "rate_limited"
    conflict = "conflict"
    duplicate_name = "duplicate_name"
    experiment_archived = "experiment_archived"
    invalid_transition = "invalid_transition"
    run_final = "run_final"
    step_conflict = "step_conflict"
    not_enough_data = "not_enough_data"
    not_continual = "not_continual"
    no_feasible_mixture = "no_feasible_mixture"
    suggestion_failed = "suggestion_failed"
    search_space_exhausted = "search_space_exhausted"
    algorithm_error = "algorithm_error"
    unauthenticated = "unauthenticated"
    insufficient_scope = "insufficient_scope"
    unavailable = "unavailable"
    database_unavailable = "database_unavailable"
    broker_unavailable = "broker_unavailable"
    storage_full = "storage_full"
    http_error = "http_error"
    internal_error = "internal_error"
    store_error = "store_error"
    step_not_increasing = "step_not_increasing"
    non_finite = "non_finite"
    invalid_hyperparameter = "invalid_hyperparameter"
    invalid_weights = "invalid_weights"


class ApiError(Exception):
    """An error with an HTTP status, a stable machine-readable code and the offending field."""

    status_code = 400
    code: str = ErrorCode.bad_request
    #: Extra response headers (``WWW-Authenticate`` on a 401).
    headers: dict[str, str] | None = None

    def __init__(self, message: str, field: str | None = None, code: str | None = None,
                 details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.details = details
        if code is not None:
            self.code = code


class InvalidInput(ApiError):
    status_code = 422
    code: str = ErrorCode.invalid_input


class NotFound(ApiError):
    status_code = 404
    code: str = ErrorCode.not_found


class Conflict(ApiError):
    status_code = 409
    code: str = ErrorCode.conflict


class SearchSpaceExhausted(Conflict):
    """Every new suggestion would repeat a run that is pending or observed: no point is left to hand out."""

    code: str = ErrorCode.search_space_exhausted


class Unavailable(ApiError):
    status_code = 503
    code: str = ErrorCode.unavailable


class StorageFull(ApiError):
    """The database ran out of disk: nothing of the request was stored, and retrying will not help yet."""

    status_code = 507
    code: str = ErrorCode.storage_full


def describe_error(exc: BaseException) -> str:
    """``"Type: message"`` of an unexpected exception, fit to store and show a client (a failed job's error).

    A SQLAlchemy statement error's own text carries the SQL statement and its bound parameters (other
    callers' data, and the schema), so it is reduced to the first line of its driver's message, e.g.
    ``"IntegrityError: duplicate key value violates unique constraint ..."``; the whole exception belongs
    in the log.
    """
    if isinstance(exc, StatementError):
        lines = str(exc.orig).strip().splitlines()
        return f"{type(exc).__name__}: {lines[0] if lines else 'database error'}"
    return f"{type(exc).__name__}: {exc}"


def is_storage_full(exc: DBAPIError) -> bool:
    """PostgreSQL's ``disk_full`` (SQLSTATE 53100) or SQLite's ``SQLITE_FULL``."""
    return getattr(exc.orig, "sqlstate", None) == "53100" or "database or disk is full" in str(exc.orig)


class Unauthenticated(ApiError):
    """No usable token: missing, malformed, unknown, revoked or expired (the message says which)."""

    status_code = 401
    code: str = ErrorCode.unauthenticated
    headers = {"WWW-Authenticate": 'Bearer realm="mixopt"'}


class InsufficientScope(ApiError):
    """A valid token that may see the resource but lacks the scope the operation needs."""

    status_code = 403
    code: str = ErrorCode.insufficient_scope


