"""BO with trade-offs: suggestions chosen by the expected hypervolume improvement of the target-level front."""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
from botorch.utils.multi_objective.box_decompositions.non_dominated import FastNondominatedPartitioning
from botorch.utils.multi_objective.hypervolume import Hypervolume

from mixing.bo.acquisition import expected_hypervolume_improvement
from mixing.methods.base import SearchContext
from mixing.methods.bo import TRADE_OFFS, BayesOptMethod
from mixing.pareto import hypervolume, non_dominated
from mixing.problem import Candidates, FidelitySpace, Observations, Problem, TradeOff
from tests.mixing.bo.synthetic import HIGH, LOW, OPT, SMALL, SPACE, context, observations, problem

#: The trade-off metric's optimum, far from the objective's (``OPT``): the front runs between them.
OTHER = np.array([0.05, 0.15, 0.3, 0.5])


def metrics(w: np.ndarray, params: np.ndarray | None = None) -> np.ndarray:
    """(objective, trade-off) ``(n, 2)``: two bowls; a proxy (below ``HIGH``) adds an offset to both."""
    w = np.atleast_2d(w)
    s = 1.0 if params is None else SPACE.normalise(np.asarray(params, dtype=np.float64).reshape(-1, 1))[:, 0]
    shift = 0.5 * (1.0 - s)
    return np.column_stack([3.0 + 4.0 * ((w - OPT) ** 2).sum(axis=1) + shift,
                            2.0 + 4.0 * ((w - OTHER) ** 2).sum(axis=1) + shift])


def two_objective(trade_offs: bool, fidelity: FidelitySpace | None = None) -> Problem:
    base = problem(fidelity=fidelity or FidelitySpace())
    return dataclasses.replace(base, metric_names=("loss", "other"), metric_weights=np.array([1.0, 0.0]),
                               trade_offs=(TradeOff(metric=1),) if trade_offs else ())


def search(arm: str, seed: int, pool: np.ndarray, rounds: int = 5, batch: int = 2) -> np.ndarray:
    """True (objective, trade-off) of the pool mixtures a single-fidelity search trained: 6 random ones, then
    ``rounds`` batches by ``arm`` (``front``: BO with the trade-off; ``objective``: BO without; ``random``)."""
    rng = np.random.default_rng(seed)
    rows = list(rng.choice(len(pool), 6, replace=False))
    prob = two_objective(arm == "front")
    for _ in range(rounds):
        obs = Observations(pool[rows], np.zeros((len(rows), 0)), metrics(pool[rows]), np.ones(len(rows)),
                           np.zeros((0, 4)), np.zeros((0, 0)))
        free = np.setdiff1d(np.arange(len(pool)), rows)
        if arm == "random":
            rows += list(rng.choice(free, batch, replace=False))
            continue
        ctx = SearchContext(prob, obs, np.random.default_rng(rng.integers(2**31)))
        props = BayesOptMethod(SMALL).suggest(ctx, batch, None, Candidates(pool[free], np.zeros((len(free), 0))))
        rows += [int(np.argmin(np.abs(pool - p.mixture).sum(axis=1))) for p in props]
    return metrics(pool[rows])


def test_ehvi_is_the_monte_carlo_hypervolume_improvement() -> None:
    """The closed form against the mean of BoTorch's exact hypervolume improvement over Gaussian samples."""
    front = torch.tensor([[1.0, 3.0], [2.0, 2.0], [3.0, 0.5]], dtype=torch.float64)
    ref = torch.zeros(2, dtype=torch.float64)
    cells = FastNondominatedPartitioning(ref_point=ref, Y=front).get_hypercell_bounds()
    mean = torch.tensor([[2.5, 2.5], [1.0, 1.0], [4.0, 0.2]], dtype=torch.float64)
    sd = torch.tensor([[0.5, 0.3], [0.2, 0.2], [1.0, 0.4]], dtype=torch.float64)
    hv = Hypervolume(ref)
    base = hv.compute(front)
    gen = torch.Generator().manual_seed(0)
    for i in range(len(mean)):
        draws = mean[i] + sd[i] * torch.randn(4000, 2, generator=gen, dtype=torch.float64)
        mc = float(np.mean([hv.compute(torch.cat([front, y[None]])) - base for y in draws]))
        exact = float(expected_hypervolume_improvement(mean[i : i + 1], sd[i : i + 1], cells)[0])
        assert abs(exact - mc) < 0.03 * max(mc, 0.1)


def test_the_front_acquisition_grows_the_front_more_than_the_objective_alone_or_random() -> None:
    """Hypervolume of the trained mixtures' true points after 10 suggestions, the same seeds for every arm;
    reference: the true front's nadir plus 10% of its range (the region where the front is decided)."""
    pool = np.random.default_rng(123).dirichlet(np.ones(4), 300)
    truth = metrics(pool)
    front = truth[non_dominated(truth)]
    ref = front.max(axis=0) + 0.1 * np.ptp(front, axis=0)
    hv = {arm: [hypervolume(search(arm, seed, pool), ref) for seed in range(3)]
          for arm in ("front", "objective", "random")}
    for other in ("objective", "random"):
        assert all(f > o for f, o in zip(hv["front"], hv[other], strict=True)), hv


def test_multi_fidelity_front_suggestions_are_cost_aware_and_warm_started() -> None:
    obs = observations(20, 5, seed=1)
    obs = dataclasses.replace(obs, metrics=metrics(obs.mixtures, obs.fidelities))
    prob = two_objective(True, SPACE)
    props = BayesOptMethod(SMALL).suggest(context(obs, prob), 4)
    assert len(props) == 4 and len({p.mixture.tobytes() for p in props}) == 4
    assert all(p.fidelity[0] in (LOW, HIGH) for p in props)
    assert all(p.details["expected_hypervolume_improvement"] >= 0.0 for p in props)
    assert set(props[0].details["bo_state"][TRADE_OFFS]) == {"1"}
