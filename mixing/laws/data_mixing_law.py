"""The Data Mixing Law of Ye et al. (2024): ``L_i(r) = c_i + k_i * exp(sum_j t_ij r_j)`` per metric.

As in the paper, the fit uses a robust (Huber) loss and keeps the best of many starts: the exponential
surface has flat valleys and a few badly measured runs would otherwise bend it. Starts are the
correlation-search solution and random perturbations of it; all metrics x starts are solved as one
batch (see :mod:`mixing.laws.robust`). The Huber threshold is 1.345 robust standard deviations of the
starting residuals, the usual 95%-efficiency choice, so it adapts to each metric's noise level.
"""

from __future__ import annotations

from numbers import Integral, Real
from typing import Any, ClassVar

import numpy as np
from sklearn.utils._param_validation import Interval

from mixing.errors import NotEnoughDataError
from mixing.laws.base import MixingLaw
from mixing.laws.exponential import ExpLawParams, correlation_search, exp_law_model, simplex_rows
from mixing.laws.robust import levenberg_marquardt, robust_scale
from mixing.laws.threads import single_threaded
from mixing.simplex import FloatArray

HUBER_EFFICIENCY = 1.345


class DataMixingLaw(MixingLaw):
    """Ye et al.'s exponential law, Huber-fitted from ``n_starts`` starts per metric."""

    name: ClassVar[str] = "data_mixing_law"
    differentiable: ClassVar[bool] = True
    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "n_starts": [Interval(Integral, 1, None, closed="left")],
        "max_iter": [Interval(Integral, 0, None, closed="left")],
        "jitter": [Interval(Real, 0, None, closed="left")],
        "seed": [Interval(Integral, 0, None, closed="left")],
    }

    def __init__(self, n_starts: int = 6, max_iter: int = 150, jitter: float = 0.5, seed: int = 0) -> None:
        self.n_starts = n_starts
        self.max_iter = max_iter
        self.jitter = jitter
        self.seed = seed

    def min_runs(self, n_domains: int) -> int:
        return n_domains + 3

    @single_threaded
    def _fit(self, mixtures: FloatArray, fidelity: FloatArray | None, t: FloatArray) -> None:
        x = simplex_rows(mixtures)
        n, d = x.shape
        if n < self.min_runs(d):
            raise NotEnoughDataError("data_mixing_law needs more runs than domains", self.min_runs(d), n)
        k = t.shape[1]
        c0, e0, sign = correlation_search(x, t)
        theta0 = self._starts(np.column_stack([c0, e0]), t, sign)  # (S, k, 1 + d)
        s = theta0.shape[0]
        start = ExpLawParams(c0, e0, sign).predict(x) - t
        delta = HUBER_EFFICIENCY * robust_scale(start.T)
        fit = levenberg_marquardt(
            exp_law_model(x, np.tile(sign, s)),
            theta0.reshape(s * k, 1 + d),
            np.tile(t.T, (s, 1)),
            delta=np.tile(delta, s),
            max_iter=self.max_iter,
        )
        obj = fit.objective.reshape(s, k)
        best = np.argmin(obj, axis=0)
        theta = fit.theta.reshape(s, k, 1 + d)[best, np.arange(k)]
        self.params_ = ExpLawParams(theta[:, 0], theta[:, 1:], sign)
        self.huber_delta_ = delta

    def _starts(self, base: FloatArray, t: FloatArray, sign: FloatArray) -> FloatArray:
        """The correlation-search start plus jittered copies (exponents and floor both perturbed)."""
        rng = np.random.default_rng(self.seed)
        span = np.maximum(np.ptp(t, axis=0), 1e-12)
        out = [base]
        for _ in range(max(self.n_starts - 1, 0)):
            j = base.copy()
            scale = self.jitter * (np.std(base[:, 1:], axis=1, keepdims=True) + 0.1)
            j[:, 1:] += scale * rng.standard_normal(base[:, 1:].shape)
            j[:, 0] -= sign * span * rng.uniform(0.0, 0.5, size=len(span))
            out.append(j)
        return np.stack(out)

    def _predict(self, x: FloatArray, fidelity: FloatArray | None) -> FloatArray:
        return self.params_.predict(simplex_rows(x))

    @property
    def c_(self) -> FloatArray:
        return self.params_.c

    @property
    def k_(self) -> FloatArray:
        return self.params_.k

    @property
    def t_(self) -> FloatArray:
        return self.params_.t_centred
