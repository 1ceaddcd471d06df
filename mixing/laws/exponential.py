"""The exponential mixing-law family shared by the Data Mixing Law and Aioli's static law.

Both model each metric as ``L_i(r) = c_i + k_i * exp(sum_j t_ij r_j)``. On the simplex ``sum_j r_j = 1``,
so ``|k_i|`` is not separately identified: ``k * exp(t . r) = sign(k) exp((t + log|k|) . r)``. The fit
therefore works with ``c``, ``t' = t + log|k|`` and a fixed orientation ``sign(k)`` (no flat direction for
the optimiser to wander along) and reports the canonical pair ``k = sign * exp(mean t')``,
``t = t' - mean t'``. The orientation is +1 for losses (a floor below the data); metrics that are
maximised (accuracies) get -1 (a ceiling above it).

The correlation search (as Aioli does it) gives good starting points cheaply: for a grid of candidate
floors ``c`` below the smallest value (or ceilings above the largest), ``log|L - c|`` is regressed
linearly on the mixture; the floor whose regression correlates best is kept, which also decides the
orientation. All metrics and all grid values share one pseudo-inverse.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from mixing.laws.robust import BatchModel
from mixing.simplex import FloatArray

#: Floors tried below the smallest observed loss, as fractions of the loss range.
FLOOR_GRID = np.logspace(-3, 1, 33)


def simplex_rows(mixtures: ArrayLike) -> FloatArray:
    """Mixtures with every row rescaled to sum to one (proxy-run tables are often rounded)."""
    x = np.atleast_2d(np.asarray(mixtures, dtype=np.float64))
    total = x.sum(axis=1, keepdims=True)
    return np.where(total > 0, x / np.where(total > 0, total, 1.0), 1.0 / x.shape[1])


@dataclass(frozen=True)
class ExpLawParams:
    """Fitted ``c (k,)``, exponent rows ``t' (k, d)`` (log|k| folded in) and orientation ``sign (k,)``."""

    c: FloatArray
    t: FloatArray
    sign: FloatArray

    @property
    def k(self) -> FloatArray:
        return self.sign * np.exp(self.t.mean(axis=1))

    @property
    def t_centred(self) -> FloatArray:
        return self.t - self.t.mean(axis=1, keepdims=True)

    def predict(self, x: FloatArray) -> FloatArray:
        """``(n, k)`` predictions for simplex rows ``x``."""
        return self.c[None, :] + self.sign[None, :] * np.exp(np.clip(x @ self.t.T, -700, 700))


def exp_law_model(x: FloatArray, sign: FloatArray) -> BatchModel:
    """The batched model ``theta (B, 1 + d) -> c + sign * exp(x @ t)`` and its Jacobian, for the LM solver."""

    def model(theta: FloatArray, rows: np.ndarray, with_jac: bool) -> tuple[FloatArray, FloatArray | None]:
        e = sign[rows, None] * np.exp(np.clip(theta[:, 1:] @ x.T, -700, 700))
        pred = theta[:, :1] + e
        if not with_jac:
            return pred, None
        jac = np.concatenate([np.ones((*e.shape, 1)), e[:, :, None] * x[None, :, :]], axis=2)
        return pred, jac

    return model


def correlation_search(
    x: FloatArray, y: FloatArray, grid: FloatArray = FLOOR_GRID
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Per metric (columns of ``y``): floor ``c``, exponents ``t'``, orientation of the best log-linear fit.

    Returns ``c (k,)``, ``t' (k, x.shape[1])`` and ``sign (k,)``; with simplex rows in ``x`` no intercept
    column is needed (other callers include one).
    """
    k = y.shape[1]
    both = np.concatenate([y, -y], axis=1)  # orientation +1, then -1
    pinv = np.linalg.pinv(x)
    lo = both.min(axis=0)
    span = np.maximum(both.max(axis=0) - lo, 1e-12)
    floors = lo[None, :] - span[None, :] * grid[:, None]  # (g, 2k)
    z = np.log(both[None, :, :] - floors[:, None, :])  # (g, n, 2k)
    coef = np.einsum("dn,gnk->gkd", pinv, z)  # (g, 2k, d)
    fitted = np.einsum("nd,gkd->gnk", x, coef)
    corr = _column_corr(fitted, z)  # (g, 2k)
    corr = np.where(np.isfinite(corr), corr, -np.inf)
    best = np.argmax(corr, axis=0)
    cols = np.arange(2 * k)
    quality = corr[best, cols]
    flip = quality[k:] > quality[:k]
    pick = np.where(flip, cols[k:], cols[:k])
    sign = np.where(flip, -1.0, 1.0)
    return sign * floors[best[pick], pick], coef[best[pick], pick], sign


def _column_corr(a: FloatArray, b: FloatArray) -> FloatArray:
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    den = np.sqrt((a**2).sum(axis=1) * (b**2).sum(axis=1))
    return (a * b).sum(axis=1) / np.where(den > 0, den, np.nan)
