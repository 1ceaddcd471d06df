"""Chart data the dashboard computes server-side, so the browser draws a few hundred points at any run count.

Pure functions of the ``mixing`` arrays (a :class:`~mixing.problem.Problem` and its
:class:`~mixing.problem.Observations`); the routes feed them from the store.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mixing.methods.common import nearest_fidelity_rows
from mixing.problem import Observations, Problem
from mixing.simplex import FloatArray

#: Default cap on the points of one best-so-far curve: more than a chart's pixel columns need.
MAX_POINTS = 400


@dataclass(frozen=True)
class Curve:
    """Best objective so far at one fidelity level, against the cumulative cost of all completed runs."""

    fidelity: list[float]
    n_runs: int
    best: float
    points: list[tuple[float, float]]


@dataclass(frozen=True)
class Progress:
    #: "cost" when every completed run reported a cost; otherwise "runs" (x counts completed runs), since
    #: a cumulative sum that silently skips unknown costs would understate the spend.
    x_unit: str
    total: float
    curves: list[Curve]


@dataclass(frozen=True)
class BestRun:
    """The best observed run at the fidelity level closest to the target (the one that predicts it best)."""

    index: int
    value: float
    fidelity: list[float]


def improvement_points(loss: FloatArray) -> np.ndarray:
    """Indices where the running minimum of ``loss`` strictly improves, plus the last index.

    A best-so-far curve is a step function, so these points reproduce it exactly; with runs in random
    order they number about ``ln(n)``.
    """
    if loss.size == 0:
        return np.zeros(0, dtype=np.int64)
    best = np.minimum.accumulate(loss)
    idx = np.flatnonzero(np.r_[True, best[1:] < best[:-1]])
    if idx[-1] != loss.size - 1:
        idx = np.r_[idx, loss.size - 1]
    return idx


def thin_steps(x: FloatArray, idx: np.ndarray, max_points: int) -> np.ndarray:
    """At most ``max_points`` of the step points ``idx`` (x non-decreasing): the first, then the last in each
    of ``max_points - 1`` equal-width x bins.

    For a non-increasing step function the last point of a bin is the value the curve has when it leaves
    the bin, so the thinned curve differs from the full one only inside bins narrower than a pixel.
    """
    if max_points < 2:
        raise ValueError("max_points must be at least 2")
    if idx.size <= max_points:
        return idx
    xs = x[idx]
    span = xs[-1] - xs[0]
    if span <= 0:
        return idx[[0, -1]]
    n_bins = max_points - 1
    bins = np.minimum(((xs - xs[0]) / span * n_bins).astype(np.int64), n_bins - 1)
    last_in_bin = np.r_[bins[1:] != bins[:-1], True]
    keep = idx[last_in_bin]
    return keep if keep[0] == idx[0] else np.r_[idx[0], keep]


def progress(problem: Problem, obs: Observations, max_points: int = MAX_POINTS) -> Progress:
    """Best-so-far objective per fidelity level against cumulative cost, runs in the order given."""
    has_cost = obs.n > 0 and bool(np.all(np.isfinite(obs.costs)))
    x = np.cumsum(obs.costs if has_cost else np.ones(obs.n))
    loss = problem.loss(obs.metrics) if obs.n else np.zeros(0)
    curves: list[Curve] = []
    for level, rows in _levels(obs):
        level_loss = loss[rows]
        keep = thin_steps(x[rows], improvement_points(level_loss), max_points)
        best = np.minimum.accumulate(level_loss)
        curves.append(Curve(
            fidelity=[float(v) for v in level], n_runs=int(rows.size),
            best=float(problem.sign * best[-1]),
            points=[(float(x[rows[i]]), float(problem.sign * best[i])) for i in keep],
        ))
    total = float(x[-1]) if obs.n else 0.0
    return Progress(x_unit="cost" if has_cost else "runs", total=total, curves=curves)


def best_observed(problem: Problem, obs: Observations) -> BestRun | None:
    if obs.n == 0:
        return None
    rows = nearest_fidelity_rows(problem, obs, problem.fidelity.target, 1)
    j = int(rows[int(np.argmin(problem.loss(obs.metrics[rows])))])
    return BestRun(index=j, value=float(problem.objective(obs.metrics[j])[0]),
                   fidelity=[float(v) for v in obs.fidelities[j]])


def _levels(obs: Observations) -> list[tuple[FloatArray, np.ndarray]]:
    """(fidelity level, row indices in order) for each distinct level, levels ascending."""
    if obs.n == 0:
        return []
    if obs.fidelities.shape[1] == 0:
        return [(np.zeros(0), np.arange(obs.n))]
    levels, inverse = np.unique(obs.fidelities, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    return [(levels[i], np.flatnonzero(inverse == i)) for i in range(len(levels))]
