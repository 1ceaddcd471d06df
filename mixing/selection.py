"""Choosing a law: the selection rule, and the ensemble's honest out-of-fold score.

Rule: the law with the best cross-validated Spearman correlation of the *objective* (formed from its
per-metric predictions) wins; ties go to the lower cross-validated MAE. Rank correlation is what matters
for picking mixtures, and cross-validation is the only honest score available at fitting time. A law whose
cross-validated R² is below :data:`MIN_PLAUSIBLE_R2` is passed over while any other law is eligible: its
errors are tens of the targets' standard deviations, a fit that diverged on some fold, and its ranks there
are luck that the optimizer, which goes where the law is extreme, will not share.

Stacking (:mod:`mixing.laws.ensemble`): a convex combination of the laws' out-of-fold predictions. The
ensemble's own out-of-fold score comes from nested stacking (weights for fold f are fitted
on the other folds' out-of-fold predictions), so it competes fairly with the single laws.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from numpy.typing import ArrayLike

from mixing.laws.ensemble import plausible_members, stack_weights
from mixing.simplex import FloatArray


def nested_stack(oof: ArrayLike, target: ArrayLike, fold_of: ArrayLike) -> FloatArray:
    """Out-of-fold ensemble predictions ``(n,)``: each fold combined with weights learnt on the others."""
    p = np.asarray(oof, dtype=np.float64)
    t = np.asarray(target, dtype=np.float64)
    folds = np.asarray(fold_of)
    # Plausibility is judged on every fold at once: a member that diverges on one fold only would look
    # perfect to the weights learnt on the others, and get weight exactly where it is wild.
    ok = plausible_members(p.reshape(p.shape[0], p.shape[1], -1), t.reshape(t.shape[0], -1))
    out = np.full(p.shape[1:], np.nan)
    for f in np.unique(folds):
        test = folds == f
        w = np.full(p.shape[0], 1.0 / p.shape[0])  # nothing plausible: no basis for any weighting
        if ok.any():
            w[:] = 0.0
            w[ok] = stack_weights(p[ok][:, ~test], t[~test])
        out[test] = np.tensordot(w, p[:, test], axes=1)
    return out


#: Cross-validated R² below this (squared errors 100x the targets' variance) marks a diverged law.
#: Deliberately loose: a law that ranks well but is offset (e.g. one fidelity-blind law scored on runs
#: pooled over sizes) has R² well below 0 and stays eligible.
MIN_PLAUSIBLE_R2 = -100.0


def select_law(cv_scores: Mapping[str, Mapping[str, float | None] | None]) -> str | None:
    """The name with the best cross-validated Spearman (then lowest MAE), preferring plausible laws;
    None if nothing was scored."""
    best: tuple[bool, float, float] | None = None
    chosen = None
    for name, scores in cv_scores.items():
        if not scores:
            continue
        rho, mae, r2 = scores.get("spearman"), scores.get("mae"), scores.get("r2")
        diverged = bool(r2 is not None and np.isfinite(r2) and r2 < MIN_PLAUSIBLE_R2) \
            or bool(mae is not None and not np.isfinite(mae))
        key = (diverged, -_finite(rho, -np.inf), _finite(mae, np.inf))
        if best is None or key < best:
            best, chosen = key, name
    return chosen


def _finite(value: float | None, default: float) -> float:
    return float(value) if value is not None and np.isfinite(value) else default
