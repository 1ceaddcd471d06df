"""Search methods through the protocol the service calls: RegMix recovers an optimum, pending points stay out."""

from __future__ import annotations

import dataclasses
import tracemalloc

import numpy as np

from mixing.methods import resolve_method
from mixing.methods.base import SearchContext
from mixing.methods.common import SCORE_ROWS, chunked, new_runs
from mixing.methods.design import DesignMethod, RandomMethod
from mixing.methods.regmix import RegMixMethod
from mixing.problem import Candidates, FidelitySpace, Observations, Problem
from mixing.simplex import SimplexConstraints

OPT = np.array([0.5, 0.3, 0.15, 0.05])


def _problem(goal: str = "minimize") -> Problem:
    return Problem(domains=("a", "b", "c", "d"), constraints=SimplexConstraints.unconstrained(4),
                   metric_names=("m1", "m2"), metric_weights=np.array([0.5, 0.5]), goal=goal,
                   fidelity=FidelitySpace(("params",), np.array([1e6]), np.array([1e9]), np.array([1e9])))


def _obs(n: int, seed: int = 0, sign: float = 1.0) -> Observations:
    rng = np.random.default_rng(seed)
    x = rng.dirichlet(np.ones(4), n)
    loss = ((x - OPT) ** 2).sum(axis=1)
    metrics = sign * np.column_stack([3 + loss, 3 + 2 * loss])
    return Observations(x, np.full((n, 1), 1e6), metrics, np.ones(n), np.zeros((0, 4)), np.zeros((0, 1)))


def _ctx(obs: Observations, goal: str = "minimize") -> SearchContext:
    return SearchContext(_problem(goal), obs, np.random.default_rng(0))


def test_regmix_recommends_near_the_optimum_for_either_goal() -> None:
    for goal, sign in (("minimize", 1.0), ("maximize", -1.0)):
        rec = RegMixMethod(n_candidates=20_000, n_estimators=300).recommend(_ctx(_obs(300, sign=sign), goal))
        assert np.abs(rec.mixture - OPT).sum() < 0.25, (goal, rec.mixture)
        assert rec.predicted.lower <= rec.predicted.value <= rec.predicted.upper
        assert rec.fidelity.tolist() == [1e9]


def test_suggestions_skip_pending_and_observed_pool_points() -> None:
    obs = _obs(40)
    pool = np.random.default_rng(5).dirichlet(np.ones(4), 12)
    pending = Observations(obs.mixtures, obs.fidelities, obs.metrics, obs.costs, pool[:4], np.full((4, 1), 1e6))
    cands = Candidates(pool, np.full((12, 1), np.nan))
    for method in (RegMixMethod(n_candidates=5000, n_estimators=100), DesignMethod(), RandomMethod()):
        props = method.suggest(_ctx(pending), 8, None, cands)
        got = np.array([p.mixture for p in props])
        assert len(props) == 8
        assert np.abs(got[:, None] - pool[None, :4]).sum(axis=2).min() > 1e-6
        assert np.abs(got[:, None] - pool[None, 4:]).sum(axis=2).min(axis=1).max() < 1e-12


def test_design_from_a_pool_keeps_memory_flat_in_the_runs_taken() -> None:
    """The max-min design held a (pool, runs taken, domains) array: 4.3 GB for 200,000 candidates, 300 runs."""
    pool = np.random.default_rng(8).dirichlet(np.ones(4), 20_000)
    obs = _obs(300)
    cands = Candidates(pool, np.full((len(pool), 1), np.nan))
    tracemalloc.start()
    try:
        props = DesignMethod().suggest(_ctx(obs), 5, None, cands)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 30 * pool.nbytes, f"peak {peak / 2**20:.0f} MiB for a {pool.nbytes / 2**20:.1f} MiB pool"
    # The picks are the greedy max-min ones: each farthest (L1) from the runs and the picks before it.
    taken = obs.mixtures
    for p in props:
        dist = np.abs(pool[:, None, :] - taken[None, :, :]).sum(axis=2).min(axis=1)
        assert np.abs(pool[int(np.argmax(dist))] - p.mixture).sum() == 0.0
        taken = np.vstack([taken, p.mixture])


def test_scoring_a_pool_in_chunks_gives_the_same_values() -> None:
    pool = np.random.default_rng(9).dirichlet(np.ones(4), SCORE_ROWS * 2 + 17)
    fitted = np.random.default_rng(10).normal(size=(4, 3))
    whole = np.tanh(pool @ fitted).sum(axis=1)
    assert np.array_equal(chunked(lambda m: np.tanh(m @ fitted).sum(axis=1), pool), whole)


def test_auto_designs_first_then_models() -> None:
    assert resolve_method("auto", _ctx(_obs(5))).name == "design"
    assert resolve_method("auto", _ctx(_obs(60))).name in {"regmix", "law"}


def test_design_from_a_multi_fidelity_pool_explores_at_its_cheapest_level() -> None:
    pool = np.random.default_rng(7).dirichlet(np.ones(4), 10)
    cands = Candidates(np.vstack([pool, pool]), np.concatenate([np.full((10, 1), 1e9), np.full((10, 1), 1e7)]))
    props = DesignMethod().suggest(_ctx(_obs(0)), 6, None, cands)
    assert len(props) == 6 and all(p.fidelity.tolist() == [1e7] for p in props)
    spread = {p.fidelity[0] for p in DesignMethod().suggest(_ctx(_obs(0)), 14, None, cands)}
    assert spread == {1e7, 1e9}, "once the cheap level is used up, the design moves to the next"


def test_each_fidelity_levels_design_measures_the_prior_and_uniform_mixtures_first() -> None:
    prior = np.array([0.7, 0.1, 0.1, 0.1])
    bounded = SimplexConstraints(lower=np.zeros(4), upper=np.array([0.6, 1.0, 1.0, 1.0]))
    problem = Problem(domains=("a", "b", "c", "d"), constraints=bounded, metric_names=("m1", "m2"),
                      metric_weights=np.array([0.5, 0.5]), goal="minimize", prior=prior,
                      fidelity=FidelitySpace(("params",), np.array([1e6]), np.array([1e9]), np.array([1e9])))
    empty = _obs(0)
    first = DesignMethod().suggest(SearchContext(problem, empty, np.random.default_rng(0)), 5)
    got = np.array([p.mixture for p in first])
    assert np.allclose(got[0], [0.6, 0.4 / 3, 0.4 / 3, 0.4 / 3])  # the prior, made feasible (a <= 0.6)
    assert np.allclose(got[1], 0.25) and bounded.contains(got).all()
    assert np.abs(got[2:, None] - got[None, :2]).sum(axis=2).min() > 0.05  # then space-filling
    # Both measured at 1e6: a design at 1e9 measures them there first; at 1e6 it does not repeat them.
    seen = Observations(got[:2], np.full((2, 1), 1e6), np.full((2, 2), 3.0), np.ones(2), np.zeros((0, 4)),
                        np.zeros((0, 1)))
    ctx = SearchContext(problem, seen, np.random.default_rng(1))
    high = DesignMethod().suggest(ctx, 3, np.array([1e9]))
    assert np.allclose([p.mixture for p in high[:2]], got[:2]) and all(p.fidelity[0] == 1e9 for p in high)
    low = np.array([p.mixture for p in DesignMethod().suggest(ctx, 3, np.array([1e6]))])
    assert np.abs(low[:, None] - got[None, :2]).sum(axis=2).min() > 0.05
    one = DesignMethod().suggest(SearchContext(problem, empty, np.random.default_rng(0)), 1)
    assert len(one) == 1 and np.allclose(one[0].mixture, got[0])  # one run: the prior


def test_random_search_with_a_seed_already_used_hands_out_new_points() -> None:
    """Regression: two callers passing the same seed got the same mixtures; a seed fixes the sequence of
    draws, and a later caller goes on along it past the points earlier ones took."""
    obs = _obs(10)
    first = np.array([p.mixture for p in RandomMethod().suggest(_ctx(obs), 3)])
    pending = dataclasses.replace(obs, pending_mixtures=first, pending_fidelities=np.full((3, 1), 1e6))
    second = np.array([p.mixture for p in RandomMethod().suggest(_ctx(pending), 3)])
    assert second.shape == (3, 4)
    assert np.abs(second[:, None] - first[None]).sum(axis=2).min() > 1e-6


def test_a_space_with_one_feasible_mixture_offers_it_once() -> None:
    """Regression: with min weights summing to 1, every caller was handed the same single mixture."""
    problem = dataclasses.replace(_problem(), constraints=SimplexConstraints.from_spec(
        4, min_weight=[0.4, 0.3, 0.2, 0.1]))
    empty = Observations.empty(4, 1, 2)
    ctx = SearchContext(problem, empty, np.random.default_rng(0))
    for method in (DesignMethod(), RandomMethod()):
        offered = new_runs(method.suggest(ctx, 3), empty)
        assert len(offered) == 1 and np.allclose(offered[0].mixture, [0.4, 0.3, 0.2, 0.1])
        pending = dataclasses.replace(empty, pending_mixtures=offered[0].mixture[None],
                                      pending_fidelities=offered[0].fidelity[None])
        again = SearchContext(problem, pending, np.random.default_rng(0))
        assert new_runs(method.suggest(again, 3), pending) == []
