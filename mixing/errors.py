"""Typed errors raised by the algorithms, so callers can map them to user-facing responses."""

from __future__ import annotations


class MixingError(Exception):
    """Base class of every error raised by ``mixing``."""


class InfeasibleConstraintsError(MixingError):
    """The declared bounds leave no mixture on the simplex."""


class NotEnoughDataError(MixingError):
    """A method was asked to fit or predict with fewer observations than it needs."""

    def __init__(self, message: str, needed: int, have: int) -> None:
        super().__init__(f"{message} (needs {needed}, has {have})")
        self.needed = needed
        self.have = have


class UnsupportedFidelityError(MixingError):
    """A method was asked for a fidelity it does not model (e.g. a single-fidelity method off target)."""


class FitError(MixingError):
    """A law or surrogate failed to fit the data it was given."""
