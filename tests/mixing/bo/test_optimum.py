"""The multi-fidelity GP finds the target optimum although cheap runs are biased, for either goal."""

from __future__ import annotations

import numpy as np

from mixing.methods.bo import BayesOptMethod
from mixing.problem import FidelitySpace, Observations
from tests.mixing.bo.synthetic import HIGH, OPT, SMALL, context, observations, problem, true_loss


def test_recommendation_recovers_the_target_optimum_despite_biased_proxies() -> None:
    obs = observations(60, 20, seed=1)
    rec = BayesOptMethod(SMALL).recommend(context(obs))
    proxy_only_opt = OPT + np.array(
        [0.1, -0.1 / 3, -0.1 / 3, -0.1 / 3]
    )  # where the tilt moves the proxy optimum
    assert np.abs(rec.mixture - OPT).sum() < 0.15
    assert np.abs(rec.mixture - OPT).sum() < np.abs(rec.mixture - proxy_only_opt).sum()
    assert rec.fidelity.tolist() == [HIGH]
    truth = true_loss(rec.mixture, [HIGH])[0]
    assert rec.predicted.lower <= truth <= rec.predicted.upper
    assert truth < true_loss(obs.mixtures[obs.fidelities[:, 0] == HIGH], HIGH).min()


def test_maximised_objectives_are_reported_in_the_users_orientation() -> None:
    obs = observations(40, 15, seed=2, sign=-1.0)
    rec = BayesOptMethod(SMALL).recommend(context(obs, problem(goal="maximize")))
    assert np.abs(rec.mixture - OPT).sum() < 0.25
    assert rec.predicted.value < 0
    assert rec.predicted.lower < rec.predicted.value < rec.predicted.upper
    assert abs(rec.predicted.value + true_loss(rec.mixture, [HIGH])[0]) < 0.1


def test_without_fidelity_axes_it_is_single_fidelity_bo() -> None:
    full = observations(0, 40, seed=3)
    obs = Observations(
        full.mixtures, np.zeros((40, 0)), full.metrics, full.costs, np.zeros((0, 4)), np.zeros((0, 0))
    )
    prob = problem(fidelity=FidelitySpace())
    method = BayesOptMethod(SMALL)
    rec = method.recommend(context(obs, prob))
    props = method.suggest(context(obs, prob), 3)
    assert np.abs(rec.mixture - OPT).sum() < 0.2
    assert rec.fidelity.shape == (0,)
    assert len(props) == 3 and all(p.fidelity.shape == (0,) for p in props)
