"""Continual pretraining: the critical mixture ratio with an interval, and how well the CMR law fits.

Inputs everywhere: ``ratios (n,)`` the domain share ``r`` of each run, ``tokens (n,)`` its training tokens
``T``, ``losses (n, 2)`` its (general, domain) losses. The law is :class:`~mixing.laws.cmr.CMRLaw`.

* :func:`critical_mixture_ratio`: the CMR at the target tokens and the losses predicted there, each with a
  delta-method interval on Student's t: ``point -/+ t(n - 4) * se``, ``se`` from the answer's gradient in
  the parameters through each group's linearised least-squares covariance (residual variance over the
  ``n - 4`` residual degrees of freedom). With four parameters per group, 8-12 runs leave 4-8 degrees of
  freedom, and intervals that take the estimated noise for known under-cover: on synthetic runs from 8-12
  runs the residual bootstrap's percentile interval covered 73-82% for a nominal 90%, this one 83-87% on
  the seeds it was chosen on and 86-94% over every design on others; it needs no refits
  (``bench/cmr_interval_selection.py``, bench/RESULTS.md).
* :func:`validate_cmr_law`: K-fold cross-validated error, and the error on the runs at the largest token
  count when fitted on the smaller ones (the extrapolation the CMR is used for).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats
from sklearn.base import clone
from sklearn.model_selection import KFold

from mixing.errors import InputShapeError, MixingError
from mixing.laws.cmr import (
    N_PARAMS,
    CMRLaw,
    CriticalRatio,
    GroupParams,
    ToleranceKind,
    at_critical_ratio,
    general_limit,
)
from mixing.simplex import FloatArray

#: Central-difference step of the delta method, relative to ``1 + |parameter|``.
FD_STEP = 1e-6


@dataclass(frozen=True)
class Interval:
    lower: float
    upper: float


@dataclass(frozen=True)
class CMRAnswer:
    """The critical mixture ratio, the losses predicted there, and their intervals."""

    point: CriticalRatio
    ratio_interval: Interval
    general_interval: Interval
    domain_interval: Interval
    params: dict[str, GroupParams]
    #: Residual degrees of freedom of each group's fit (runs minus four parameters): the t quantile's.
    residual_dof: int


@dataclass(frozen=True)
class GroupErrors:
    """Mean absolute error of each group's predicted loss."""

    general: float
    domain: float


@dataclass(frozen=True)
class CMRValidation:
    #: K-fold cross-validated MAE (None when a fold could not be fitted) and the number of folds.
    cv: GroupErrors | None
    folds: int
    #: MAE on the runs at ``heldout_tokens`` (the largest), fitted on the smaller token counts; None when
    #: those cannot be fitted (fewer runs, one token count).
    heldout: GroupErrors | None
    heldout_tokens: float
    n_heldout: int


def design(ratios: ArrayLike, tokens: ArrayLike, losses: ArrayLike) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Mixtures ``(n, 2)`` of (general, domain) shares, tokens ``(n, 1)`` and losses ``(n, 2)``, checked."""
    r = np.asarray(ratios, dtype=np.float64).reshape(-1)
    t = np.asarray(tokens, dtype=np.float64).reshape(-1)
    y = np.asarray(losses, dtype=np.float64)
    if len(t) != len(r) or y.shape != (len(r), 2):
        raise InputShapeError(f"need one token count and two losses per ratio ({len(r)}); got {len(t)} and {y.shape}")
    if np.any((r < 0) | (r > 1)):
        raise InputShapeError("domain ratios must lie in [0, 1]")
    return np.column_stack([1.0 - r, r]), t[:, None], y


def critical_mixture_ratio(ratios: ArrayLike, tokens: ArrayLike, losses: ArrayLike, *, base_general_loss: float,
                           tolerance: float, target_tokens: float,
                           kind: ToleranceKind = ToleranceKind.absolute, law: CMRLaw | None = None,
                           level: float = 0.9) -> CMRAnswer:
    """The CMR at ``target_tokens`` with ``level`` intervals (see the module docstring). The ratio's interval
    is clipped to ``[0, 1]``; a clipped CMR (no ratio feasible, or every ratio) has no gradient and gets an
    interval of its point."""
    x, t, y = design(ratios, tokens, losses)
    fitted = (law or CMRLaw()).fit(x, t, y)
    point = fitted.critical_ratio(base_general_loss, tolerance, target_tokens, kind)
    centre = np.array([point.ratio, point.general_loss, point.domain_loss])
    dof = len(y) - N_PARAMS
    arm = float(stats.t.ppf(0.5 + level / 2.0, dof)) * delta_se(
        fitted, x, t, y, general_limit(base_general_loss, tolerance, kind), target_tokens)
    lo, hi = centre - arm, centre + arm
    return CMRAnswer(point=point, ratio_interval=Interval(max(float(lo[0]), 0.0), min(float(hi[0]), 1.0)),
                     general_interval=Interval(float(lo[1]), float(hi[1])),
                     domain_interval=Interval(float(lo[2]), float(hi[2])),
                     params=fitted.params(), residual_dof=dof)


def delta_se(law: CMRLaw, x: FloatArray, t: FloatArray, y: FloatArray, limit: float,
             target_tokens: float) -> FloatArray:
    """Standard errors ``(3,)`` of the answer (CMR, general and domain loss there) by the delta method: its
    gradient in the parameters (central differences) through each group's linearised covariance."""
    cov = law.covariance(x, t, y)
    theta = law.theta_
    grad = np.zeros((3, *theta.shape))
    for g, i in np.ndindex(theta.shape):
        step = np.zeros_like(theta)
        step[g, i] = FD_STEP * (1.0 + abs(theta[g, i]))
        grad[:, g, i] = (answer_at(law, limit, target_tokens, theta + step)
                         - answer_at(law, limit, target_tokens, theta - step)) / (2.0 * step[g, i])
    return np.sqrt(np.einsum("kgi,gij,kgj->k", grad, cov, grad))


def answer_at(law: CMRLaw, limit: float, target_tokens: float, theta: FloatArray | None = None) -> FloatArray:
    """(CMR, general loss, domain loss) ``(3,)`` at general-loss ``limit`` and ``target_tokens`` of ``law`` (or
    of its form with parameters ``theta``)."""
    ratio, _, general, domain = at_critical_ratio(law.theta_ if theta is None else theta, law.offset,
                                                  float(np.log(target_tokens)) - law.log_t_ref_, limit)
    return np.array([ratio, general, domain])


def validate_cmr_law(ratios: ArrayLike, tokens: ArrayLike, losses: ArrayLike, *, folds: int = 5, seed: int = 0,
                     law: CMRLaw | None = None) -> CMRValidation:
    """Cross-validated and larger-token held-out errors of the CMR law on these runs."""
    x, t, y = design(ratios, tokens, losses)
    base = law or CMRLaw()
    k = max(2, min(folds, len(y)))
    pred = np.full_like(y, np.nan)
    for train, test in KFold(k, shuffle=True, random_state=seed).split(x):
        pred[test] = _fit_predict(base, x, t, y, train, test)
    cv = None if np.isnan(pred).any() else _errors(pred, y)
    top = float(t.max())
    test_rows = t[:, 0] == top
    held = _fit_predict(base, x, t, y, np.flatnonzero(~test_rows), np.flatnonzero(test_rows))
    heldout = None if np.isnan(held).any() else _errors(held, y[test_rows])
    return CMRValidation(cv=cv, folds=k, heldout=heldout, heldout_tokens=top, n_heldout=int(test_rows.sum()))


def _fit_predict(law: CMRLaw, x: FloatArray, t: FloatArray, y: FloatArray, train: np.ndarray,
                 test: np.ndarray) -> FloatArray:
    """Losses predicted at ``test`` by the law fitted on ``train``; NaN when it cannot be fitted there."""
    try:
        fitted = clone(law).set_params(warm_start=False).fit(x[train], t[train], y[train])
    except MixingError:
        return np.full((len(test), 2), np.nan)
    return fitted.predict(x[test], t[test])


def _errors(pred: FloatArray, y: FloatArray) -> GroupErrors:
    mae = np.mean(np.abs(pred - y), axis=0)
    return GroupErrors(general=float(mae[0]), domain=float(mae[1]))
