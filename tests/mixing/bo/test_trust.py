"""Trust in cheap levels: measured against the target runs, it decides whether ``bo`` still uses them.

The pools here are small and synthetic: the target loss is the bowl of :mod:`tests.mixing.bo.synthetic`;
the cheap level either agrees with it (bowl plus an offset) or is anti-correlated (offset minus the bowl),
so its best mixtures are the target's worst.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from mixing.bo import engine
from mixing.bo.device import bo_device
from mixing.compute import Compute, Device
from mixing.methods.bo import TARGET_DESIGN, BayesOptMethod
from mixing.problem import Candidates, Observations
from tests.mixing.bo.synthetic import HIGH, LOW, OPT, SMALL, context, problem

CPU = bo_device(Device.CPU)


def bowl(w: np.ndarray) -> np.ndarray:
    return 3.0 + 4.0 * ((np.atleast_2d(w) - OPT) ** 2).sum(axis=1)


def loss(w: np.ndarray, params: np.ndarray, sign: float) -> np.ndarray:
    """Target: the bowl; cheap: 1 + sign * bowl (sign -1: anti-correlated with the target)."""
    high = np.asarray(params).reshape(-1) == HIGH
    return np.where(high, bowl(w), 1.0 + sign * bowl(w))


def runs(mixtures: np.ndarray, params: np.ndarray, sign: float) -> Observations:
    params = np.asarray(params, dtype=np.float64).reshape(-1, 1)
    return Observations(mixtures, params, loss(mixtures, params, sign)[:, None], params[:, 0] / LOW,
                        np.zeros((0, 4)), np.zeros((0, 1)))


def test_measured_trust_is_high_for_an_agreeing_level_and_negative_for_an_anticorrelated_one() -> None:
    rng = np.random.default_rng(0)
    w = rng.dirichlet(np.ones(4), 48)
    params = np.concatenate([np.full(40, LOW), np.full(8, HIGH)])
    trust = {}
    for sign in (1.0, -1.0):
        obs = runs(w, params, sign)
        s = engine.fit_surrogate(problem(), obs, CPU, np.random.default_rng(0), None, SMALL)
        trust[sign] = engine.level_trust(s, obs)[np.array([LOW]).tobytes()]
        assert engine.level_trust(s, runs(w[:44], params[:44], sign)) == {}  # 4 target runs: not measured yet
    assert trust[1.0] > 0.8
    assert trust[-1.0] < -0.5


def test_with_misleading_proxies_forecasts_from_them_do_not_overrule_the_measured_best() -> None:
    """Anti-correlated cheap runs forecast the target's worst mixtures as its best; once target runs show
    it, the recommendation among measured and cheaply-run mixtures is the best measured one."""
    rng = np.random.default_rng(1)
    cheap = rng.dirichlet(np.ones(4), 40)
    measured = rng.dirichlet(np.ones(4), 6)
    obs = runs(np.concatenate([cheap, measured]), np.concatenate([np.full(40, LOW), np.full(6, HIGH)]), -1.0)
    pool = np.concatenate([measured, cheap[:20]])  # candidates: the measured six and twenty only run cheaply
    ctx = context(obs)
    method = BayesOptMethod(SMALL)
    rec = method.recommend(ctx, pool)
    assert rec.details["proxies_distrusted"]
    assert np.allclose(rec.mixture, measured[np.argmin(bowl(measured))])


def test_bo_reaches_the_target_optimum_when_cheap_runs_are_anticorrelated() -> None:
    """A nested pool (every mixture cheap, a third also at the target, which costs 10 cheap runs): from a
    cheap design, ``bo`` must end recommending the pool's best target mixture within a budget that
    single-fidelity search needs about half of."""
    rng = np.random.default_rng(2)
    mixtures = rng.dirichlet(np.ones(4), 60)
    at_target = mixtures[:20]
    best = at_target[np.argmin(bowl(at_target))]
    pool_mix = np.concatenate([mixtures, at_target])
    pool_fid = np.concatenate([np.full((60, 1), LOW), np.full((20, 1), HIGH)])
    taken = list(range(8))  # a cheap design
    method = BayesOptMethod(SMALL)
    hints: dict = {}
    spent = 8.0
    while spent < 150.0:
        obs = runs(pool_mix[taken], pool_fid[taken], -1.0)
        free = np.setdiff1d(np.arange(len(pool_mix)), taken)
        props = method.suggest(context(obs, seed=len(taken), hints=hints), 2, None,
                               Candidates(pool_mix[free], pool_fid[free]))
        hints = {"bo_state": props[0].details["bo_state"]}
        for p in props:
            row = free[np.flatnonzero((np.abs(pool_mix[free] - p.mixture).sum(axis=1) < 1e-12)
                                      & (pool_fid[free, 0] == p.fidelity[0]))[0]]
            taken.append(int(row))
            spent += 10.0 if p.fidelity[0] == HIGH else 1.0
    rec = method.recommend(context(runs(pool_mix[taken], pool_fid[taken], -1.0), hints=hints), at_target)
    assert np.allclose(rec.mixture, best)


def nested_pool(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Every one of 60 mixtures cheap, the first 20 also at the target: (mixtures, fidelities)."""
    mixtures = np.random.default_rng(seed).dirichlet(np.ones(4), 60)
    return (np.concatenate([mixtures, mixtures[:20]]),
            np.concatenate([np.full((60, 1), LOW), np.full((20, 1), HIGH)]))


def test_before_trusting_the_proxies_bo_buys_their_favourites_and_spread_out_runs_at_the_target() -> None:
    """Once the cheap runs have cost as much as one target run (and not before), the next batch opens with
    target runs: the mixture the model predicts best at the target (with one target run made, one such),
    then mixtures far apart; the target design stops at TARGET_DESIGN target runs."""
    pool_mix, pool_fid = nested_pool(3)
    method = BayesOptMethod(SMALL)

    def observed(rows: list[int]) -> Observations:
        obs = runs(pool_mix[rows], pool_fid[rows], 1.0)
        return dataclasses.replace(obs, costs=np.where(obs.fidelities[:, 0] == LOW, 1.0, 10.0))

    def suggest(rows: list[int]) -> list:
        free = np.setdiff1d(np.arange(len(pool_mix)), rows)
        return method.suggest(context(observed(rows)), 4, None, Candidates(pool_mix[free], pool_fid[free]))

    assert not any(p.details.get("target_design") for p in suggest([*range(8), 60]))  # 8 cheap < one target run
    taken = [*range(12), 60]
    props = suggest(taken)
    assert all(p.fidelity[0] == HIGH and p.details["target_design"] for p in props)
    s = engine.fit_surrogate(problem(), observed(taken), CPU, np.random.default_rng(0), None, SMALL)
    unrun = pool_mix[61:]
    mean, _ = s.predict(unrun, np.array([HIGH]))
    assert np.allclose(props[0].mixture, unrun[np.argmin(mean)])
    taken += [int(np.flatnonzero((np.abs(pool_mix - p.mixture).sum(axis=1) < 1e-12) & (pool_fid[:, 0] == HIGH))[0])
              for p in props]
    assert sum(bool(p.details.get("target_design")) for p in suggest(taken)) == TARGET_DESIGN - 5


def test_while_the_target_cost_is_a_forecast_the_target_design_buys_one_run_to_measure_it() -> None:
    """No target run has reported a cost and none is declared: the axes forecast 100 cheap runs, and 104
    cheap ones trigger the target design. It buys one run (the predicted best), none while that one is
    pending, and the rest once it has reported its cost; declared, the first batch holds four."""
    mixtures = np.random.default_rng(5).dirichlet(np.ones(4), 104)
    cheap = runs(mixtures, np.full(104, LOW), 1.0)
    candidates = Candidates(mixtures[:20], np.full((20, 1), HIGH))
    method = BayesOptMethod(SMALL)

    def designed(obs: Observations, declared: np.ndarray | None = None) -> list:
        prob = problem() if declared is None else dataclasses.replace(problem(), declared_costs=declared)
        return [p for p in method.suggest(context(obs, prob), 4, None, candidates) if p.details.get("target_design")]

    (probe,) = designed(cheap)
    assert probe.fidelity[0] == HIGH
    pending = dataclasses.replace(cheap, pending_mixtures=probe.mixture[None], pending_fidelities=np.array([[HIGH]]))
    assert designed(pending) == []
    measured = runs(np.vstack([mixtures, probe.mixture]), np.append(np.full(104, LOW), HIGH), 1.0)
    assert len(designed(measured)) == TARGET_DESIGN - 1
    assert len(designed(cheap, np.array([[HIGH, 100.0]]))) == 4


def test_once_the_proxies_are_measured_to_mislead_bo_proposes_target_runs_only() -> None:
    """Anti-correlated cheap runs: with the trust measured, every suggestion is at the target and comes from
    the target-only model; with agreeing cheap runs the search still chooses among both levels."""
    pool_mix, pool_fid = nested_pool(4)
    taken = [*range(24), 60, 61, 62, 63, 64, 65]  # 24 cheap runs and 6 target runs
    free = np.setdiff1d(np.arange(len(pool_mix)), taken)
    cands = Candidates(pool_mix[free], pool_fid[free])
    levels = {}
    for sign in (-1.0, 1.0):
        props = BayesOptMethod(SMALL).suggest(context(runs(pool_mix[taken], pool_fid[taken], sign)), 4, None, cands)
        assert props[0].details["proxies_distrusted"] is (sign < 0)
        levels[sign] = props[0].details["fidelity_levels"]
        if sign < 0:
            assert all(p.fidelity[0] == HIGH for p in props)
    assert levels[-1.0] == [[]]  # the target-only model has no fidelity axis
    assert levels[1.0] == [[LOW], [HIGH]]


def test_bo_calls_run_with_the_callers_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    """Threads come from the SearchContext (the service's settings), not from the environment."""
    seen = []
    real = engine.suggest

    def spy(*args: object, **kwargs: object) -> list:
        seen.append(torch.get_num_threads())
        return real(*args, **kwargs)

    monkeypatch.setattr(engine, "suggest", spy)
    obs = runs(np.random.default_rng(5).dirichlet(np.ones(4), 12), np.full(12, LOW), 1.0)
    BayesOptMethod(SMALL).suggest(context(obs, compute=Compute(Device.CPU, 2)), 1, np.array([LOW]))
    assert seen == [2]
