"""Typed errors of the online mixing sessions.

Every error names the input field at fault (``field``) so the service can point the user at it in a 422
response without parsing messages.
"""

from __future__ import annotations

from mixing.errors import MixingError


class OnlineInputError(MixingError):
    """Base class: an input to :func:`mixing.online.start` or :func:`mixing.online.observe` is invalid."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class UnknownMethodError(OnlineInputError):
    """The method is not in :data:`mixing.online.ONLINE_METHODS`."""


class HyperparameterError(OnlineInputError):
    """A hyperparameter is unknown, of the wrong type or out of range."""


class StepOrderError(OnlineInputError):
    """An observation's step is not strictly greater than the previous one."""


class DomainMismatchError(OnlineInputError):
    """A per-domain vector does not have one entry per domain of the session."""


class NonFiniteValueError(OnlineInputError):
    """A loss (or reference loss, or weight) is NaN or infinite."""


class InvalidWeightsError(OnlineInputError):
    """Initial weights are negative, sum to zero, or are not allowed for the method."""


class StateError(OnlineInputError):
    """The stored state is not one this module wrote (wrong schema, unknown method, damaged fields)."""
