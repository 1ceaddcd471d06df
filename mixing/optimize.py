"""The best mixture under a fitted law: RegMix's sample-and-average-top-k, then SLSQP for smooth laws.

Sampling finds the right region whatever the law (trees included) and averaging the k best candidates
guards against one over-optimistic prediction. For differentiable laws the top-k average and the best
samples then start SLSQP on the constrained simplex (bounds per domain, sum to one), which reaches the
law's actual optimum instead of the best of a finite sample; this matters more as the number of domains
grows and random samples cover the simplex ever more thinly. Gradients are forward differences,
evaluated as one batch of ``d + 1`` mixtures per step, so any vectorised ``predict_loss`` works. Forward
(not central) steps never leave the non-negative orthant, where laws with ``sqrt`` or ``log`` features
would break.

The candidate pool shrinks with the number of domains (``MAX_POOL_ENTRIES / d`` rows at most) so that 256
domains fit in memory; a quarter of it is drawn uniformly over the feasible set, the rest around the prior
as RegMix does, so an optimum far from the prior can still be found.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from scipy.optimize import minimize

from mixing.laws.threads import single_threaded
from mixing.sampling import prior_candidates, uniform_candidates
from mixing.search import average_top_k
from mixing.simplex import FloatArray, SimplexConstraints

LossFn = Callable[[FloatArray], FloatArray]
IntervalFn = Callable[[FloatArray], tuple[FloatArray, FloatArray]]
MAX_POOL_ENTRIES = 4_000_000
#: Pool size for differentiable laws: SLSQP refines the best samples, so a fifth of RegMix's pool suffices
#: and keeps a GP's prediction (the dominant cost) to a few seconds.
SMOOTH_POOL = 20_000
FD_STEP = 1e-6


@dataclass(frozen=True)
class OptimumResult:
    """The recommended mixture, its predicted loss (lower is better) and an interval when known."""

    mixture: FloatArray
    value: float
    lower: float | None
    upper: float | None
    details: dict[str, Any] = field(default_factory=dict)


def candidate_pool(
    n: int, constraints: SimplexConstraints, prior: ArrayLike | None, rng: np.random.Generator
) -> FloatArray:
    """``n`` feasible candidates (capped by memory): three quarters around the prior, a quarter uniform."""
    n = int(max(min(n, MAX_POOL_ENTRIES // constraints.n_domains), 16))
    n_uniform = n // 4
    return np.concatenate(
        [
            prior_candidates(n - n_uniform, constraints, prior, rng),
            uniform_candidates(n_uniform, constraints, rng),
        ]
    )


@single_threaded
def optimize_mixture(
    predict_loss: LossFn,
    constraints: SimplexConstraints,
    *,
    prior: ArrayLike | None = None,
    rng: np.random.Generator,
    differentiable: bool,
    n_candidates: int = 100_000,
    top_k: int = 128,
    interval_fn: IntervalFn | None = None,
    n_starts: int = 4,
    max_iter: int = 200,
) -> OptimumResult:
    """Minimise ``predict_loss`` (``(n, d) -> (n,)``) over the feasible mixtures.

    ``interval_fn(mixtures (1, d)) -> (lower (1,), upper (1,))`` supplies the interval at the optimum
    (the caller decides where it comes from: a GP's calibrated posterior, or conformal widths from
    cross-validation refits); without it the interval is left empty. Differentiable laws sample at most
    ``SMOOTH_POOL`` candidates before SLSQP. BLAS runs single-threaded (small matrices, busy machines).
    """
    if differentiable:
        n_candidates = min(n_candidates, SMOOTH_POOL)
    pool = candidate_pool(n_candidates, constraints, prior, rng)
    top = average_top_k(predict_loss, pool, constraints, top_k)
    mixture, method = top.mixture, "top_k_average"
    top_value = _value(predict_loss, top.mixture)
    value = top_value
    details: dict[str, Any] = {
        "n_candidates": len(pool),
        "top_k": len(top.top_losses),
        "top_k_value": top_value,
        "best_sample_value": float(top.top_losses[0]),
    }
    if differentiable:
        starts = [top.mixture, *top.top_mixtures[: max(n_starts - 1, 0)]]
        for start in starts:
            x = _slsqp(predict_loss, constraints, start, max_iter)
            v = _value(predict_loss, x)
            if v < value:
                mixture, value, method = x, v, "slsqp"
        details["starts"] = len(starts)
    details["method"] = method
    lower = upper = None
    if interval_fn is not None:
        lo, hi = interval_fn(mixture[None, :])
        lower, upper = float(np.asarray(lo).reshape(-1)[0]), float(np.asarray(hi).reshape(-1)[0])
    return OptimumResult(mixture=mixture, value=value, lower=lower, upper=upper, details=details)


def _value(loss: LossFn, x: FloatArray) -> float:
    return float(np.asarray(loss(x[None, :])).reshape(-1)[0])


def _slsqp(loss: LossFn, constraints: SimplexConstraints, start: FloatArray, max_iter: int) -> FloatArray:
    """SLSQP from ``start`` with exact bounds and the sum-to-one equality; the result is re-projected."""
    d = constraints.n_domains
    steps = np.eye(d) * FD_STEP

    def fun(x: FloatArray) -> tuple[float, FloatArray]:
        x = np.clip(x, 0.0, None)
        vals = np.asarray(loss(np.vstack([x, x[None, :] + steps])), dtype=np.float64).reshape(-1)
        grad = (vals[1:] - vals[0]) / FD_STEP
        if not np.all(np.isfinite(vals)):
            return float("inf"), np.zeros(d)
        return float(vals[0]), grad

    res = minimize(
        fun,
        start,
        jac=True,
        method="SLSQP",
        bounds=list(zip(constraints.lower, constraints.upper, strict=True)),
        constraints=[{"type": "eq", "fun": lambda x: x.sum() - 1.0, "jac": lambda x: np.ones(d)}],
        options={"maxiter": max_iter, "ftol": 1e-10},
    )
    x = np.asarray(res.x if np.all(np.isfinite(res.x)) else start)
    return constraints.project(x)[0]
