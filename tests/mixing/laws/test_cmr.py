"""The CMR law (continual pretraining): recovery from synthetic runs drawn from it, the critical mixture ratio,
its interval, validation at a larger token count, and the estimator contract.

The law is not in the registry of mixture laws (it models two groups and needs raw token counts), so the
contract checks of ``test_contract.py`` are repeated here on its own inputs.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from scipy import stats
from sklearn.base import clone

from mixing.continual import critical_mixture_ratio, delta_se, design, validate_cmr_law
from mixing.errors import InputShapeError, NotEnoughDataError, NotFittedError
from mixing.laws import LAWS
from mixing.laws.cmr import CMRLaw, ToleranceKind
from tests.mixing.laws.checks import assert_every_hyperparameter_validated_at_fit
from tests.mixing.laws.synthetic import CMR_OFFSET, CMR_TRUTH, cmr_losses, cmr_runs, true_cmr

#: The base model's general loss: the general law at r = 0 after the smallest token count.
BASE = float(cmr_losses(np.zeros(1), np.array([1e8]))[0, 0])
TARGET = 4e9
TOL = 0.02


def fitted(noise: float = 0.005, seed: int = 0) -> CMRLaw:
    return CMRLaw().fit(*design(*cmr_runs(noise, seed)))


def test_parameters_are_recovered_from_noisy_runs() -> None:
    law = fitted()
    for group, (e, a, alpha, beta) in CMR_TRUTH.items():
        got = law.params()[group]
        assert pytest.approx(e, abs=0.1) == got.E
        assert got.alpha == pytest.approx(alpha, rel=0.15)
        assert got.beta == pytest.approx(beta, rel=0.1)
        assert np.log(got.A) == pytest.approx(np.log(a), abs=0.5)


def test_the_critical_ratio_is_found_within_tolerance_and_its_interval_covers_the_truth() -> None:
    truth = true_cmr(BASE + TOL, TARGET)
    assert 0.3 < truth < 0.9  # the setting has a ratio worth finding
    answer = critical_mixture_ratio(*cmr_runs(0.005, 1), base_general_loss=BASE, tolerance=TOL,
                                    target_tokens=TARGET)
    assert answer.point.feasible
    assert answer.point.ratio == pytest.approx(truth, abs=0.05)
    assert answer.ratio_interval.lower <= truth <= answer.ratio_interval.upper
    assert answer.ratio_interval.lower <= answer.point.ratio <= answer.ratio_interval.upper
    assert answer.residual_dof == len(cmr_runs(0.005, 1)[0]) - 4
    # At the CMR the general loss sits on the tolerance, and the domain loss is the truth's there.
    assert answer.point.general_loss == pytest.approx(BASE + TOL, abs=1e-6)
    true_there = cmr_losses(np.array([answer.point.ratio]), np.array([TARGET]))[0]
    assert answer.point.domain_loss == pytest.approx(true_there[1], abs=0.05)
    assert answer.domain_interval.lower <= answer.point.domain_loss <= answer.domain_interval.upper


def test_the_answer_is_deterministic() -> None:
    runs = cmr_runs(0.01, 2)
    kw: dict[str, Any] = dict(base_general_loss=BASE, tolerance=TOL, target_tokens=TARGET)
    assert critical_mixture_ratio(*runs, **kw) == critical_mixture_ratio(*runs, **kw)


def test_the_interval_is_a_t_interval_on_the_delta_method_standard_error() -> None:
    """Its half-width is t(n - 4) standard errors, and the standard error is the spread of the CMR over
    refits to fresh noise (within the Monte Carlo error of 40 refits), so the interval widens with fewer
    runs both through the error and through the t quantile."""
    noise = 0.01
    kw: dict[str, Any] = dict(base_general_loss=BASE, tolerance=TOL, target_tokens=TARGET)
    r, t, y = cmr_runs(noise, 8)
    answer = critical_mixture_ratio(r, t, y, **kw)
    se = delta_se(CMRLaw().fit(*design(r, t, y)), *design(r, t, y), BASE + TOL, TARGET)
    half = (answer.ratio_interval.upper - answer.ratio_interval.lower) / 2
    assert half == pytest.approx(stats.t.ppf(0.95, answer.residual_dof) * se[0], rel=1e-9)
    refits = [critical_mixture_ratio(*cmr_runs(noise, 100 + k), **kw).point.ratio for k in range(40)]
    assert se[0] == pytest.approx(np.std(refits, ddof=1), rel=0.35)


def test_the_critical_ratio_grows_with_the_token_budget_as_the_cmr_scaling_law_says() -> None:
    law = fitted(noise=0.0)
    ratios = [law.critical_ratio(BASE, TOL, t).ratio for t in (1e9, 4e9, 1.6e10)]
    assert ratios[0] < ratios[1] < ratios[2]
    for t, got in zip((1e9, 4e9, 1.6e10), ratios, strict=True):
        assert got == pytest.approx(true_cmr(BASE + TOL, t), abs=2e-3)


def test_a_relative_tolerance_is_a_fraction_of_the_base_loss() -> None:
    law = fitted()
    relative = law.critical_ratio(BASE, TOL / BASE, TARGET, ToleranceKind.relative)
    assert relative.ratio == pytest.approx(law.critical_ratio(BASE, TOL, TARGET).ratio, abs=1e-9)


def test_no_ratio_is_feasible_when_even_pure_replay_breaks_the_tolerance() -> None:
    law = fitted()
    below_floor = CMR_TRUTH["general"][0] - 0.5  # no amount of replay reaches it
    answer = law.critical_ratio(below_floor, 0.01, TARGET)
    assert not answer.feasible and answer.ratio == 0.0
    generous = law.critical_ratio(BASE, 10.0, TARGET)
    assert generous.feasible and generous.ratio == 1.0


def test_held_out_runs_at_the_largest_token_count_are_predicted_from_the_smaller_ones() -> None:
    noise = 0.005
    report = validate_cmr_law(*cmr_runs(noise, 4), folds=5)
    assert report.heldout_tokens == 8e8 and report.n_heldout == 5
    assert report.heldout is not None and report.cv is not None and report.folds == 5
    # Errors of the order of the noise (the mean absolute value of N(0, s) is 0.8 s): the law extrapolates.
    assert report.heldout.general < 4 * noise and report.heldout.domain < 4 * noise
    assert report.cv.general < 4 * noise and report.cv.domain < 4 * noise


def test_a_misspecified_law_shows_in_the_held_out_error() -> None:
    """Validation can fail: losses that stop improving with tokens are not a power law in T."""
    r, t, y = cmr_runs(0.005, 5)
    y = y.copy()
    y[t == t.max()] += 0.3  # the largest token count got worse: the fitted trend cannot foresee it
    report = validate_cmr_law(r, t, y)
    assert report.heldout is not None and report.heldout.general > 0.1


def test_a_single_token_count_leaves_nothing_to_hold_out() -> None:
    r, t, y = cmr_runs(0.005, 6, tokens=(1e8, 1e8))
    report = validate_cmr_law(r, t, y)
    assert report.heldout is None


@pytest.mark.parametrize("ratios, tokens", [((0.0, 0.5), (1e8, 2e8)),          # 4 distinct runs
                                            ((0.0, 0.2, 0.4, 0.6, 0.8), (1e8,))])  # one token count
def test_too_few_distinct_runs_are_refused(ratios: tuple[float, ...], tokens: tuple[float, ...]) -> None:
    r, t, y = cmr_runs(0.005, 7, ratios=ratios, tokens=tokens)
    with pytest.raises(NotEnoughDataError):
        CMRLaw().fit(*design(r, t, y))


# ------------------------------------------------------------------------------------------ the contract
def test_it_is_not_a_registered_mixture_law() -> None:
    assert CMRLaw.name not in LAWS


def test_fit_returns_self_and_predicts_one_column_per_group() -> None:
    x, t, y = design(*cmr_runs(0.005, 0))
    law = CMRLaw()
    assert law.fit(x, t, y) is law
    assert law.predict(x, t).shape == (len(x), 2)
    assert law.predict(x[0], t[0]).shape == (1, 2)
    assert np.array_equal(law.predict(x, t), CMRLaw().fit(x, t, y).predict(x, t))  # deterministic


def test_predicting_before_fitting_raises_not_fitted_and_clone_drops_the_fit() -> None:
    x, t, _ = design(*cmr_runs(0.005, 0))
    with pytest.raises(NotFittedError):
        CMRLaw().predict(x, t)
    law = fitted()
    copy = clone(law)
    assert copy.get_params() == law.get_params()
    with pytest.raises(NotFittedError):
        copy.predict(x, t)


def test_wrong_shapes_raise_one_error() -> None:
    x, t, y = design(*cmr_runs(0.005, 0))
    law = fitted()
    with pytest.raises(InputShapeError, match="domains"):
        law.predict(np.column_stack([x, x[:, :1]]), t)
    with pytest.raises(InputShapeError, match="fidelity"):
        law.predict(x, np.column_stack([t, t]))
    with pytest.raises(InputShapeError):
        CMRLaw().fit(x, t, y[:-1])
    with pytest.raises(InputShapeError, match="two loss columns"):
        CMRLaw().fit(x, t, y[:, :1])
    with pytest.raises(InputShapeError, match="two domains"):
        CMRLaw().fit(np.column_stack([x, x[:, :1]]), t, y)
    with pytest.raises(InputShapeError):
        design([0.1, 0.2], [1e8], np.zeros((2, 2)))
    with pytest.raises(InputShapeError, match=r"\[0, 1\]"):
        design([0.1, 1.2], [1e8, 1e8], np.zeros((2, 2)))


def test_every_hyperparameter_is_validated_at_fit_naming_it() -> None:
    x, t, y = design(*cmr_runs(0.005, 0))
    law = CMRLaw()
    assert_every_hyperparameter_validated_at_fit(law, x, t, y)


def test_the_offset_is_the_one_the_synthetic_truth_uses() -> None:
    """The recovery tests compare like with like: the default offset is the generator's."""
    assert CMRLaw().offset == CMR_OFFSET


def test_leverages_sum_to_the_parameters_of_each_group() -> None:
    """The hat matrix's trace is its rank: four parameters per group, each leverage in [0, 1]."""
    x, t, _ = design(*cmr_runs(0.005, 0))
    h = fitted().leverage(x, t)
    assert h.shape == (len(x), 2) and (h >= -1e-9).all() and (h <= 1 + 1e-9).all()
    assert np.allclose(h.sum(axis=0), 4.0, atol=1e-6)
