"""The recommendation's guard: an extrapolated optimum must confidently beat what was measured at the target.

Confidently means by the posterior of the *difference* between the two: uncertainty that every mixture
shares (the target-scale offset) must not hold back a mixture that is surely better.
"""

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
    """A stand-in surrogate: the mean falls towards domain ``a``.

    Each mixture's uncertainty has a part of its own, growing with distance from MEASURED (``sd_scale``),
    and an offset shared by all mixtures (``offset_sd``), which cancels in any difference.
    """

    problem: Problem
    sd_scale: float
    offset_sd: float = 0.0

    def _own_sd(self, x: np.ndarray) -> np.ndarray:
        return self.sd_scale * np.abs(np.atleast_2d(x) - MEASURED).sum(axis=1)

    def predict(self, mixtures: np.ndarray, fidelity: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = np.atleast_2d(mixtures)
        return 3.0 - 0.1 * x[:, 0], np.hypot(self._own_sd(x), self.offset_sd)

    def difference(self, a: np.ndarray, b: np.ndarray, fidelity: np.ndarray) -> tuple[float, float]:
        mean = self.predict(np.stack([a, b]), fidelity)[0]
        return float(mean[0] - mean[1]), float(np.hypot(*self._own_sd(np.stack([a, b]))))


def _observed(params: float) -> Observations:
    return Observations(MEASURED[None, :], np.array([[params]]), np.array([[2.975]]), np.ones(1),
                        np.zeros((0, 4)), np.zeros((0, 1)))


def test_an_unsure_optimum_gives_way_to_the_best_mixture_measured_at_the_target() -> None:
    rng = np.random.default_rng(0)
    unsure = Posterior(problem(), sd_scale=0.1)  # corner - measured: -0.075 +- 0.15, bound > 0
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


def test_uncertainty_shared_by_every_mixture_does_not_hold_the_optimum_back() -> None:
    """The corner's own interval (2.9 +- 1.6) overlaps the measured mixture; their difference's does not."""
    rng = np.random.default_rng(0)
    offset = Posterior(problem(), sd_scale=0.001, offset_sd=1.0)
    mixture, mean, sd = recommend(offset, _observed(HIGH), rng, SMALL)
    assert np.abs(mixture - CORNER).sum() < 0.05
    assert sd > 0.9  # the reported interval is still the optimum's own, offset included


def test_a_pool_recommendation_is_a_pool_member_and_guards_only_with_pool_members() -> None:
    rng = np.random.default_rng(0)
    unsure = Posterior(problem(), sd_scale=0.1)
    pool = np.array([[0.7, 0.1, 0.1, 0.1], [0.1, 0.7, 0.1, 0.1], [0.1, 0.1, 0.1, 0.7]])
    # MEASURED is not in the pool, so it cannot be the answer: the pool's best by posterior mean is.
    mixture, _, _ = recommend(unsure, _observed(HIGH), rng, SMALL, pool)
    assert np.array_equal(mixture, pool[0])
    # With MEASURED in the pool the guard applies again.
    mixture, _, _ = recommend(unsure, _observed(HIGH), rng, SMALL, np.vstack([pool, MEASURED]))
    assert np.array_equal(mixture, MEASURED)
