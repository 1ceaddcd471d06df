"""Scaling-aware mixing law after Shukor et al. (2025): one fit across model sizes and token counts.

Additive form (:class:`ScalingAdditiveLaw`), per metric::

    L(s, h) = E + 1 / (sum_j C_j h_j ** gamma_j) + sum_a A_a * exp(-alpha_a * s_a)

where ``s_a`` are the fidelity coordinates (normalised log parameters, log tokens, ... as
:meth:`mixing.problem.FidelitySpace.normalise` produces them). On a log axis ``A exp(-alpha s)`` *is*
the power law ``A' / N ** alpha'``; working in normalised coordinates keeps every parameter of order one.

Joint form (:class:`ScalingJointLaw`): the scale terms depend on the mixture, ``A_a(h) = exp(a_a0 + sum_j
a_aj h_j)``, so a mixture can gain more from scale than another and the best mixture moves with scale.
Runs at several sizes and token counts thus feed one fit, and the law predicts at the target scale.

Positive quantities (``C``, ``gamma``, ``alpha``) are optimised in log space; the fit is a Huber-free
Levenberg-Marquardt from several random starts, keeping the best.
"""

from __future__ import annotations

from numbers import Integral
from typing import Any, ClassVar

import numpy as np
from sklearn.utils._param_validation import Interval

from mixing.errors import FitError, NotEnoughDataError
from mixing.laws.base import MixingLaw
from mixing.laws.exponential import simplex_rows
from mixing.laws.robust import BatchModel, levenberg_marquardt
from mixing.laws.threads import single_threaded
from mixing.simplex import FloatArray

#: Log-parameters are clipped to +-MAX_LOG before exponentiation, so a wild trial step cannot overflow.
MAX_LOG = 30.0


class ScalingMixingLaw(MixingLaw):
    """Shukor et al.'s law over (mixture, fidelity): what its additive and joint forms share."""

    differentiable: ClassVar[bool] = True
    uses_fidelity: ClassVar[bool] = True
    #: Whether the scale terms depend on the mixture (the joint form).
    joint: ClassVar[bool]
    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "n_starts": [Interval(Integral, 1, None, closed="left")],
        "max_iter": [Interval(Integral, 0, None, closed="left")],
        "seed": [Interval(Integral, 0, None, closed="left")],
    }

    def __init__(self, n_starts: int = 6, max_iter: int = 300, seed: int = 0) -> None:
        self.n_starts = n_starts
        self.max_iter = max_iter
        self.seed = seed

    def _per_axis(self, n_domains: int) -> int:
        """Parameters per fidelity axis beyond its decay rate: one amplitude, or one per domain (joint)."""
        return n_domains + 1 if self.joint else 2

    def min_runs(self, n_domains: int) -> int:
        return 2 * n_domains + 1 + self._per_axis(n_domains) + 3

    @single_threaded
    def _fit(self, mixtures: FloatArray, fidelity: FloatArray | None, t: FloatArray) -> None:
        h = simplex_rows(mixtures)
        s = _fidelity(fidelity)
        n, d = h.shape
        if np.all(np.ptp(s, axis=0) <= 0):
            raise FitError("scaling law needs runs at more than one fidelity")
        m = s.shape[1]
        need = self.min_runs(d) + (m - 1) * self._per_axis(d)
        if n < need:
            raise NotEnoughDataError("scaling law needs more runs than parameters", need, n)
        layout = _Layout(d, m, self.joint)
        k = t.shape[1]
        theta0 = self._starts(layout, t)  # (S, k, p)
        n_s = theta0.shape[0]
        fit = levenberg_marquardt(
            _model(h, s, layout), theta0.reshape(n_s * k, -1), np.tile(t.T, (n_s, 1)), max_iter=self.max_iter
        )
        best = np.argmin(fit.objective.reshape(n_s, k), axis=0)
        self.theta_ = fit.theta.reshape(n_s, k, -1)[best, np.arange(k)]
        self.layout_ = layout

    def _starts(self, layout: _Layout, t: FloatArray) -> FloatArray:
        """Random starts: floor below the data, mixture term and scale terms each a share of the range."""
        rng = np.random.default_rng(self.seed)
        k = t.shape[1]
        lo, span = t.min(axis=0), np.maximum(np.ptp(t, axis=0), 1e-9)
        out = []
        for _ in range(max(self.n_starts, 1)):
            th = np.zeros((k, layout.size))
            th[:, layout.e] = lo - span * rng.uniform(0.1, 1.0, size=k)
            # 1 / sum_j C_j h_j^gamma ~ span / 3 for a uniform mixture.
            th[:, layout.log_c] = np.log(3.0 / span)[:, None] + rng.normal(0, 0.5, size=(k, layout.d))
            th[:, layout.log_gamma] = np.log(rng.uniform(0.2, 1.0, size=(k, layout.d)))
            for a in range(layout.m):
                th[:, layout.log_alpha(a)] = np.log(rng.uniform(0.5, 3.0, size=k))
                th[:, layout.amp(a)] = np.log(span / 3.0)[:, None]
            out.append(th)
        return np.stack(out)

    def _predict(self, x: FloatArray, fidelity: FloatArray | None) -> FloatArray:
        model = _model(simplex_rows(x), _fidelity(fidelity), self.layout_)
        pred, _ = model(self.theta_, np.arange(len(self.theta_)), False)
        return pred.T

    def params(self) -> dict[str, FloatArray]:
        """Named parameters per metric: ``E (k,)``, ``C, gamma (k, d)``, ``alpha (k, m)``, ``log_A``."""
        lay, th = self.layout_, self.theta_
        out = {
            "E": th[:, lay.e],
            "C": np.exp(th[:, lay.log_c]),
            "gamma": np.exp(th[:, lay.log_gamma]),
            "alpha": np.exp(np.stack([th[:, lay.log_alpha(a)] for a in range(lay.m)], axis=1)),
        }
        # (k, m) additive; (k, m, d) joint: log amplitude at each pure-domain vertex.
        log_a = np.stack([th[:, lay.amp(a)] for a in range(lay.m)], axis=1)
        out["log_A"] = log_a if lay.joint else log_a[:, :, 0]
        return out


class _Layout:
    """Where each parameter lives in the flat vector of one metric's law.

    Per fidelity axis: ``log alpha`` then the log amplitude, a scalar (additive) or one value per domain
    (joint; the log amplitude at each pure-domain vertex, linear in between, since on the simplex a
    separate intercept would not be identified).
    """

    def __init__(self, d: int, m: int, joint: bool) -> None:
        self.d, self.m, self.joint = d, m, joint
        self.e = 0
        self.log_c = slice(1, 1 + d)
        self.log_gamma = slice(1 + d, 1 + 2 * d)
        self.per_axis = 1 + (d if joint else 1)
        self.size = 1 + 2 * d + m * self.per_axis

    def _base(self, a: int) -> int:
        return 1 + 2 * self.d + a * self.per_axis

    def log_alpha(self, a: int) -> int:
        return self._base(a)

    def amp(self, a: int) -> slice:
        return slice(self._base(a) + 1, self._base(a) + self.per_axis)


def _fidelity(fidelity: FloatArray | None) -> FloatArray:
    if fidelity is None:
        raise FitError("scaling law needs fidelity coordinates (e.g. model size, tokens)")
    if fidelity.shape[1] == 0:
        raise FitError("scaling law needs at least one fidelity axis")
    return fidelity


def _model(h: FloatArray, s: FloatArray, lay: _Layout) -> BatchModel:
    """Batched predictions and Jacobian of the law for fixed inputs ``h (n, d)``, ``s (n, m)``."""
    log_h = np.log(np.where(h > 0, h, 1.0))
    present = h > 0

    def model(theta: FloatArray, rows: np.ndarray, with_jac: bool) -> tuple[FloatArray, FloatArray | None]:
        c = np.exp(np.clip(theta[:, lay.log_c], -MAX_LOG, MAX_LOG))  # (b, d)
        gamma = np.exp(np.clip(theta[:, lay.log_gamma], -MAX_LOG, MAX_LOG))
        hg = np.where(present[None], np.exp(np.clip(gamma[:, None, :] * log_h[None], -700, 700)), 0.0)
        parts = c[:, None, :] * hg  # (b, n, d)
        total = np.maximum(parts.sum(axis=2), 1e-300)
        pred = theta[:, lay.e : lay.e + 1] + 1.0 / total
        terms = []
        for a in range(lay.m):
            alpha = np.exp(np.clip(theta[:, lay.log_alpha(a)], -MAX_LOG, MAX_LOG))[:, None]
            log_amp = theta[:, lay.amp(a)] @ h.T if lay.joint else theta[:, lay.amp(a)]
            term = np.exp(np.clip(log_amp - alpha * s[None, :, a], -700, 700))
            terms.append((alpha, term))
            pred = pred + term
        if not with_jac:
            return pred, None
        jac = np.zeros((*pred.shape, lay.size))
        jac[:, :, lay.e] = 1.0
        inv2 = -1.0 / total**2
        jac[:, :, lay.log_c] = inv2[:, :, None] * parts
        jac[:, :, lay.log_gamma] = inv2[:, :, None] * parts * gamma[:, None, :] * log_h[None]
        for a, (alpha, term) in enumerate(terms):
            jac[:, :, lay.log_alpha(a)] = -term * alpha * s[None, :, a]
            jac[:, :, lay.amp(a)] = term[:, :, None] * h[None] if lay.joint else term[:, :, None]
        return pred, jac

    return model


class ScalingAdditiveLaw(ScalingMixingLaw):
    """Shukor et al.'s additive law: the scale terms do not depend on the mixture."""

    name: ClassVar[str] = "scaling_additive"
    joint: ClassVar[bool] = False


class ScalingJointLaw(ScalingMixingLaw):
    """Shukor et al.'s joint law: each scale term's amplitude depends on the mixture."""

    name: ClassVar[str] = "scaling_joint"
    joint: ClassVar[bool] = True
