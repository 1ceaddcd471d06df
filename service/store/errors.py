"""What the store refuses, in its own terms: a record that is not there, one that contradicts what is stored,
one that cannot be stored as given.

Each error carries a stable ``code``, a message for people and the ``field`` of the request to blame (a
dotted path such as ``runs[3].state``), so the web layer can answer it without knowing the store; the
mapping to HTTP statuses lives in one table there (``service.api.errors``).
"""

from __future__ import annotations

from service.errors import ErrorCode


class StoreError(Exception):
    """A refused read or write; ``code`` is machine-readable, ``field`` the offending input (or None)."""

    code: str = ErrorCode.store_error

    def __init__(self, message: str, field: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        if code is not None:
            self.code = code


class RecordNotFound(StoreError):
    """No such record, or not one the caller's project may see."""

    code: str = ErrorCode.not_found


class RecordConflict(StoreError):
    """The write contradicts what is stored (a taken name, a final run reported otherwise, an archived
    experiment)."""

    code: str = ErrorCode.conflict


class InvalidRecord(StoreError):
    """The values cannot be stored as given (an unknown scope, a malformed page token)."""

    code: str = ErrorCode.invalid_input
