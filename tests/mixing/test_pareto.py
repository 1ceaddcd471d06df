"""Fronts, dominance and hypervolume (mixing.pareto) and outcome constraints in the laws (mixing.outcomes)."""

from __future__ import annotations

import numpy as np
import pytest

from mixing.errors import NoFeasibleMixtureError
from mixing.methods.base import SearchContext
from mixing.methods.design import best_observed
from mixing.methods.law import LawMethod
from mixing.methods.regmix import RegMixMethod
from mixing.outcomes import probability_of
from mixing.pareto import front_axes, hypervolume, non_dominated, predicted_front
from mixing.problem import FidelitySpace, Observations, OutcomeConstraint, Problem, TradeOff
from mixing.sampling import prior_candidates
from mixing.simplex import SimplexConstraints


def test_non_dominated_keeps_exactly_the_front() -> None:
    p = np.array([[1, 5], [2, 3], [3, 4], [4, 1], [2, 3], [np.nan, 0], [5, 5]], dtype=float)
    assert non_dominated(p).tolist() == [True, True, False, True, True, False, False]  # ties both stay


def test_hypervolume_two_axes_exact_and_more_axes_by_botorch() -> None:
    p = np.array([[1.0, 3.0], [2.0, 1.0]])
    assert hypervolume(p, np.array([4.0, 4.0])) == pytest.approx(3 * 1 + 2 * 2)  # union of two boxes: 3+6-2
    assert hypervolume(np.array([[5.0, 5.0]]), np.array([4.0, 4.0])) == 0.0
    rng = np.random.default_rng(0)
    q = rng.random((12, 3))
    ref = np.ones(3)
    mc = rng.random((200_000, 3))
    dominated = np.any(np.all(q[None, :, :] <= mc[:, None, :], axis=2), axis=1).mean()
    assert hypervolume(q, ref) == pytest.approx(dominated, abs=0.01)


def test_probability_of_feasibility_is_gaussian_from_the_90_percent_halfwidth() -> None:
    p = probability_of(np.array([[1.0, 0.0]]), np.array([[1.6448536269514722, 0.0]]), np.array([1.0, -1.0]),
                       np.array([2.0, -1.0]))
    assert p[0] == pytest.approx(0.8413447460685429)  # Phi(1) for the first, certain for the second


def _synthetic() -> tuple[Problem, Observations]:
    """Objective m0 falls with w0, constrained m1 rises with it: m1 <= 2.75 means w0 <= 0.5."""
    rng = np.random.default_rng(0)
    w = rng.dirichlet(np.ones(3), 60)
    m = np.c_[3 - 2 * w[:, 0], 2 + 3 * w[:, 0] ** 2] + 0.005 * rng.standard_normal((60, 2))
    obs = Observations(w, np.zeros((60, 0)), m, np.ones(60), np.zeros((0, 3)), np.zeros((0, 0)))
    prob = Problem(("a", "b", "c"), SimplexConstraints.unconstrained(3), ("m0", "m1"), np.array([1.0, 0.0]),
                   prior=np.array([0.2, 0.4, 0.4]),
                   outcome_constraints=(OutcomeConstraint(metric=1, upper=True, bound=2.75),))
    return prob, obs


@pytest.mark.parametrize("method", [LawMethod(n_candidates=5000), RegMixMethod(n_candidates=5000, n_estimators=200)])
def test_laws_and_regmix_recommend_the_best_feasible_mixture(method: LawMethod | RegMixMethod) -> None:
    prob, obs = _synthetic()
    rec = method.recommend(SearchContext(prob, obs, np.random.default_rng(1)))
    (out,) = rec.outcomes
    assert out.probability >= 0.9 and 2 + 3 * rec.mixture[0] ** 2 <= 2.75 + 0.05
    assert rec.mixture[0] > 0.3  # it optimises within the set: m0 wants w0 as large as the bound allows
    impossible = Problem(prob.domains, prob.constraints, prob.metric_names, prob.metric_weights,
                         outcome_constraints=(OutcomeConstraint(metric=1, upper=True, bound=1.0),))
    with pytest.raises(NoFeasibleMixtureError):
        method.recommend(SearchContext(impossible, obs, np.random.default_rng(1)))


def test_relative_bounds_use_the_measured_baseline_else_the_prediction() -> None:
    prob, obs = _synthetic()
    rel = Problem(prob.domains, prob.constraints, prob.metric_names, prob.metric_weights,
                  outcome_constraints=(OutcomeConstraint(metric=1, upper=True, baseline=obs.mixtures[3], slack=0.1),))
    out = best_observed(SearchContext(rel, obs, np.random.default_rng(0)), "best").outcomes[0]
    assert out.bound == pytest.approx(obs.metrics[3, 1] * 1.1)
    fitted = LawMethod().fit(SearchContext(rel, obs, np.random.default_rng(0)))
    unseen = Problem(prob.domains, prob.constraints, prob.metric_names, prob.metric_weights,
                     outcome_constraints=(OutcomeConstraint(metric=1, upper=True, baseline=np.full(3, 1 / 3)),))
    resolved = fitted.outcomes(SearchContext(unseen, obs, np.random.default_rng(0)))
    assert resolved.bound[0] == pytest.approx(fitted.metrics(np.full((1, 3), 1 / 3))[0, 1])


def test_the_predicted_front_trades_the_objective_against_the_constrained_metric() -> None:
    prob, obs = _synthetic()
    ctx = SearchContext(prob, obs, np.random.default_rng(0))
    fitted = LawMethod().fit(ctx)
    front = predicted_front(ctx, fitted, prior_candidates(3000, prob.constraints, prob.prior, ctx.rng))
    assert [a.name for a in front.axes] == ["objective", "m1"] and front.axes[1].bound == 2.75
    assert [a.name for a in front_axes(prob)] == ["objective", "m1"]
    assert len(front.values) >= 5 and non_dominated(front.values).all()
    assert np.all(np.diff(front.values[:, 0]) >= 0) and np.all(np.diff(front.values[:, 1]) <= 1e-12)
    assert np.all(front.lower <= front.values) and np.all(front.values <= front.upper)
    assert front.observed.shape == (60, 2) and 1 <= front.observed_front.sum() < 60
    assert np.all((front.feasibility >= 0) & (front.feasibility <= 1))


def test_a_relative_bound_is_on_the_scale_of_the_level_the_model_predicts_at() -> None:
    """A single-level fit on cheap runs resolves the baseline at that level, not from a target run of another
    scale: bound and predictions must be comparable."""
    prob, obs = _synthetic()
    space = FidelitySpace(("params",), np.array([1e6]), np.array([1e9]), np.array([1e9]))
    base = obs.mixtures[3]
    runs = Observations(np.vstack([obs.mixtures, base]), np.r_[np.full((60, 1), 1e6), [[1e9]]],
                        np.vstack([obs.metrics, obs.metrics[3] - 1.0]), np.ones(61), np.zeros((0, 3)),
                        np.zeros((0, 1)))
    rel = Problem(prob.domains, prob.constraints, prob.metric_names, prob.metric_weights, fidelity=space,
                  outcome_constraints=(OutcomeConstraint(metric=1, upper=True, baseline=base),))
    ctx = SearchContext(rel, runs, np.random.default_rng(0))
    fitted = RegMixMethod(n_estimators=100).fit(ctx)
    assert fitted.outcomes(ctx).bound[0] == pytest.approx(obs.metrics[3, 1])  # its 1M run, not the 1B one
    law = LawMethod().fit(ctx)  # a law that models fidelity predicts at the target: the 1B run is its scale
    assert law.outcomes(ctx).bound[0] == pytest.approx(obs.metrics[3, 1] - (1.0 if law.at is not None else 0.0))


def test_front_axes_name_each_metric_once_with_its_first_direction() -> None:
    prob, _ = _synthetic()
    both = Problem(prob.domains, prob.constraints, ("m0", "m1", "m2"), np.array([0.5, 0.5, 0.0]),
                   outcome_constraints=(OutcomeConstraint(metric=1, upper=True, bound=3.0),),
                   trade_offs=(TradeOff(metric=1, minimize=False), TradeOff(metric=2, minimize=False)))
    assert [(a.name, a.minimize) for a in front_axes(both)] == [("objective", True), ("m1", True), ("m2", False)]
    plain = Problem(prob.domains, prob.constraints, ("m0", "m1", "m2"), np.array([0.5, 0.5, 0.0]))
    assert [a.name for a in front_axes(plain)] == ["m0", "m1"]
