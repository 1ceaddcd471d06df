"""What a run costs as a function of its fidelity, learned from the costs users report.

Compute grows about linearly in each scale axis (parameters, tokens), so the default model is affine in
the raw fidelity values, ``c(s) = c0 + sum_j c_j s_j`` with non-negative coefficients, fitted by
non-negative least squares on runs with a known cost. An affine fit needs runs at two or more distinct
fidelities; with fewer it falls back to cost proportional to the product of the axes (the ``6 N D`` rule:
with axes params and tokens that is training compute), scaled to the one observed level when there is
one. Only cost *ratios* matter to a cost-weighted acquisition, so the unit is whatever the user reports.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import nnls

from mixing.simplex import FloatArray

#: Predicted costs are floored at this fraction of the smallest observed cost: an affine fit can
#: extrapolate to zero or below at an unobserved cheap fidelity, and a zero cost would make it free.
_FLOOR = 0.05


@dataclass(frozen=True)
class CostModel:
    """``cost(f) = scale * prod(f)`` if ``coef`` is empty, else ``coef[0] + coef[1:] @ f``; exactly
    ``level_costs[i]`` at ``levels[i]`` ``(k, m)``, the levels whose cost is reported or declared (an
    affine fit with non-negative coefficients cannot pass through, e.g., 1 at 1.25e5 and 16.3 at 6.4e5)."""

    coef: FloatArray
    scale: float
    floor: float
    source: str
    levels: FloatArray = field(default_factory=lambda: np.zeros((0, 0)))
    level_costs: FloatArray = field(default_factory=lambda: np.zeros(0))

    def _level_match(self, f: FloatArray) -> np.ndarray:
        """``(n, k)`` bool: row ``i`` of ``f`` ``(n, m)`` is at ``levels[j]``."""
        if not len(self.levels) or self.levels.shape[1] != f.shape[1]:
            return np.zeros((len(f), 0), dtype=bool)
        return np.asarray(np.all(f[:, None, :] == self.levels[None, :, :], axis=2))

    def known(self, fidelities: FloatArray) -> np.ndarray:
        """``(n,)`` bool: whether each row of ``fidelities`` ``(n, m)`` is at a level whose cost was reported
        or declared, not forecast."""
        return np.asarray(self._level_match(np.atleast_2d(np.asarray(fidelities, dtype=np.float64))).any(axis=1))

    def __call__(self, fidelities: FloatArray) -> FloatArray:
        f = np.atleast_2d(np.asarray(fidelities, dtype=np.float64))
        if self.coef.size:
            raw = self.coef[0] + f @ self.coef[1:]
        else:
            raw = (
                self.scale * np.prod(np.maximum(f, 0.0), axis=1)
                if f.shape[1]
                else np.full(len(f), self.scale)
            )
        match = self._level_match(f)
        if match.shape[1]:
            raw = np.where(match.any(axis=1), self.level_costs[match.argmax(axis=1)], raw)
        return np.maximum(raw, self.floor)


def fit_cost_model(fidelities: FloatArray, costs: FloatArray, declared: FloatArray | None = None) -> CostModel:
    """Fit :class:`CostModel` to raw fidelities ``(n, m)`` and costs ``(n,)`` (NaN or <= 0 = unknown).

    ``declared`` ``(k, m + 1)``: rows of (fidelity values, cost) the caller knows; each stands in for a
    reported cost at a level no run has reported one for yet, so the forecast of an unseen level's cost is
    the caller's, not an extrapolation along the axes.
    """
    f = np.atleast_2d(np.asarray(fidelities, dtype=np.float64))
    c = np.asarray(costs, dtype=np.float64).reshape(-1)
    known = np.isfinite(c) & (c > 0) & np.all(np.isfinite(f), axis=1)
    f, c = f[known], c[known]
    if declared is not None and len(declared) and declared.shape[1] == f.shape[1] + 1:
        seen = {row.tobytes() for row in f}
        extra = np.array([row for row in declared if row[:-1].tobytes() not in seen]).reshape(-1, f.shape[1] + 1)
        f, c = np.concatenate([f, extra[:, :-1]]), np.concatenate([c, extra[:, -1]])
    if len(c) == 0:
        return CostModel(np.zeros(0), 1.0, 1e-12, "default: proportional to the product of the fidelity axes")
    floor = _FLOOR * float(c.min())
    levels = np.unique(f, axis=0)
    if f.shape[1] == 0 or len(levels) < 2:
        size = np.prod(np.maximum(f, 0.0), axis=1) if f.shape[1] else np.ones(len(c))
        scale = float(np.median(c / np.maximum(size, 1e-300)))
        return CostModel(
            np.zeros(0), scale, floor, "proportional to the product of the axes, scaled to reports",
            levels, np.array([float(np.median(c))]) if len(levels) else np.zeros(0),
        )
    design = np.column_stack([np.ones(len(c)), f])
    # Columns are rescaled so NNLS is not ill-conditioned by raw values like 6e7 parameters.
    col_scale = np.maximum(np.abs(design).max(axis=0), 1e-300)
    coef, _ = nnls(design / col_scale, c)
    level_of = np.unique(f, axis=0, return_inverse=True)[1].reshape(-1)
    medians = np.array([np.median(c[level_of == i]) for i in range(len(levels))])
    return CostModel(coef / col_scale, 1.0, floor, "affine in the fidelity axes, fitted to reported costs; "
                     "at a reported or declared level, its median cost", levels, medians)
