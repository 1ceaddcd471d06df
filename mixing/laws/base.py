"""The estimator interface every mixing law implements, and the contract it enforces for every law.

Laws follow scikit-learn's conventions (constructor arguments are hyperparameters only, ``fit`` returns
self, fitted state ends in ``_``) so that ``sklearn.base.clone`` and cross-validation work unchanged. The
contract is enforced here, once, the way scikit-learn enforces it for its own estimators:

* hyperparameters are checked at ``fit`` against the class's ``_parameter_constraints`` (scikit-learn's
  constraint language, run by its ``_fit_context``), and a bad one raises :class:`InvalidParameterError`
  naming it;
* inputs are checked at ``fit`` and ``predict``: a wrong number of domains, fidelity axes or rows raises
  :class:`InputShapeError`, whichever law it is;
* ``predict`` before ``fit`` raises :class:`NotFittedError` (via ``check_is_fitted``).

Subclasses implement ``_fit`` and ``_predict`` on checked arrays. A law maps mixtures (and, for
scale-aware laws, fidelity values) to one column per target metric, so the aggregate objective can be
formed from per-metric predictions.
"""

from __future__ import annotations

from typing import Any, ClassVar, Self

import numpy as np
from numpy.typing import ArrayLike
from sklearn.base import BaseEstimator, _fit_context
from sklearn.exceptions import NotFittedError as SklearnNotFittedError
from sklearn.utils._param_validation import InvalidParameterError as SklearnInvalidParameterError
from sklearn.utils.validation import check_is_fitted

from mixing.errors import InputShapeError, InvalidParameterError, NotFittedError
from mixing.simplex import FloatArray


class MixingLaw(BaseEstimator):  # type: ignore[misc]
    """Base class: ``fit(mixtures, fidelity, y)`` then ``predict(mixtures, fidelity)``.

    ``mixtures`` is ``(n, d)`` (a single mixture ``(d,)`` is one row); ``y`` is ``(n, k)`` (one column per
    metric; a 1-D ``y`` is treated as ``k = 1``); ``predict`` returns ``(n, k)``. ``fidelity`` is ``(n, m)``
    normalised fidelity coordinates or ``None``; laws with ``uses_fidelity = False`` ignore it and should be
    fitted on runs of a single fidelity.

    Capabilities are declared as class attributes (a law whose capability depends on its
    hyperparameters overrides the attribute with a property), so callers ask the law instead of testing
    its type.
    """

    #: Registry name, stable across releases (stored in Fit records).
    name: ClassVar[str] = "base"
    #: Hyperparameter constraints in scikit-learn's language, checked at ``fit``.
    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {}
    #: Whether ``predict`` is smooth in the mixture, so gradient-based simplex optimisers apply.
    differentiable: ClassVar[bool] = False
    #: Whether the law models the fidelity axes (and can extrapolate to the target scale).
    uses_fidelity: ClassVar[bool] = False
    #: Whether the law can be fitted on the aggregate objective, not only on per-metric columns.
    fits_aggregate: ClassVar[bool] = True
    #: Whether the law gives its own calibrated intervals (``predict_std`` and ``aggregate_std``).
    provides_intervals: ClassVar[bool] = False

    def min_runs(self, n_domains: int) -> int:
        """Fewest runs the law can be fitted on for ``n_domains`` domains."""
        return max(5, n_domains + 2)

    # ------------------------------------------------------------------------------------ the contract
    @_fit_context(prefer_skip_nested_validation=False)  # an ensemble's members are validated as they fit
    def fit(self, mixtures: ArrayLike, fidelity: ArrayLike | None, y: ArrayLike) -> Self:
        x = _mixtures(mixtures, type(self).__name__)
        t = as_targets(y)
        if t.ndim != 2 or len(t) != len(x):
            raise InputShapeError(
                f"{type(self).__name__}: y needs one row per mixture ({len(x)}), got shape {t.shape}"
            )
        f = _fidelity(fidelity, len(x), type(self).__name__)
        self._fit(x, f, t)
        self.n_domains_ = x.shape[1]
        self.n_fidelity_ = 0 if f is None or not self.uses_fidelity else f.shape[1]
        return self

    def predict(self, mixtures: ArrayLike, fidelity: ArrayLike | None = None) -> FloatArray:
        """Predicted metrics ``(n, k)``."""
        return self._predict(*self._check_predict_inputs(mixtures, fidelity))

    def predict_std(self, mixtures: ArrayLike, fidelity: ArrayLike | None = None) -> FloatArray:
        """Calibrated predictive standard deviation of each metric ``(n, k)``; ``provides_intervals`` only."""
        return self._predict_std(*self._check_predict_inputs(mixtures, fidelity))

    def aggregate_std(self, mixtures: ArrayLike, fidelity: ArrayLike | None, weights: ArrayLike) -> FloatArray:
        """Standard deviation ``(n,)`` of ``metrics @ weights``; ``provides_intervals`` only."""
        x, f = self._check_predict_inputs(mixtures, fidelity)
        return self._aggregate_std(x, f, np.asarray(weights, dtype=np.float64))

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "n_domains_")

    def _validate_params(self) -> None:
        """scikit-learn's check of ``_parameter_constraints``, raising this package's error type."""
        try:
            super()._validate_params()
        except SklearnInvalidParameterError as exc:
            raise InvalidParameterError(str(exc)) from None

    def _check_predict_inputs(
        self, mixtures: ArrayLike, fidelity: ArrayLike | None
    ) -> tuple[FloatArray, FloatArray | None]:
        try:
            check_is_fitted(self)
        except SklearnNotFittedError as exc:
            raise NotFittedError(str(exc)) from None
        who = type(self).__name__
        x = _mixtures(mixtures, who)
        if x.shape[1] != self.n_domains_:
            raise InputShapeError(f"{who} was fitted on {self.n_domains_} domains; got {x.shape[1]}")
        f = _fidelity(fidelity, len(x), who)
        if f is not None and self.n_fidelity_ and f.shape[1] != self.n_fidelity_:
            raise InputShapeError(f"{who} was fitted on {self.n_fidelity_} fidelity axes; got {f.shape[1]}")
        return x, f

    # ------------------------------------------------------------------------------ what a law writes
    def _fit(self, x: FloatArray, fidelity: FloatArray | None, y: FloatArray) -> None:
        """Fit on checked inputs: ``x (n, d)``, ``fidelity (n, m)`` or None, ``y (n, k)``."""
        raise NotImplementedError

    def _predict(self, x: FloatArray, fidelity: FloatArray | None) -> FloatArray:
        raise NotImplementedError

    def _predict_std(self, x: FloatArray, fidelity: FloatArray | None) -> FloatArray:
        raise NotImplementedError(f"{self.name} gives no intervals of its own")

    def _aggregate_std(self, x: FloatArray, fidelity: FloatArray | None, weights: FloatArray) -> FloatArray:
        raise NotImplementedError(f"{self.name} gives no intervals of its own")


def as_targets(y: ArrayLike) -> FloatArray:
    """``y`` as a float ``(n, k)`` matrix."""
    arr = np.asarray(y, dtype=np.float64)
    return arr.reshape(-1, 1) if arr.ndim == 1 else arr


def as_mixtures(mixtures: ArrayLike) -> FloatArray:
    return np.atleast_2d(np.asarray(mixtures, dtype=np.float64))


def _mixtures(mixtures: ArrayLike, who: str) -> FloatArray:
    x = as_mixtures(mixtures)
    if x.ndim != 2 or x.shape[1] == 0:
        raise InputShapeError(f"{who}: mixtures must be (runs, domains) with at least one domain, got {x.shape}")
    return x


def _fidelity(fidelity: ArrayLike | None, n: int, who: str) -> FloatArray | None:
    if fidelity is None:
        return None
    f = np.asarray(fidelity, dtype=np.float64)
    if n == 0:
        return f.reshape(0, f.shape[-1] if f.ndim == 2 else 0)
    if f.size % n:
        raise InputShapeError(f"{who}: fidelity needs one row per mixture ({n}), got shape {f.shape}")
    return f.reshape(n, -1)
