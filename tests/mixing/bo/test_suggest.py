"""Suggestions: feasible under bounds, drawn from the pool when one is given, never a pending run again."""

from __future__ import annotations

import numpy as np
import pytest

from mixing.methods import resolve_method
from mixing.methods.base import SearchContext
from mixing.methods.bo import BayesOptMethod, SingleFidelityBayesOptMethod
from mixing.methods.common import SAME_POINT_L1
from mixing.problem import Candidates, FidelitySpace, Observations, Problem, Proposal
from mixing.simplex import SimplexConstraints
from tests.mixing.bo.synthetic import HIGH, LOW, OPT, SMALL, context, observations, problem


def test_suggestions_respect_bounds_and_carry_predictions() -> None:
    bounds = SimplexConstraints(np.array([0.05, 0.0, 0.1, 0.0]), np.array([0.5, 0.35, 1.0, 0.2]))
    obs = observations(30, 10, seed=4)
    props = BayesOptMethod(SMALL).suggest(context(obs, problem(bounds)), 6)
    mix = np.array([p.mixture for p in props])
    assert len(props) == 6
    assert bounds.contains(mix).all()
    assert len(np.unique(np.round(np.column_stack([mix, [p.fidelity for p in props]]), 9), axis=0)) == 6
    for p in props:
        assert p.fidelity.tolist() in ([LOW], [HIGH])
        assert p.predicted.lower < p.predicted.value < p.predicted.upper
        assert p.details["information_nats"] > 0 and p.details["device"] == "cpu"


def test_pool_suggestions_come_from_the_pool_at_allowed_fidelities() -> None:
    rng = np.random.default_rng(5)
    pool = rng.dirichlet(np.ones(4), 30)
    fids = np.full((30, 1), np.nan)
    fids[:10, 0] = HIGH  # these rows may only be run at the target
    obs = observations(30, 10, seed=5)
    props = BayesOptMethod(SMALL).suggest(context(obs), 8, candidates=Candidates(pool, fids))
    assert len(props) == 8
    for p in props:
        row = int(np.argmin(np.abs(pool - p.mixture).sum(axis=1)))
        assert np.abs(pool[row] - p.mixture).sum() < 1e-12
        assert p.fidelity.tolist() in ([LOW], [HIGH])
        if row < 10:
            assert p.fidelity.tolist() == [HIGH]


def test_fixed_fidelity_is_respected() -> None:
    props = BayesOptMethod(SMALL).suggest(context(observations(30, 10, seed=6)), 3, np.array([HIGH]))
    assert [p.fidelity.tolist() for p in props] == [[HIGH]] * 3


def test_pending_pool_points_are_not_suggested_again() -> None:
    obs = observations(30, 10, seed=7)
    pool = np.vstack(
        [OPT + d for d in (0.0, 0.01, -0.01)] + [np.random.default_rng(7).dirichlet(np.ones(4), 9)]
    )
    pool = np.abs(pool) / np.abs(pool).sum(axis=1, keepdims=True)
    cands = Candidates(pool, np.full((len(pool), 1), HIGH))
    first = BayesOptMethod(SMALL).suggest(context(obs), 3, candidates=cands)
    picked = np.array([p.mixture for p in first])
    pending = observations(30, 10, seed=7, pending=picked, pending_params=HIGH)
    again = BayesOptMethod(SMALL).suggest(context(pending), 3, candidates=cands)
    got = np.array([p.mixture for p in again])
    assert len(again) == 3
    assert np.abs(got[:, None, :] - picked[None, :, :]).sum(axis=2).min() > 1e-9


def test_pending_runs_steer_continuous_suggestions_away() -> None:
    obs = observations(30, 10, seed=8)
    first = BayesOptMethod(SMALL).suggest(context(obs, seed=1), 1)[0]
    pending = observations(
        30, 10, seed=8, pending=first.mixture[None], pending_params=float(first.fidelity[0])
    )
    again = BayesOptMethod(SMALL).suggest(context(pending, seed=1), 1)[0]
    same_point = np.abs(again.mixture - first.mixture).sum() < 0.02 and again.fidelity[0] == first.fidelity[0]
    assert not same_point
    assert again.details["information_nats"] <= first.details["information_nats"] + 1e-9


def test_single_fidelity_baseline_uses_and_proposes_only_the_target() -> None:
    obs = observations(30, 12, seed=9)
    props = SingleFidelityBayesOptMethod(SMALL).suggest(context(obs), 4)
    rec = SingleFidelityBayesOptMethod(SMALL).recommend(context(obs))
    assert [p.fidelity.tolist() for p in props] == [[HIGH]] * 4
    assert rec.n_runs == 12


def test_auto_uses_bo_once_runs_span_two_fidelities() -> None:
    assert resolve_method("auto", context(observations(40, 0))).name != "bo"
    assert resolve_method("auto", context(observations(30, 10))).name == "bo"


VERTEX = np.array([1.0, 0.0])


def vertex_context(pending: np.ndarray | None = None) -> SearchContext:
    """Two domains, no fidelity axes, loss falling towards the vertex (1, 0).

    The best mixtures sit on the vertex, so many local moves around them are projected exactly onto it:
    the pool the batch is built from holds the same run many times over.
    """
    rng = np.random.default_rng(0)
    w = rng.dirichlet(np.ones(2), 12)
    loss = 3.0 - 2.0 * w[:, 0] + 0.01 * rng.standard_normal(12)
    pend = np.zeros((0, 2)) if pending is None else np.atleast_2d(pending)
    obs = Observations(w, np.zeros((12, 0)), loss[:, None], np.ones(12), pend, np.zeros((len(pend), 0)))
    prob = Problem(("a", "b"), SimplexConstraints.unconstrained(2), ("loss",), np.array([1.0]),
                   fidelity=FidelitySpace())
    return SearchContext(prob, obs, np.random.default_rng(0))


def assert_distinct_new_runs(props: list[Proposal], obs: Observations) -> None:
    """No two proposals, and no proposal and pending or observed run, are the same run."""
    runs = np.array([np.concatenate([p.mixture, p.fidelity]) for p in props])
    taken = np.column_stack([np.concatenate([obs.pending_mixtures, obs.mixtures]),
                             np.concatenate([obs.pending_fidelities, obs.fidelities])])
    apart = np.abs(runs[:, None, :] - runs[None, :, :]).sum(axis=2) + np.eye(len(runs))
    assert apart.min() >= SAME_POINT_L1
    assert np.abs(runs[:, None, :] - taken[None, :, :]).sum(axis=2).min() >= SAME_POINT_L1


@pytest.mark.parametrize("pending", [None, VERTEX], ids=["nothing-pending", "vertex-pending"])
def test_a_vertex_optimum_still_gets_a_full_batch_of_distinct_runs(pending: np.ndarray | None) -> None:
    ctx = vertex_context(pending)
    props = BayesOptMethod(SMALL).suggest(ctx, 3)
    assert len(props) == 3
    assert_distinct_new_runs(props, ctx.observations)


def test_a_batch_larger_than_the_batch_pool_is_filled() -> None:
    obs = observations(30, 10, seed=10)
    props = BayesOptMethod(SMALL).suggest(context(obs), SMALL.n_batch_pool + 6, np.array([HIGH]))
    assert len(props) == SMALL.n_batch_pool + 6
    assert_distinct_new_runs(props, obs)


def test_pool_repeats_count_once_and_a_short_pool_gives_all_it_has() -> None:
    """The best mixture listed many times (up to float noise) cannot crowd the rest out of the batch."""
    others = np.random.default_rng(11).dirichlet(np.ones(4), 5)
    copies = np.repeat(OPT[None], SMALL.n_batch_pool + 10, axis=0)
    copies[1::2] += 1e-8 * np.array([1.0, -1.0, 0.0, 0.0])  # the same point by SAME_POINT_L1
    pool = np.vstack([copies, others])
    cands = Candidates(pool, np.full((len(pool), 1), HIGH))
    obs = observations(30, 10, seed=11, pending=others[:1], pending_params=HIGH)
    eligible = 1 + len(others) - 1  # OPT once, and every other mixture but the pending one
    props = BayesOptMethod(SMALL).suggest(context(obs), eligible, candidates=cands)
    assert len(props) == eligible
    assert_distinct_new_runs(props, obs)
    assert len(BayesOptMethod(SMALL).suggest(context(obs), eligible + 1, candidates=cands)) == eligible
