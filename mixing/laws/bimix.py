"""BiMix-style per-domain power law (Ge et al. 2024): each metric follows its own domain's share.

``L_i = c_i + A_i * (r_m(i) + eps_i) ** -alpha_i`` (``A_i < 0`` for scores that rise with the share),
optionally times a step/token term
``(1 + B_i * exp(-beta_i * u))`` where ``u`` is a normalised (log-)step or token fidelity coordinate, which
is BiMix's ``s ** -beta`` on a log axis. ``eps`` keeps a zero share finite. The law ignores every other
domain, so it is cheap, needs few runs and extrapolates sensibly in its own domain, but cannot see
transfer between domains; it describes per-domain metrics, not an aggregate.

``metric_domains[i]`` names the domain behind metric ``i``; when not given it is the domain whose share
is most negatively rank-correlated with the metric (more of a domain lowers its own validation loss).
"""

from __future__ import annotations

from collections.abc import Sequence
from numbers import Integral
from typing import Any, ClassVar

import numpy as np
from scipy.stats import rankdata
from sklearn.utils._param_validation import Interval

from mixing.errors import FitError, NotEnoughDataError
from mixing.laws.base import MixingLaw
from mixing.laws.exponential import correlation_search, simplex_rows
from mixing.laws.robust import BatchModel, levenberg_marquardt
from mixing.laws.threads import single_threaded
from mixing.simplex import FloatArray

#: Smoothing offsets tried as starting points (shares are often rounded to 1e-3).
EPS_GRID = (1e-4, 1e-3, 1e-2)
#: Decay rates of the step term tried as starting points (per unit of the normalised step axis).
STEP_DECAY_GRID = (0.5, 2.0, 8.0)


class BiMixLaw(MixingLaw):
    """Per-metric power law in its own domain's share (parameters ``c, log A, log alpha, log eps``)."""

    name: ClassVar[str] = "bimix"
    differentiable: ClassVar[bool] = True
    #: An aggregate of several domains has no "own share"; the law is reported per metric only.
    fits_aggregate: ClassVar[bool] = False
    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "metric_domains": ["array-like", None],
        "step_axis": [Interval(Integral, 0, None, closed="left"), None],
        "max_iter": [Interval(Integral, 0, None, closed="left")],
    }

    def __init__(
        self, metric_domains: Sequence[int] | None = None, step_axis: int | None = None, max_iter: int = 200
    ) -> None:
        self.metric_domains = metric_domains
        self.step_axis = step_axis
        self.max_iter = max_iter

    @property
    def uses_fidelity(self) -> bool:  # type: ignore[override]
        return self.step_axis is not None

    def min_runs(self, n_domains: int) -> int:
        return 8 if self.step_axis is not None else 6

    @single_threaded
    def _fit(self, mixtures: FloatArray, fidelity: FloatArray | None, t: FloatArray) -> None:
        x = simplex_rows(mixtures)
        n, k = t.shape
        if n < self.min_runs(x.shape[1]):
            raise NotEnoughDataError("bimix needs runs to fit", self.min_runs(x.shape[1]), n)
        self.domains_ = self._domains(x, t)
        own = x[:, self.domains_].T  # (k, n)
        u = self._step(fidelity)
        decays = STEP_DECAY_GRID if u is not None else (None,)
        starts = [self._start(own, t, eps, decay) for eps in EPS_GRID for decay in decays]
        s = len(starts)
        theta0 = np.concatenate([theta for theta, _ in starts])  # (s * k, p)
        signs = np.concatenate([sign for _, sign in starts])
        fit = levenberg_marquardt(
            _model(np.tile(own, (s, 1)), u, signs), theta0, np.tile(t.T, (s, 1)), max_iter=self.max_iter
        )
        best = np.argmin(fit.objective.reshape(s, k), axis=0)
        self.theta_ = fit.theta.reshape(s, k, -1)[best, np.arange(k)]
        self.sign_ = signs.reshape(s, k)[best, np.arange(k)]

    def _domains(self, x: FloatArray, t: FloatArray) -> np.ndarray:
        if self.metric_domains is not None:
            dom = np.asarray(self.metric_domains, dtype=int)
            if dom.shape != (t.shape[1],) or dom.min() < 0 or dom.max() >= x.shape[1]:
                raise FitError("metric_domains needs one valid domain index per metric")
            return dom
        rx = rankdata(x, axis=0)
        ry = rankdata(t, axis=0)
        rx = (rx - rx.mean(axis=0)) / np.maximum(rx.std(axis=0), 1e-12)
        ry = (ry - ry.mean(axis=0)) / np.maximum(ry.std(axis=0), 1e-12)
        spearman = ry.T @ rx / len(x)  # (k, d)
        return np.argmin(spearman, axis=1)

    def _step(self, fidelity: FloatArray | None) -> FloatArray | None:
        if self.step_axis is None:
            return None
        if fidelity is None:
            raise FitError("bimix with a step term needs fidelity values")
        if self.step_axis >= fidelity.shape[1]:
            raise FitError(f"bimix step_axis {self.step_axis} is not among {fidelity.shape[1]} fidelity axes")
        return fidelity[:, self.step_axis]

    @staticmethod
    def _start(
        own: FloatArray, t: FloatArray, eps: float, decay: float | None
    ) -> tuple[FloatArray, FloatArray]:
        """Power-law start (parameters, orientation) from a log-log correlation search at a fixed ``eps``.

        The orientation is +1 for a loss that falls as the share grows, -1 for a score that rises.
        """
        k = t.shape[1]
        theta = np.zeros((k, 4 if decay is None else 6))
        sign = np.ones(k)
        for i in range(k):
            feats = np.column_stack([np.ones(own.shape[1]), np.log(own[i] + eps)])
            c, coef, s = correlation_search(feats, t[:, i : i + 1])
            alpha = max(-coef[0, 1], 1e-3)
            theta[i, :4] = [c[0], coef[0, 0], np.log(alpha), np.log(eps)]
            sign[i] = s[0]
        if decay is not None:
            theta[:, 4:] = [0.0, np.log(decay)]
        return theta, sign

    def _predict(self, x: FloatArray, fidelity: FloatArray | None) -> FloatArray:
        own = simplex_rows(x)[:, self.domains_].T
        u = self._step(fidelity)
        pred, _ = _model(own, u, self.sign_)(self.theta_, np.arange(len(own)), False)
        return pred.T

    @property
    def alpha_(self) -> FloatArray:
        return np.exp(self.theta_[:, 2])

    @property
    def eps_(self) -> FloatArray:
        return np.exp(self.theta_[:, 3])


def _model(own: FloatArray, u: FloatArray | None, sign: FloatArray) -> BatchModel:
    """Batched ``c + sign exp(a) (r + eps)^-alpha [* (1 + exp(b - beta u))]`` over rows of ``own (B, n)``."""

    def model(theta: FloatArray, rows: np.ndarray, with_jac: bool) -> tuple[FloatArray, FloatArray | None]:
        c, a, la, le = (theta[:, i : i + 1] for i in range(4))
        alpha, eps = np.exp(la), np.exp(le)
        # A zero share whose eps underflowed to 0 would make log(base) -inf and the Jacobian infinite.
        base = np.maximum(own[rows] + eps, np.finfo(np.float64).tiny)
        power = sign[rows, None] * np.exp(np.clip(a - alpha * np.log(base), -700, 700))
        step = np.ones_like(power)
        if u is not None:
            b, lb = theta[:, 4:5], theta[:, 5:6]
            decay = np.exp(np.clip(b - np.exp(lb) * u[None, :], -700, 700))
            step = 1.0 + decay
        pred = c + power * step
        if not with_jac:
            return pred, None
        cols = [
            np.ones_like(pred),
            power * step,
            -power * step * alpha * np.log(base),
            -power * step * alpha * eps / base,
        ]
        if u is not None:
            cols += [power * decay, -power * decay * np.exp(lb) * u[None, :]]
        return pred, np.stack(cols, axis=2)

    return model
