"""The recommendation's guard: an extrapolated optimum must confidently beat what was measured at the target."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mixing.bo.engine import recommend
from mixing.problem import Observations, Problem
from tests.mixing.bo.synthetic import HIGH, LOW, SMALL, problem

MEASURED = np.array([0.25, 0.25, 0.25, 0.25])
CORNER = np.array([1.0, 0.0, 0.0, 0.0])


@dataclass
class Posterior:
    """A stand-in surrogate: the mean falls towards domain ``a``; ``sd`` grows with distance from MEASURED."""

    problem: Problem
    sd_scale: float

    def predict(self, mixtures: np.ndarray, fidelity: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = np.atleast_2d(mixtures)
        mean = 3.0 - 0.1 * x[:, 0]
        sd = self.sd_scale * np.abs(x - MEASURED).sum(axis=1)
        return mean, sd


def _observed(params: float) -> Observations:
    return Observations(MEASURED[None, :], np.array([[params]]), np.array([[2.975]]), np.ones(1),
                        np.zeros((0, 4)), np.zeros((0, 1)))


def test_an_unsure_optimum_gives_way_to_the_best_mixture_measured_at_the_target() -> None:
    rng = np.random.default_rng(0)
    unsure = Posterior(problem(), sd_scale=0.1)  # at the corner: mean 2.9, sd 0.15, bound 3.15 > 2.975
    mixture, mean, sd = recommend(unsure, _observed(HIGH), rng, SMALL)
    assert np.allclose(mixture, MEASURED) and mean == 2.975 and sd == 0.0


def test_a_confident_optimum_or_no_target_data_keeps_the_posterior_mean_optimum() -> None:
    rng = np.random.default_rng(0)
    sure = Posterior(problem(), sd_scale=0.001)
    mixture, _, _ = recommend(sure, _observed(HIGH), rng, SMALL)
    assert np.abs(mixture - CORNER).sum() < 0.05
    # The same unsure posterior, but the mixture was measured only at the proxy size: nothing to guard with.
    mixture, _, _ = recommend(Posterior(problem(), sd_scale=0.1), _observed(LOW), rng, SMALL)
    assert np.abs(mixture - CORNER).sum() < 0.05
