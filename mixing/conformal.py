"""Honest intervals for point predictors: split-conformal widths from K-fold out-of-fold residuals.

Laws without their own uncertainty (trees, linear fits) still owe the user an interval; the quantile of
out-of-fold absolute errors gives one with finite-sample coverage under exchangeability.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from sklearn.model_selection import KFold

from mixing.problem import Problem
from mixing.simplex import FloatArray


def oof_predictions(
    fit_predict: Callable[[np.ndarray, np.ndarray], FloatArray], n: int, folds: int, seed: int
) -> FloatArray:
    """Out-of-fold predictions: ``fit_predict(train_idx, test_idx)`` returns predictions for test_idx."""
    out: FloatArray | None = None
    for train, test in KFold(n_splits=min(folds, n), shuffle=True, random_state=seed).split(np.arange(n)):
        pred = np.asarray(fit_predict(train, test), dtype=np.float64)
        if out is None:
            out = np.full((n, *pred.shape[1:]), np.nan)
        out[test] = pred
    assert out is not None
    return out


def conformal_halfwidth(residuals: FloatArray, coverage: float = 0.9) -> float:
    """The conformal quantile of absolute residuals for the requested coverage."""
    r = np.sort(np.abs(np.asarray(residuals, dtype=np.float64).reshape(-1)))
    r = r[np.isfinite(r)]
    if r.size == 0:
        return float("nan")
    rank = int(np.ceil((r.size + 1) * coverage)) - 1
    return float(r[min(rank, r.size - 1)])


def conformal_metric_halfwidths(problem: Problem, oof: FloatArray, y: FloatArray) -> tuple[float, FloatArray]:
    """Conformal 90% half-widths of the objective and of each metric ``(k,)`` from out-of-fold predicted
    metrics ``oof`` and measured ``y`` (both ``(n, k)``): the objective's own width, not a sum of the
    metrics', since their errors partly cancel."""
    per_metric = np.array([conformal_halfwidth(oof[:, j] - y[:, j]) for j in range(y.shape[1])])
    return conformal_halfwidth(problem.loss(oof) - problem.loss(y)), per_metric
