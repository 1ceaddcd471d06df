"""The optimizer respects every constraint (2 to 256 domains, random bounds) and finds known optima."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import linprog

from mixing.optimize import candidate_pool, optimize_mixture
from mixing.simplex import SimplexConstraints


@st.composite
def bounded_simplex(draw: st.DrawFn) -> SimplexConstraints:
    """Random feasible bounds: minimum shares, maximum shares and epoch caps from token supplies.

    Caps are ``supply x epochs / target tokens`` (NaN supply: no cap), as ``SimplexConstraints.from_spec``
    computes them; when they leave too little room they are relaxed towards one until feasible.
    """
    d = draw(st.integers(2, 256))
    rng = np.random.default_rng(draw(st.integers(0, 2**31)))
    lower = rng.uniform(0, 1, d) * draw(st.floats(0.0, 0.95)) / d
    supply = rng.lognormal(0, 1.5, d)
    supply[rng.random(d) < 0.3] = np.nan
    target = float(np.nansum(supply)) * draw(st.floats(0.2, 3.0))
    epochs = draw(st.floats(0.5, 4.0))
    cap = np.where(np.isnan(supply), 1.0, np.clip(supply * epochs / target, 0.0, 1.0))
    upper = np.maximum(cap, lower)
    while upper.sum() < 1.0:
        upper = np.minimum(upper * 1.5 + 1e-3, 1.0)
    return SimplexConstraints(lower, upper)


@settings(max_examples=25, deadline=None)
@given(cons=bounded_simplex(), seed=st.integers(0, 1000), differentiable=st.booleans())
def test_the_optimum_is_always_feasible(cons: SimplexConstraints, seed: int, differentiable: bool) -> None:
    rng = np.random.default_rng(seed)
    centre = rng.dirichlet(np.ones(cons.n_domains))
    scale = rng.uniform(0.5, 2.0, cons.n_domains)

    def loss(m: np.ndarray) -> np.ndarray:
        return ((m - centre) ** 2 * scale).sum(axis=1) + np.sqrt(np.clip(m, 0, None)) @ scale * 0.01

    res = optimize_mixture(
        loss,
        cons,
        rng=rng,
        differentiable=differentiable,
        n_candidates=400,
        top_k=16,
        max_iter=40,
        n_starts=2,
    )
    assert cons.contains(res.mixture[None, :], tol=1e-6).all()
    assert res.value == pytest.approx(float(loss(res.mixture[None, :])[0]))
    assert res.details["method"] in {"top_k_average", "slsqp"}
    assert res.lower is None and res.upper is None


@settings(max_examples=15, deadline=None)
@given(cons=bounded_simplex(), seed=st.integers(0, 1000))
def test_candidate_pools_are_feasible(cons: SimplexConstraints, seed: int) -> None:
    pool = candidate_pool(300, cons, None, np.random.default_rng(seed))
    assert len(pool) == 300
    assert cons.contains(pool, tol=1e-6).all()


def test_slsqp_reaches_an_interior_optimum_that_samples_only_approach() -> None:
    d = 12
    centre = np.random.default_rng(1).dirichlet(np.full(d, 5.0))
    cons = SimplexConstraints.unconstrained(d)

    def loss(m: np.ndarray) -> np.ndarray:
        return ((m - centre) ** 2).sum(axis=1)

    smooth = optimize_mixture(
        loss, cons, rng=np.random.default_rng(2), differentiable=True, n_candidates=2000
    )
    sampled = optimize_mixture(
        loss, cons, rng=np.random.default_rng(2), differentiable=False, n_candidates=2000
    )
    assert np.abs(smooth.mixture - centre).max() < 1e-4
    assert smooth.value < sampled.value
    assert smooth.details["method"] == "slsqp" and sampled.details["method"] == "top_k_average"


def test_binding_bounds_give_the_linear_programme_solution() -> None:
    d = 6
    rng = np.random.default_rng(3)
    cost = rng.normal(size=d)
    cons = SimplexConstraints(np.full(d, 0.05), np.full(d, 0.4))
    res = optimize_mixture(lambda m: m @ cost, cons, rng=rng, differentiable=True, n_candidates=2000)
    lp = linprog(
        cost, A_eq=np.ones((1, d)), b_eq=[1.0], bounds=list(zip(cons.lower, cons.upper, strict=True))
    )
    assert np.allclose(res.mixture, lp.x, atol=1e-5)


def test_the_interval_comes_from_the_callers_function() -> None:
    cons = SimplexConstraints.unconstrained(3)
    res = optimize_mixture(
        lambda m: m[:, 0],
        cons,
        rng=np.random.default_rng(4),
        differentiable=False,
        n_candidates=500,
        interval_fn=lambda m: (m[:, 0] - 1.0, m[:, 0] + 2.0),
    )
    assert res.lower == pytest.approx(res.value - 1.0) and res.upper == pytest.approx(res.value + 2.0)
