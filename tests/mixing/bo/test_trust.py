"""Trust in cheap levels: measured against the target runs, it decides whether ``bo`` still uses them.

The pools here are small and synthetic: the target loss is the bowl of :mod:`tests.mixing.bo.synthetic`;
the cheap level either agrees with it (bowl plus an offset) or is anti-correlated (offset minus the bowl),
so its best mixtures are the target's worst.
"""

from __future__ import annotations

import numpy as np

from mixing.bo import engine
from mixing.bo.device import bo_device
from mixing.compute import Device
from mixing.methods.bo import BayesOptMethod
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
