"""BO under outcome constraints: one GP per constrained metric, probability of feasibility in the acquisition
and in the recommendation, at every fidelity."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from botorch.acquisition.analytic import LogConstrainedExpectedImprovement, LogExpectedImprovement
from botorch.models import ModelListGP

from mixing.bo.surrogate import botorch_model
from mixing.errors import NoFeasibleMixtureError
from mixing.methods.bo import BayesOptMethod
from mixing.outcomes import Z90
from mixing.problem import Observations, OutcomeConstraint, Problem
from tests.mixing.bo.synthetic import HIGH, LOW, SMALL, SPACE, context, observations, problem

#: The constrained metric rises with domain ``a``; at the target ``share <= BOUND`` means a <= 0.25, which
#: the unconstrained optimum (a = 0.4) breaks. Proxies see it shifted, as they see the loss.
BOUND = 2.5


def share(w: np.ndarray, params: np.ndarray) -> np.ndarray:
    s = SPACE.normalise(np.asarray(params, dtype=np.float64).reshape(-1, 1))[:, 0]
    return 2.0 + 2.0 * np.atleast_2d(w)[:, 0] + 0.3 * (1.0 - s)


def constrained(bound: float = BOUND) -> tuple[Problem, Observations]:
    obs = observations(30, 10, seed=0)
    metrics = np.column_stack([obs.metrics[:, 0], share(obs.mixtures, obs.fidelities)])
    base = problem()
    prob = dataclasses.replace(base, metric_names=("loss", "share"), metric_weights=np.array([1.0, 0.0]),
                               outcome_constraints=(OutcomeConstraint(metric=1, upper=True, bound=bound),))
    return prob, dataclasses.replace(obs, metrics=metrics)


def test_the_recommendation_meets_the_constraint_that_the_free_optimum_breaks() -> None:
    prob, obs = constrained()
    free = BayesOptMethod(SMALL).recommend(context(obs, dataclasses.replace(prob, outcome_constraints=())))
    assert free.mixture[0] > 0.3 and free.outcomes == ()
    rec = BayesOptMethod(SMALL).recommend(context(obs, prob))
    (out,) = rec.outcomes
    assert out.metric == "share" and out.op == "<=" and out.bound == BOUND and out.probability >= 0.9
    assert share(rec.mixture, np.array([HIGH]))[0] <= BOUND + 0.02
    assert out.lower < out.value < out.upper
    assert len(rec.details["bo_state"]["outcomes"]) == 1  # warm start for the constraint's GP too


def test_no_feasible_mixture_is_an_error_not_an_infeasible_answer() -> None:
    prob, obs = constrained(bound=1.0)
    with pytest.raises(NoFeasibleMixtureError):
        BayesOptMethod(SMALL).recommend(context(obs, prob))


def test_probability_of_feasibility_is_botorchs() -> None:
    """The factor the acquisition multiplies by is BoTorch's: LogConstrainedEI - LogEI, on the same GPs."""
    prob, obs = constrained()
    method = BayesOptMethod(SMALL)
    fitted = method.fit(context(obs, prob))
    s, (c,) = fitted.surrogate, fitted.outcome_fits
    mix = np.random.default_rng(3).dirichlet(np.ones(4), 40)
    ours = fitted.outcomes.probability(mix)
    objective = botorch_model(s.gp.posterior.x, s.gp.posterior.y, 4, 1, s.gp.state["params"])
    con = botorch_model(c.gp.posterior.x, c.gp.posterior.y, 4, 1, c.gp.state["params"])
    bound = (BOUND - c.gp.y_mean) / c.gp.y_std
    z = s.inputs(mix, np.array([HIGH])).unsqueeze(1)
    with torch.no_grad():
        cei = LogConstrainedExpectedImprovement(ModelListGP(objective, con), best_f=0.0, objective_index=0,
                                                constraints={1: (None, bound)}, maximize=False)(z)
        ei = LogExpectedImprovement(objective, best_f=0.0, maximize=False)(z)
    assert np.allclose(ours, torch.exp(cei - ei).numpy(), rtol=1e-3, atol=1e-6)
    assert fitted.outcomes.model(mix)[1][:, 0] == pytest.approx(Z90 * c.predict(mix, np.array([HIGH]))[1], rel=1e-6)


def test_suggestions_favour_mixtures_likely_to_be_feasible_at_every_fidelity() -> None:
    prob, obs = constrained()
    free = BayesOptMethod(SMALL).suggest(context(obs, dataclasses.replace(prob, outcome_constraints=())), 6)
    picked = BayesOptMethod(SMALL).suggest(context(obs, prob), 6)
    fitted = BayesOptMethod(SMALL).fit(context(obs, prob))
    p_free = fitted.outcomes.probability(np.array([p.mixture for p in free]))
    p_picked = fitted.outcomes.probability(np.array([p.mixture for p in picked]))
    assert p_picked.mean() > p_free.mean()
    assert {float(p.fidelity[0]) for p in picked} <= {LOW, HIGH}


def test_the_bo_front_trades_the_objective_against_the_constrained_metric() -> None:
    from mixing.pareto import non_dominated, predicted_front
    from mixing.sampling import prior_candidates

    prob, obs = constrained()
    ctx = context(obs, prob)
    front = predicted_front(ctx, BayesOptMethod(SMALL).front_model(ctx),
                            prior_candidates(2000, prob.constraints, None, np.random.default_rng(0)))
    assert [a.name for a in front.axes] == ["objective", "share"] and front.axes[1].bound == BOUND
    assert len(front.values) >= 5 and non_dominated(front.values).all()
    assert np.all(front.lower < front.values) and np.all(front.values < front.upper)
    # along the front the objective falls as the share rises towards the unconstrained optimum's a = 0.4
    assert np.all(np.diff(front.values[:, 0]) >= 0) and front.values[-1, 1] < front.values[0, 1]
    assert front.observed.shape == (10, 2)  # the runs at the target level
