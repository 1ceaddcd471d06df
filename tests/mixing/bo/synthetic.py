"""A small synthetic multi-fidelity mixture problem with a known target optimum, shared by the BO tests.

Loss at the target is a quadratic bowl around ``OPT``; proxies (low fidelity) add a large mixture-free
offset and a tilt that moves their optimum towards domain ``a`` -- cheap runs are biased, as in practice.
"""

from __future__ import annotations

import numpy as np

from mixing.bo.engine import BOSettings
from mixing.bo.surrogate import FitSettings
from mixing.compute import Compute, Device
from mixing.methods.base import SearchContext
from mixing.problem import FidelitySpace, Observations, Problem
from mixing.simplex import SimplexConstraints

OPT = np.array([0.4, 0.3, 0.2, 0.1])
LOW, HIGH = 1e6, 1e8
SPACE = FidelitySpace(("params",), np.array([LOW]), np.array([HIGH]), np.array([HIGH]))
SMALL = BOSettings(
    n_global=512,
    n_local=256,
    n_centres=8,
    n_batch_pool=64,
    n_min_samples=16,
    n_min_support=64,
    fit=FitSettings(maxiter_cold=80, maxiter_warm=30),
)


def problem(
    constraints: SimplexConstraints | None = None, goal: str = "minimize", fidelity: FidelitySpace = SPACE
) -> Problem:
    return Problem(
        domains=("a", "b", "c", "d"),
        constraints=constraints or SimplexConstraints.unconstrained(4),
        metric_names=("loss",),
        metric_weights=np.array([1.0]),
        goal=goal,
        fidelity=fidelity,
    )


def true_loss(w: np.ndarray, params: np.ndarray) -> np.ndarray:
    s = SPACE.normalise(np.asarray(params, dtype=np.float64).reshape(-1, 1))[:, 0]
    w = np.atleast_2d(w)
    return 3.0 + 4.0 * ((w - OPT) ** 2).sum(axis=1) + (1.0 - s) * (1.0 - 0.8 * w[:, 0])


def observations(
    n_low: int,
    n_high: int,
    seed: int = 0,
    sign: float = 1.0,
    pending: np.ndarray | None = None,
    pending_params: float = LOW,
) -> Observations:
    rng = np.random.default_rng(seed)
    w = rng.dirichlet(np.ones(4), n_low + n_high)
    params = np.concatenate([np.full(n_low, LOW), np.full(n_high, HIGH)])[:, None]
    noise = 0.01 * rng.standard_normal(len(w))
    metrics = sign * (true_loss(w, params) + noise)[:, None]
    pend = np.zeros((0, 4)) if pending is None else np.atleast_2d(pending)
    return Observations(w, params, metrics, params[:, 0] / LOW, pend, np.full((len(pend), 1), pending_params))


def context(
    obs: Observations,
    prob: Problem | None = None,
    seed: int = 0,
    hints: dict | None = None,
    compute: Compute | None = None,
) -> SearchContext:
    rng = np.random.default_rng(seed)
    return SearchContext(prob or problem(), obs, rng, hints or {}, compute or Compute(Device.CPU))
