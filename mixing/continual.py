"""Continual pretraining: the critical mixture ratio with a bootstrap interval, and how well the CMR law fits.

Inputs everywhere: ``ratios (n,)`` the domain share ``r`` of each run, ``tokens (n,)`` its training tokens
``T``, ``losses (n, 2)`` its (general, domain) losses. The law is :class:`~mixing.laws.cmr.CMRLaw`.

* :func:`critical_mixture_ratio`: the CMR at the target tokens and the losses predicted there, each with a
  percentile interval from a residual bootstrap (seeded): fitted losses plus resampled residuals of the
  same group, each divided by ``sqrt(1 - leverage)`` for what the fit absorbed of it, refitted from the
  point estimate. Resampling residuals rather than runs keeps every bootstrap sample on the design's
  (r, T) grid, which a few runs per token count would not survive.
* :func:`validate_cmr_law`: K-fold cross-validated error, and the error on the runs at the largest token
  count when fitted on the smaller ones (the extrapolation the CMR is used for).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from sklearn.base import clone
from sklearn.model_selection import KFold

from mixing.errors import InputShapeError, MixingError
from mixing.laws.cmr import CMRLaw, CriticalRatio, GroupParams, ToleranceKind
from mixing.simplex import FloatArray


@dataclass(frozen=True)
class Interval:
    lower: float
    upper: float


@dataclass(frozen=True)
class CMRAnswer:
    """The critical mixture ratio, the losses predicted there, and their bootstrap intervals."""

    point: CriticalRatio
    ratio_interval: Interval
    general_interval: Interval
    domain_interval: Interval
    params: dict[str, GroupParams]
    #: Bootstrap refits that succeeded (the intervals are their percentiles).
    n_bootstrap: int


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
                           n_bootstrap: int = 200, level: float = 0.9, seed: int = 0) -> CMRAnswer:
    """The CMR at ``target_tokens`` with ``level`` percentile intervals (see the module docstring)."""
    x, t, y = design(ratios, tokens, losses)
    fitted = (law or CMRLaw()).fit(x, t, y)
    point = fitted.critical_ratio(base_general_loss, tolerance, target_tokens, kind)
    at = np.array([[1.0 - point.ratio, point.ratio]]), np.array([[target_tokens]])
    pred = fitted.predict(x, t)
    # Residuals divided by sqrt(1 - leverage), then centred: raw residuals of a fit are smaller than its
    # errors, most at the runs that pull their fitted value (Davison & Hinkley's modified residuals).
    resid = (y - pred) / np.sqrt(np.clip(1.0 - fitted.leverage(x, t), 1e-3, None))
    resid = resid - resid.mean(axis=0)
    rng = np.random.default_rng(seed)
    start = copy.deepcopy(fitted).set_params(warm_start=True)
    draws = []
    for _ in range(n_bootstrap):
        idx = rng.integers(0, len(y), size=(len(y), 2))
        sample = pred + np.take_along_axis(resid, idx, axis=0)
        warm = copy.deepcopy(start)  # each refit starts from the point estimate, not from the previous draw
        try:
            warm.fit(x, t, sample)
        except MixingError:
            continue
        cr = warm.critical_ratio(base_general_loss, tolerance, target_tokens, kind)
        general, domain = warm.predict(*at)[0]
        draws.append((cr.ratio, general, domain))
    tail = 50.0 * (1.0 - level)
    if draws:
        lo, hi = np.percentile(np.asarray(draws), [tail, 100.0 - tail], axis=0)
    else:
        lo = hi = np.array([point.ratio, point.general_loss, point.domain_loss])
    return CMRAnswer(point=point, ratio_interval=Interval(float(lo[0]), float(hi[0])),
                     general_interval=Interval(float(lo[1]), float(hi[1])),
                     domain_interval=Interval(float(lo[2]), float(hi[2])),
                     params=fitted.params(), n_bootstrap=len(draws))


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
