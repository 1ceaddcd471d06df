"""The feasible set: projection, sampling and designs respect every bound, for 2 to 256 domains."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mixing.design import space_filling_design
from mixing.errors import InfeasibleConstraintsError
from mixing.sampling import dirichlet_design, uniform_candidates
from mixing.search import average_top_k
from mixing.simplex import SimplexConstraints


@st.composite
def constraints(draw: st.DrawFn) -> SimplexConstraints:
    d = draw(st.integers(2, 256))
    seed = draw(st.integers(0, 2**31))
    rng = np.random.default_rng(seed)
    lower = rng.uniform(0, 1, d) * rng.uniform(0, 0.9) / d
    upper = np.clip(lower + rng.uniform(0, 1, d) * draw(st.floats(0.05, 1.0)), 0, 1)
    if upper.sum() < 1:
        upper = np.clip(upper / upper.sum() * 1.05, lower, 1.0)
        upper = np.minimum(upper + (1.0 - upper.sum()) / d + 1e-9, 1.0) if upper.sum() < 1 else upper
    return SimplexConstraints(lower, upper)


@settings(max_examples=40, deadline=None)
@given(c=constraints(), seed=st.integers(0, 1000))
def test_projection_lands_in_the_set_and_is_idempotent(c: SimplexConstraints, seed: int) -> None:
    rng = np.random.default_rng(seed)
    v = rng.normal(size=(20, c.n_domains))
    p = c.project(v)
    assert c.contains(p, tol=1e-8).all()
    assert np.allclose(c.project(p), p, atol=1e-8)


@settings(max_examples=25, deadline=None)
@given(c=constraints(), seed=st.integers(0, 1000))
def test_samplers_are_feasible(c: SimplexConstraints, seed: int) -> None:
    rng = np.random.default_rng(seed)
    prior = rng.dirichlet(np.ones(c.n_domains))
    assert c.contains(dirichlet_design(16, c, prior, rng), tol=1e-8).all()
    assert c.contains(uniform_candidates(64, c, rng), tol=1e-8).all()


def test_projection_is_the_nearest_point() -> None:
    c = SimplexConstraints(np.array([0.1, 0.0, 0.0]), np.array([1.0, 0.5, 1.0]))
    v = np.array([0.0, 0.9, 0.4])
    p = c.project(v)[0]
    rng = np.random.default_rng(0)
    others = c.project(rng.dirichlet(np.ones(3), 5000))
    assert np.linalg.norm(p - v) <= np.linalg.norm(others - v, axis=1).min() + 1e-9


def test_infeasible_bounds_raise() -> None:
    with pytest.raises(InfeasibleConstraintsError):
        SimplexConstraints(np.array([0.6, 0.6]), np.ones(2))
    with pytest.raises(InfeasibleConstraintsError):
        SimplexConstraints(np.zeros(3), np.full(3, 0.3))


def test_epoch_cap_from_tokens() -> None:
    c = SimplexConstraints.from_spec(3, tokens_available=[1e9, np.nan, 5e9], max_epochs=2, target_tokens=1e10)
    assert np.allclose(c.upper, [0.2, 1.0, 1.0])


def test_regmix_design_follows_the_prior() -> None:
    rng = np.random.default_rng(0)
    prior = np.array([0.6, 0.3, 0.05, 0.05])
    w = dirichlet_design(4000, SimplexConstraints.unconstrained(4), prior, rng)
    # Temperature 0.5 flattens the prior, but its order survives, and low strengths give near-one-hot rows.
    means = w.mean(axis=0)
    assert means[0] > means[1] > means[2] and (w.max(axis=1) > 0.95).mean() > 0.1


def test_space_filling_design_spreads_and_avoids_existing() -> None:
    rng = np.random.default_rng(1)
    c = SimplexConstraints.unconstrained(5)
    existing = rng.dirichlet(np.ones(5), 10)
    pts = space_filling_design(10, c, None, rng, existing=existing)
    plain = dirichlet_design(10, c, None, np.random.default_rng(1))

    def min_gap(x: np.ndarray) -> float:
        dist = np.abs(x[:, None] - x[None]).sum(axis=2)
        return float(dist[np.triu_indices(len(x), 1)].min())

    assert min_gap(pts) > min_gap(plain)
    assert np.abs(pts[:, None] - existing[None]).sum(axis=2).min() > 1e-3


def test_average_top_k_finds_a_known_optimum() -> None:
    c = SimplexConstraints.unconstrained(4)
    target = np.array([0.1, 0.2, 0.3, 0.4])
    cands = uniform_candidates(50_000, c, np.random.default_rng(0))
    res = average_top_k(lambda m: ((m - target) ** 2).sum(axis=1), cands, c, k=32)
    assert np.abs(res.mixture - target).sum() < 0.05
    assert res.top_losses[0] <= res.top_losses[-1]
