"""Aioli's static log-linear law (Chen et al. 2024): ``L_i(p) = c_i + b_i * exp(-sum_j A_ij p_j)``.

Aioli fits it in two stages: a correlation search over the floor ``c`` (regress ``log(L - c)`` on the
mixture, keep the floor whose fit correlates best), then L-BFGS on the squared error from there. The
functional form is the Data Mixing Law's with ``A = -t``; what differs is the fit (one informed start and
a squared loss instead of many starts and a Huber loss), which is why both are offered and scored.
"""

from __future__ import annotations

from numbers import Integral
from typing import Any, ClassVar

import numpy as np
from scipy.optimize import minimize
from sklearn.utils._param_validation import Interval

from mixing.errors import NotEnoughDataError
from mixing.laws.base import MixingLaw
from mixing.laws.exponential import ExpLawParams, correlation_search, simplex_rows
from mixing.laws.threads import single_threaded
from mixing.simplex import FloatArray


class AioliLogLinear(MixingLaw):
    """Correlation search for the floor, then L-BFGS on all parameters of every metric at once."""

    name: ClassVar[str] = "aioli_loglinear"
    differentiable: ClassVar[bool] = True
    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "max_iter": [Interval(Integral, 0, None, closed="left")],
    }

    def __init__(self, max_iter: int = 500) -> None:
        self.max_iter = max_iter

    def min_runs(self, n_domains: int) -> int:
        return n_domains + 3

    @single_threaded
    def _fit(self, mixtures: FloatArray, fidelity: FloatArray | None, t: FloatArray) -> None:
        x = simplex_rows(mixtures)
        n, d = x.shape
        if n < self.min_runs(d):
            raise NotEnoughDataError("aioli_loglinear needs more runs than domains", self.min_runs(d), n)
        k = t.shape[1]
        c0, e0, sign = correlation_search(x, t)
        # Metrics on different scales would make one L-BFGS over all of them ill-conditioned.
        scale = np.maximum(t.std(axis=0), 1e-12)

        def loss(flat: FloatArray) -> tuple[float, FloatArray]:
            theta = flat.reshape(k, 1 + d)
            e = sign[None, :] * np.exp(np.clip(x @ theta[:, 1:].T, -700, 700))
            r = (theta[:, 0][None, :] + e - t) / scale
            g_pred = r / scale / n  # d(0.5 mean r^2)/d pred
            grad = np.column_stack([g_pred.sum(axis=0), (g_pred * e).T @ x])
            return 0.5 * float(np.sum(r**2)) / n, grad.ravel()

        res = minimize(
            loss,
            np.column_stack([c0, e0]).ravel(),
            jac=True,
            method="L-BFGS-B",
            options={"maxiter": self.max_iter},
        )
        theta = res.x.reshape(k, 1 + d)
        self.params_ = ExpLawParams(theta[:, 0], theta[:, 1:], sign)
        self.floor_search_ = c0

    def _predict(self, x: FloatArray, fidelity: FloatArray | None) -> FloatArray:
        return self.params_.predict(simplex_rows(x))

    @property
    def c_(self) -> FloatArray:
        return self.params_.c

    @property
    def b_(self) -> FloatArray:
        """``b (k,)``: positive for losses, negative for metrics that rise with the exponent (accuracies)."""
        return self.params_.k

    @property
    def a_(self) -> FloatArray:
        """Aioli's interaction matrix ``A (k, d)`` (centred: the simplex fixes only differences)."""
        return -self.params_.t_centred
