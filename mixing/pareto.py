"""Trade-off fronts: the mixtures no other beats on every axis, predicted over a candidate sample and
observed among the runs, and the hypervolume that scores a front.

The axes (:func:`front_axes`): the objective, each constrained metric (the trade-off a constraint cuts)
and each further objective (:class:`~mixing.problem.TradeOff`); without either, the objective's own
metrics when it averages several. Each axis has a
direction: the objective's goal, ``<=`` constraints lower, ``>=`` higher. Internally every axis is turned
into *lower is better* (``sign``) so one dominance test serves all.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from mixing.methods.base import SearchContext
from mixing.methods.common import chunked, nearest_fidelity_rows
from mixing.outcomes import resolve
from mixing.problem import Problem
from mixing.simplex import FloatArray

#: Predicted front points returned at most (an even subsample along the first axis beyond that).
MAX_FRONT = 200


@dataclass(frozen=True)
class FrontAxis:
    """One axis of a front: the objective (``metric`` None) or a metric column, and its direction."""

    name: str
    metric: int | None
    minimize: bool
    #: The absolute bound of the outcome constraint on this metric, if one applies.
    bound: float | None = None

    @property
    def sign(self) -> float:
        return 1.0 if self.minimize else -1.0


class MetricModel(Protocol):
    """A fit that predicts the objective and metrics with 90% half-widths at the target (the laws' and
    RegMix's fits; BO's :meth:`~mixing.methods.bo.BayesOptMethod.front_model`)."""

    def objective_intervals(self, problem: Problem, mixtures: FloatArray) -> tuple[FloatArray, FloatArray]:
        """The objective in the user's orientation and its half-width, ``(n,)`` each."""
        ...

    def metric_intervals(self, problem: Problem, mixtures: FloatArray,
                         columns: np.ndarray | None = None) -> tuple[FloatArray, FloatArray]:
        """Values and half-widths ``(n, c)`` of the metric ``columns`` (default: the constrained ones)."""
        ...


@dataclass(frozen=True)
class Front:
    """A predicted front over candidates and the observed runs on the same axes.

    ``mixtures`` ``(p, d)``, ``values``/``lower``/``upper`` ``(p, m)`` in the axes' own orientation and
    ``feasibility`` ``(p,)`` (1 without constraints); ``observed`` ``(n, m)`` for the runs ``observed_rows``
    of the observations (those at the fitted level), ``observed_front`` marking the non-dominated ones.
    """

    axes: tuple[FrontAxis, ...]
    mixtures: FloatArray
    values: FloatArray
    lower: FloatArray
    upper: FloatArray
    feasibility: FloatArray
    observed_rows: np.ndarray
    observed: FloatArray
    observed_front: np.ndarray


def front_axes(problem: Problem) -> list[FrontAxis]:
    """The objective, then each constrained metric and each trade-off (a metric once, its first direction);
    without either, the objective's metrics."""
    named = [(c.metric, c.upper) for c in problem.outcome_constraints] + \
        [(t.metric, t.minimize) for t in problem.trade_offs]
    if named:
        firsts = {m: minimize for m, minimize in reversed(named)}
        order = list(dict.fromkeys(m for m, _ in named))
        return [FrontAxis("objective", None, problem.goal == "minimize")] + \
            [FrontAxis(problem.metric_names[m], m, firsts[m]) for m in order]
    objective = FrontAxis("objective", None, problem.goal == "minimize")
    used = np.flatnonzero(problem.metric_weights > 0)
    if len(used) < 2:
        return [objective]
    return [FrontAxis(problem.metric_names[j], int(j), problem.goal == "minimize") for j in used]


def non_dominated(points: FloatArray) -> np.ndarray:
    """Mask ``(n,)`` of rows of ``points`` ``(n, m)`` (lower is better on every axis) that no other row
    dominates (no worse everywhere, better somewhere). Non-finite rows are never on the front."""
    p = np.asarray(points, dtype=np.float64)
    ok = np.all(np.isfinite(p), axis=1)
    mask = np.zeros(len(p), dtype=bool)
    idx = np.flatnonzero(ok)
    order = idx[np.lexsort(p[idx].T[::-1])]  # by the first axis, ties by the next
    kept: list[int] = []
    for i in order:
        if kept:
            k = p[kept]
            if np.any(np.all(k <= p[i], axis=1) & np.any(k < p[i], axis=1)):
                continue
        kept.append(int(i))
    mask[kept] = True
    return mask


def hypervolume(points: FloatArray, reference: FloatArray) -> float:
    """Volume dominated by ``points`` ``(n, m)`` (lower is better) and bounded by ``reference`` ``(m,)``.

    Exact for two axes (a sweep); for more, BoTorch's box decomposition.
    """
    p = np.asarray(points, dtype=np.float64)
    ref = np.asarray(reference, dtype=np.float64)
    p = p[np.all(np.isfinite(p), axis=1) & np.all(p < ref, axis=1)]
    if len(p) == 0:
        return 0.0
    if p.shape[1] == 1:
        return float(ref[0] - p[:, 0].min())
    if p.shape[1] == 2:
        p = p[non_dominated(p)]
        p = p[np.argsort(p[:, 0])]
        widths = np.diff(np.append(p[:, 0], ref[0]))
        return float(np.sum(widths * (ref[1] - p[:, 1])))
    import torch
    from botorch.utils.multi_objective.hypervolume import Hypervolume

    return float(Hypervolume(torch.as_tensor(-ref)).compute(torch.as_tensor(-p[non_dominated(p)])))


def predicted_front(ctx: SearchContext, fitted: MetricModel, pool: FloatArray) -> Front:
    """The non-dominated predicted points of ``pool`` ``(n, d)`` under ``fitted``, and the observed front.

    Constraint axes carry the bound each resolves to; the feasibility of each front point is the
    probability that it meets every constraint (:mod:`mixing.outcomes`).
    """
    problem, obs = ctx.problem, ctx.observations
    axes = front_axes(problem)
    cols = np.array([a.metric for a in axes if a.metric is not None], dtype=np.intp)
    outcomes = resolve(problem, obs, lambda m: fitted.metric_intervals(problem, m))
    bounds = dict(zip(problem.constrained_metrics.tolist(), outcomes.bound.tolist(), strict=True))
    axes = [FrontAxis(a.name, a.metric, a.minimize, bounds.get(a.metric)) if a.metric is not None else a
            for a in axes]
    sign = np.array([a.sign for a in axes])

    def predict(x: FloatArray) -> FloatArray:
        """Values then half-widths per axis, ``(n, 2m)``."""
        objective, objective_half = fitted.objective_intervals(problem, x)
        values, half = [objective[:, None]], [objective_half[:, None]]
        if len(cols):
            v, hw = fitted.metric_intervals(problem, x, cols)
            values.append(v)
            half.append(hw)
        return np.concatenate([_order(np.concatenate(values, axis=1), axes, cols),
                               _order(np.concatenate(half, axis=1), axes, cols)], axis=1)

    both = chunked(predict, pool)
    m = len(axes)
    values, half = both[:, :m], both[:, m:]
    front = np.flatnonzero(non_dominated(values * sign))
    front = front[np.argsort(values[front, 0])]
    if len(front) > MAX_FRONT:
        front = front[np.linspace(0, len(front) - 1, MAX_FRONT).round().astype(int)]
    rows = nearest_fidelity_rows(problem, obs, problem.fidelity.target, 1)
    observed = observed_values(problem, axes, obs.metrics[rows])
    return Front(
        axes=tuple(axes),
        mixtures=pool[front],
        values=values[front],
        lower=values[front] - half[front],
        upper=values[front] + half[front],
        feasibility=outcomes.probability(pool[front]),
        observed_rows=rows,
        observed=observed,
        observed_front=non_dominated(observed * sign),
    )


def _order(columns: FloatArray, axes: list[FrontAxis], cols: np.ndarray) -> FloatArray:
    """``[objective, cols...]`` columns rearranged into axis order (the objective axis may be absent)."""
    where = {int(c): 1 + i for i, c in enumerate(cols)}
    return columns[:, [0 if a.metric is None else where[a.metric] for a in axes]]


def observed_values(problem: Problem, axes: list[FrontAxis] | tuple[FrontAxis, ...],
                    metrics: FloatArray) -> FloatArray:
    """Measured ``(n, m)`` values on the axes from a run metric matrix ``(n, k)``."""
    metrics = np.atleast_2d(metrics)
    return np.column_stack([problem.objective(metrics) if a.metric is None else metrics[:, a.metric] for a in axes])


__all__ = ["Front", "FrontAxis", "front_axes", "hypervolume", "non_dominated", "predicted_front"]
