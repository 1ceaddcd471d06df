"""The search-method contract, checked for every registered method: a method added to the registry is
checked here without a line changed.

Every method, asked for ``count`` suggestions on a problem with room for them, returns that many, inside
the per-domain bounds, none of them a pending or observed run or a repeat within the batch, and the same
ones again for the same seed; from a candidate pool, only free pool rows. Problems are small (four domains,
two fidelity levels, forty runs) and the expensive methods run with small settings. Every method that fits
a model predicts through the protocol; one that fits none hands predictions to RegMix.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from mixing.methods import as_predictive, available_methods
from mixing.methods.base import PredictiveMethod, SearchMethod
from mixing.methods.bo import BayesOptMethod, SingleFidelityBayesOptMethod
from mixing.methods.common import SAME_POINT_L1
from mixing.methods.law import LawMethod
from mixing.methods.regmix import RegMixMethod
from mixing.problem import Candidates, Observations, Proposal
from mixing.simplex import SimplexConstraints
from tests.mixing.bo.synthetic import HIGH, LOW, SMALL, context, observations, problem

#: Small settings for the methods whose defaults are sized for real searches; any other is built bare.
FAST: dict[str, Callable[[], SearchMethod]] = {
    "regmix": lambda: RegMixMethod(n_candidates=4000, n_estimators=50),
    "law": lambda: LawMethod(n_candidates=4000, top_k=32),
    "bo": lambda: BayesOptMethod(SMALL),
    "single-fidelity-bo": lambda: SingleFidelityBayesOptMethod(SMALL),
}
#: The law method is told which law to fit, so no cross-validated selection runs.
HINTS = {"selected_law": "regmix_linear"}
BOUNDS = SimplexConstraints(np.array([0.05, 0.0, 0.1, 0.0]), np.array([0.5, 0.4, 1.0, 0.3]))
COUNT = 4


def build(name: str) -> SearchMethod:
    return FAST[name]() if name in FAST else available_methods()[name]()


def runs() -> Observations:
    """30 proxy and 12 target runs inside the bounds, and two pending runs (one per level)."""
    obs = observations(30, 12, seed=3)
    inside = BOUNDS.project(obs.mixtures)
    pending = BOUNDS.project(np.random.default_rng(4).dirichlet(np.ones(4), 2))
    return Observations(inside, obs.fidelities, obs.metrics, obs.costs, pending, np.array([[LOW], [HIGH]]))


def suggest(name: str, seed: int, pool: Candidates | None = None) -> list[Proposal]:
    ctx = context(runs(), problem(BOUNDS), seed=seed, hints=dict(HINTS))
    return build(name).suggest(ctx, COUNT, candidates=pool)


def taken(props: list[Proposal], obs: Observations) -> list[bool]:
    """Per proposal: whether it repeats a pending or observed run, or an earlier proposal, at its fidelity."""
    mix = np.concatenate([obs.mixtures, obs.pending_mixtures])
    fid = np.concatenate([obs.fidelities, obs.pending_fidelities])
    out = []
    for p in props:
        same = (np.abs(mix - p.mixture).sum(axis=1) < SAME_POINT_L1) & np.all(np.isclose(fid, p.fidelity), axis=1)
        out.append(bool(same.any()))
        mix, fid = np.vstack([mix, p.mixture]), np.vstack([fid, p.fidelity])
    return out


@pytest.mark.parametrize("name", list(available_methods()))
def test_suggestions_are_as_many_as_asked_feasible_new_and_reproducible(name: str) -> None:
    props = suggest(name, seed=7)
    assert len(props) == COUNT
    mixtures = np.array([p.mixture for p in props])
    assert BOUNDS.contains(mixtures).all()
    assert not any(taken(props, runs()))
    for p in props:
        assert p.fidelity.tolist() in ([LOW], [HIGH])
        assert p.method == name
    again = suggest(name, seed=7)
    assert np.array_equal(mixtures, np.array([p.mixture for p in again]))
    assert np.array_equal(np.array([p.fidelity for p in props]), np.array([p.fidelity for p in again]))


@pytest.mark.parametrize("name", list(available_methods()))
def test_pool_suggestions_are_free_pool_rows(name: str) -> None:
    obs = runs()
    fresh = BOUNDS.project(np.random.default_rng(11).dirichlet(np.ones(4), 12))
    pool_mix = np.vstack([obs.pending_mixtures, obs.mixtures[:4], fresh])
    pool_fid = np.vstack([obs.pending_fidelities, obs.fidelities[:4], np.full((12, 1), np.nan)])
    props = suggest(name, seed=7, pool=Candidates(pool_mix, pool_fid))
    assert len(props) == COUNT
    assert not any(taken(props, obs))
    for p in props:
        row = int(np.argmin(np.abs(pool_mix - p.mixture).sum(axis=1)))
        assert np.abs(pool_mix[row] - p.mixture).sum() < 1e-12


@pytest.mark.parametrize("name", list(available_methods()))
def test_every_method_predicts_through_the_protocol(name: str) -> None:
    method = build(name)
    if not isinstance(method, PredictiveMethod):
        assert isinstance(as_predictive(method), RegMixMethod)
        return
    assert as_predictive(method) is method
    grid = BOUNDS.project(np.random.default_rng(12).dirichlet(np.ones(4), 6))
    ctx = context(runs(), problem(BOUNDS), seed=7, hints=dict(HINTS))
    metrics, objective, halfwidth = method.predictor(ctx).predict(grid)
    assert metrics.shape in ((6, 1), (6, 0)) and objective.shape == halfwidth.shape == (6,)
    assert np.isfinite(objective).all() and (halfwidth >= 0).all()
