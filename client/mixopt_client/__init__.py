"""The Python client for a mixopt server: ``from mixopt_client import MixoptClient``.

Installs with httpx alone (``pip install ./client``); pandas is optional, for :meth:`MixoptClient.runs_frame`.
"""

from mixopt_client.client import (
    CLIENT_RENORMALISE_TOLERANCE,
    MixoptClient,
    ProgressCallback,
    Suggestion,
    renormalise,
    stderr_progress,
)
from mixopt_client.errors import (
    ConflictError,
    JobFailedError,
    MixoptError,
    NoFeasibleMixtureError,
    NotEnoughDataError,
    NotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    RateLimitedError,
    RetryableError,
    ServerError,
    StorageFullError,
    UnauthenticatedError,
    UnavailableError,
    ValidationError,
)

__all__ = [
    "CLIENT_RENORMALISE_TOLERANCE", "ConflictError", "JobFailedError", "MixoptClient", "MixoptError",
    "NoFeasibleMixtureError", "NotEnoughDataError", "NotFoundError", "PayloadTooLargeError", "PermissionDeniedError",
    "ProgressCallback",
    "RateLimitedError", "RetryableError", "ServerError", "StorageFullError", "Suggestion", "UnauthenticatedError",
    "UnavailableError", "ValidationError", "renormalise", "stderr_progress",
]
