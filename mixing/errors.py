"""Typed errors raised by the algorithms, so callers can map them to user-facing responses.

The estimator-contract errors also subclass scikit-learn's own (``NotFittedError``, ``InvalidParameterError``)
or ``ValueError``, so code written against scikit-learn's conventions catches them as it would there.
"""

from __future__ import annotations

from sklearn.exceptions import NotFittedError as SklearnNotFittedError
from sklearn.utils._param_validation import InvalidParameterError as SklearnInvalidParameterError


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


class NoFeasibleMixtureError(MixingError):
    """No mixture searched meets the outcome constraints with the required probability."""

    def __init__(self, best_probability: float, threshold: float) -> None:
        super().__init__(
            f"no mixture meets the outcome constraints with probability >= {threshold:g} "
            f"(the most likely one: {best_probability:.3g})")
        self.best_probability = best_probability
        self.threshold = threshold


class UnsupportedFidelityError(MixingError):
    """A method was asked for a fidelity it does not model (e.g. a single-fidelity method off target)."""


class FitError(MixingError):
    """A law or surrogate failed to fit the data it was given."""


class InvalidParameterError(MixingError, SklearnInvalidParameterError):
    """A law's hyperparameter is out of its declared range or of the wrong type (raised by ``fit``)."""


class InputShapeError(MixingError, ValueError):
    """Inputs whose shape does not fit: a wrong number of domains, fidelity axes or rows."""


class NotFittedError(MixingError, SklearnNotFittedError):
    """A law was asked to predict before it was fitted."""


__all__ = [
    "FitError",
    "InfeasibleConstraintsError",
    "InputShapeError",
    "InvalidParameterError",
    "MixingError",
    "NoFeasibleMixtureError",
    "NotEnoughDataError",
    "NotFittedError",
    "UnsupportedFidelityError",
]
