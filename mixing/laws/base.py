"""The estimator interface every mixing law implements.

Laws follow scikit-learn's conventions (constructor arguments are hyperparameters only, ``fit`` returns
self, fitted state ends in ``_``) so that ``sklearn.base.clone`` and cross-validation work unchanged.
A law maps mixtures (and, for scale-aware laws, fidelity values) to one column per target metric, so the
aggregate objective can be formed from per-metric predictions.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from numpy.typing import ArrayLike
from sklearn.base import BaseEstimator

from mixing.simplex import FloatArray


class MixingLaw(BaseEstimator):  # type: ignore[misc]
    """Base class: ``fit(mixtures, fidelity, y)`` then ``predict(mixtures, fidelity)``.

    ``y`` is ``(n, k)`` (one column per metric; a 1-D ``y`` is treated as ``k = 1``); ``predict`` returns
    ``(n, k)``. ``fidelity`` is ``(n, m)`` normalised fidelity coordinates or ``None``; laws with
    ``uses_fidelity = False`` ignore it and should be fitted on runs of a single fidelity.
    """

    #: Registry name, stable across releases (stored in Fit records).
    name: ClassVar[str] = "base"
    #: Whether ``predict`` is smooth in the mixture, so gradient-based simplex optimisers apply.
    differentiable: ClassVar[bool] = False
    #: Whether the law models the fidelity axes (and can extrapolate to the target scale).
    uses_fidelity: ClassVar[bool] = False

    def min_runs(self, n_domains: int) -> int:
        """Fewest runs the law can be fitted on for ``n_domains`` domains."""
        return max(5, n_domains + 2)

    def fit(self, mixtures: ArrayLike, fidelity: ArrayLike | None, y: ArrayLike) -> MixingLaw:
        raise NotImplementedError

    def predict(self, mixtures: ArrayLike, fidelity: ArrayLike | None = None) -> FloatArray:
        raise NotImplementedError


def as_targets(y: ArrayLike) -> FloatArray:
    """``y`` as a float ``(n, k)`` matrix."""
    arr = np.asarray(y, dtype=np.float64)
    return arr.reshape(-1, 1) if arr.ndim == 1 else arr


def as_mixtures(mixtures: ArrayLike) -> FloatArray:
    return np.atleast_2d(np.asarray(mixtures, dtype=np.float64))
