"""The law engine as a search method: constraints, pending points, orientation, intervals, fidelities."""

from __future__ import annotations

import numpy as np
import pytest

from mixing.evaluation import evaluate_laws
from mixing.methods import available_methods
from mixing.methods.base import SearchContext
from mixing.methods.law import LawMethod
from mixing.problem import Candidates, FidelitySpace, Observations, Problem
from mixing.simplex import SimplexConstraints
from tests.mixing.laws.synthetic import exp_law, mixtures

C = np.array([2.0, 1.5])
K = np.array([1.0, 0.5])
T = np.array([[-3.0, 0.5, 1.0, 0.2], [0.3, -2.0, 0.1, 0.4]])
BOUNDS = SimplexConstraints(np.array([0.05, 0.0, 0.1, 0.0]), np.array([0.6, 0.5, 1.0, 0.3]))
FAST = LawMethod(n_candidates=4000, top_k=32)


def truth(x: np.ndarray) -> np.ndarray:
    return exp_law(x, C, K, T)


def context(
    goal: str = "minimize",
    hints: dict | None = None,
    n: int = 80,
    pending: int = 3,
    fidelity: FidelitySpace | None = None,
    fidelities: np.ndarray | None = None,
) -> SearchContext:
    x = BOUNDS.project(mixtures(n, 4, seed=1))
    y = truth(x) + np.random.default_rng(2).normal(0, 0.01, (n, 2))
    if goal == "maximize":
        y = -y
    space = fidelity or FidelitySpace()
    fid = fidelities if fidelities is not None else np.zeros((n, space.n_axes))
    problem = Problem(
        domains=("a", "b", "c", "d"),
        constraints=BOUNDS,
        metric_names=("m1", "m2"),
        metric_weights=np.array([0.5, 0.5]),
        goal=goal,  # type: ignore[arg-type]
        fidelity=space,
    )
    obs = Observations(x, fid, y, np.ones(n), x[:pending].copy(), fid[:pending].copy())
    return SearchContext(
        problem,
        obs,
        np.random.default_rng(3),
        hints if hints is not None else {"selected_law": "data_mixing_law"},
    )


def test_law_method_is_registered() -> None:
    assert available_methods()["law"] is LawMethod


@pytest.mark.parametrize("goal", ["minimize", "maximize"])
def test_recommendation_is_feasible_near_the_true_optimum_and_in_the_users_orientation(goal: str) -> None:
    ctx = context(goal)
    rec = FAST.recommend(ctx)
    assert BOUNDS.contains(rec.mixture[None, :]).all()
    grid = BOUNDS.project(mixtures(20000, 4, seed=4))
    best = (truth(grid) @ [0.5, 0.5]).min()
    achieved = float((truth(rec.mixture[None, :]) @ [0.5, 0.5])[0])
    assert achieved == pytest.approx(best, abs=0.02)
    sign = 1.0 if goal == "minimize" else -1.0
    assert rec.predicted.value == pytest.approx(sign * achieved, abs=0.05)
    assert rec.predicted.lower is not None and rec.predicted.upper is not None
    assert rec.predicted.lower < rec.predicted.value < rec.predicted.upper
    assert rec.details["law"] == "data_mixing_law" and rec.details["interval"] == "conformal_cv_refits"
    assert rec.method == "law" and rec.n_runs == 80


def test_suggestions_are_feasible_distinct_and_never_pending() -> None:
    ctx = context()
    props = FAST.suggest(ctx, 6)
    assert len(props) == 6
    pts = np.array([p.mixture for p in props])
    assert BOUNDS.contains(pts).all()
    for p in props:
        assert np.abs(ctx.observations.pending_mixtures - p.mixture).sum(axis=1).min() > 1e-6
        assert p.predicted is not None and p.predicted.lower is not None and p.predicted.upper is not None
        assert p.predicted.lower < p.predicted.value < p.predicted.upper
    dist = np.abs(pts[:, None, :] - pts[None, :, :]).sum(axis=2) + np.eye(6)
    assert dist.min() > 1e-6
    assert props[0].details["pick"] == "best"
    values = [p.predicted.value for p in props if p.predicted is not None]
    assert props[0].predicted is not None and props[0].predicted.value == min(values)


def test_suggestions_from_candidates_skip_pending_and_infeasible_ones() -> None:
    ctx = context()
    pending = ctx.observations.pending_mixtures
    infeasible = np.array([[0.0, 0.0, 0.0, 1.0]])  # breaks the 0.3 cap of d and the 0.05 floor of a
    fresh = BOUNDS.project(mixtures(5, 4, seed=9))
    pool = np.concatenate([pending, infeasible, fresh])
    cands = Candidates(pool, np.full((len(pool), 0), np.nan))
    props = FAST.suggest(ctx, 10, candidates=cands)
    chosen = np.array([p.mixture for p in props])
    assert len(props) == 5
    assert all(np.abs(fresh - m).sum(axis=1).min() < 1e-12 for m in chosen)


def test_gp_intervals_come_from_its_posterior_and_predict_gives_metrics() -> None:
    ctx = context(hints={"selected_law": "gp"})
    rec = FAST.recommend(ctx)
    assert rec.details["interval"] == "gp_posterior_calibrated"
    metrics, objective, half = FAST.predictor(ctx).predict(ctx.observations.mixtures[:5])
    assert metrics.shape == (5, 2) and objective.shape == (5,) and np.all(half > 0)
    assert np.allclose(objective, metrics @ [0.5, 0.5])


def test_a_fidelity_aware_law_uses_every_scale_and_predicts_at_the_target() -> None:
    space = FidelitySpace(("params",), np.array([1e6]), np.array([1e8]), np.array([1e8]))
    n = 120
    levels = np.random.default_rng(5).choice([1e6, 1e7], size=(n, 1))
    ctx = context(hints={"selected_law": "gp"}, n=n, fidelity=space, fidelities=levels)
    rec = FAST.recommend(ctx)
    assert rec.details["fitted_on_fidelities"] == "all" and rec.n_runs == n
    single = FAST.recommend(
        context(hints={"selected_law": "data_mixing_law"}, n=n, fidelity=space, fidelities=levels)
    )
    assert single.details["fitted_on_fidelities"] == "nearest" and single.n_runs == int((levels == 1e7).sum())


def test_without_a_hint_the_method_selects_a_law_itself() -> None:
    rec = FAST.recommend(context(hints={}, n=40))
    assert rec.details["selection"]["source"] == "quick_selection"
    assert BOUNDS.contains(rec.mixture[None, :]).all()


def test_an_ensemble_hint_is_followed_only_with_its_members_and_weights() -> None:
    ctx = context(hints={"selected_law": "ensemble"}, n=40)
    assert FAST.recommend(ctx).details["selection"]["source"] == "quick_selection"
    obs = ctx.observations
    report = evaluate_laws(["regmix_linear", "data_mixing_law"], obs.mixtures, None, obs.metrics, [0.5, 0.5])
    hints = {"selected_law": "ensemble", "law_params": report.law("ensemble").params}
    rec = FAST.recommend(context(hints=hints, n=40))
    assert rec.details["selection"]["source"] == "hint" and rec.details["law"] == "ensemble"
