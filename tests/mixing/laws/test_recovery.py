"""Each law, fitted on data generated from known parameters, recovers them (or the function they define)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from mixing.errors import FitError, NotEnoughDataError
from mixing.laws import DEFAULT_LAWS, LAWS, UnknownLawError, law_spec, make_law
from mixing.laws.aioli import AioliLogLinear
from mixing.laws.bimix import BiMixLaw
from mixing.laws.data_mixing_law import DataMixingLaw
from mixing.laws.ensemble import StackedEnsemble
from mixing.laws.gp import SimplexGP
from mixing.laws.regmix import RegMixLightGBM, RegMixLinear
from mixing.laws.scaling import ScalingAdditiveLaw, ScalingJointLaw, ScalingMixingLaw
from tests.mixing.laws.synthetic import exp_law, mixtures, power_law

C = np.array([2.0, 1.5, 3.0])
K = np.array([1.0, 0.5, 2.0])
T = np.array([[-3.0, 0.5, 1.0, 0.2], [0.3, -2.0, 0.1, 0.4], [1.0, 1.0, -4.0, -0.5]])


def centred(t: np.ndarray) -> np.ndarray:
    return t - t.mean(axis=1, keepdims=True)


def canonical_k(k: np.ndarray, t: np.ndarray) -> np.ndarray:
    """k of the canonical pair (exponents centred), which is what a fit on the simplex can identify."""
    return k * np.exp(t.mean(axis=1))


def test_registry_names_are_stable_and_make_law_round_trips() -> None:
    assert set(LAWS) == {
        "regmix_linear",
        "regmix_lightgbm",
        "data_mixing_law",
        "aioli_loglinear",
        "bimix",
        "scaling_additive",
        "scaling_joint",
        "gp",
    }
    assert tuple(LAWS) == DEFAULT_LAWS
    for name in LAWS:
        law = make_law(name)
        assert law.name == name
        spec = law_spec(law)
        assert make_law(spec["name"], **spec["params"]).get_params() == law.get_params()
    with pytest.raises(UnknownLawError):
        make_law("no_such_law")


def test_data_mixing_law_recovers_parameters_despite_outliers() -> None:
    x = mixtures(300, 4, seed=1)
    rng = np.random.default_rng(2)
    y = exp_law(x, C, K, T) + rng.normal(0, 0.01, (300, 3))
    y[rng.choice(300, 15, replace=False)] += 2.0  # badly measured runs: Huber must shrug them off
    law = DataMixingLaw().fit(x, None, y)
    assert np.allclose(law.c_, C, atol=0.05)
    assert np.allclose(law.k_, canonical_k(K, T), rtol=0.05)
    assert np.allclose(law.t_, centred(T), atol=0.1)


def test_data_mixing_law_beats_squared_loss_on_outliers() -> None:
    x = mixtures(300, 4, seed=3)
    rng = np.random.default_rng(4)
    clean = exp_law(x, C, K, T)
    y = clean + rng.normal(0, 0.01, (300, 3))
    y[rng.choice(300, 20, replace=False)] += 3.0
    huber = DataMixingLaw().fit(x, None, y)
    squared = AioliLogLinear().fit(x, None, y)
    test = mixtures(200, 4, seed=5)
    err_huber = np.abs(huber.predict(test) - exp_law(test, C, K, T)).mean()
    err_squared = np.abs(squared.predict(test) - exp_law(test, C, K, T)).mean()
    assert err_huber < 0.5 * err_squared


def test_exponential_laws_fit_scores_that_rise_with_the_exponent() -> None:
    """Accuracies: ``c - k exp(t . r)``; the fit must pick the ceiling orientation, k < 0."""
    x = mixtures(300, 4, seed=27)
    y = -exp_law(x, C, K, T) + np.random.default_rng(28).normal(0, 0.005, (300, 3))
    for law in (DataMixingLaw().fit(x, None, y), AioliLogLinear().fit(x, None, y)):
        assert np.allclose(law.c_, -C, atol=0.05)
        assert np.allclose(law.params_.k, -canonical_k(K, T), rtol=0.05)
        assert np.allclose(law.params_.t_centred, centred(T), atol=0.1)


def test_aioli_law_recovers_parameters() -> None:
    x = mixtures(300, 4, seed=6)
    y = exp_law(x, C, K, T) + np.random.default_rng(7).normal(0, 0.005, (300, 3))
    law = AioliLogLinear().fit(x, None, y)
    assert np.allclose(law.c_, C, atol=0.05)
    assert np.allclose(law.b_, canonical_k(K, T), rtol=0.05)
    assert np.allclose(law.a_, -centred(T), atol=0.1)


def test_bimix_recovers_power_laws_and_finds_each_metrics_domain() -> None:
    x = mixtures(400, 5, seed=8, concentration=0.7)
    domains = [3, 0, 4]
    c, a, alpha = np.array([1.0, 2.0, 0.5]), np.array([0.3, 0.5, 0.2]), np.array([0.4, 0.25, 0.6])
    y = power_law(x, domains, c, a, alpha, 1e-3) + np.random.default_rng(9).normal(0, 0.003, (400, 3))
    law = BiMixLaw().fit(x, None, y)
    assert law.domains_.tolist() == domains
    assert np.allclose(law.alpha_, alpha, rtol=0.1)
    assert np.allclose(law.theta_[:, 0], c, atol=0.05)
    assert np.allclose(law.eps_, 1e-3, rtol=0.3)


def test_bimix_step_term_recovers_the_decay_with_training_length() -> None:
    x = mixtures(400, 3, seed=10)
    u = np.random.default_rng(11).choice(np.linspace(0, 1, 6), size=(400, 1))
    own = x[:, 1] + 1e-3
    y = 1.0 + 0.4 * own**-0.3 * (1 + np.exp(0.5 - 2.0 * u[:, 0]))
    law = BiMixLaw(metric_domains=[1], step_axis=0).fit(
        x, u, y + np.random.default_rng(12).normal(0, 0.002, 400)
    )
    assert law.uses_fidelity
    c, log_a, _, _, b, log_beta = law.theta_[0]
    assert (c, np.exp(log_a), b, np.exp(log_beta)) == pytest.approx((1.0, 0.4, 0.5, 2.0), rel=0.05)
    assert law.alpha_[0] == pytest.approx(0.3, rel=0.05)
    assert law.eps_[0] == pytest.approx(1e-3, rel=0.2)
    assert np.allclose(law.predict(x, u)[:, 0], y, atol=0.01)
    with pytest.raises(FitError):
        law.predict(x)


def _scaling_data(n: int, seed: int, joint: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
    rng = np.random.default_rng(seed)
    h = mixtures(n, 4, seed=seed, concentration=0.8)
    s = rng.choice(np.linspace(0, 1, 5), size=(n, 2))
    p: dict[str, Any] = {
        "E": 1.5,
        "C": np.array([2.0, 1.0, 3.0, 0.5]),
        "gamma": np.array([0.5, 0.8, 0.3, 0.6]),
        "alpha": np.array([1.5, 0.8]),
    }
    p["log_A"] = np.array([[0.2, -0.3, 0.5, 0.0], [0.0, 0.4, -0.2, 0.1]]) if joint else np.array([0.2, -0.1])
    hg = np.where(h > 0, h ** p["gamma"], 0.0)
    y = p["E"] + 1.0 / (hg @ p["C"])
    for a in range(2):
        log_amp = h @ p["log_A"][a] if joint else p["log_A"][a]
        y = y + np.exp(log_amp - p["alpha"][a] * s[:, a])
    return h, s, y + rng.normal(0, 0.003, n), p


@pytest.mark.parametrize("cls, joint", [(ScalingJointLaw, True), (ScalingAdditiveLaw, False)])
def test_scaling_laws_recover_parameters(cls: type[ScalingMixingLaw], joint: bool) -> None:
    h, s, y, truth = _scaling_data(400, 13, joint)
    law = cls().fit(h, s, y)
    got = law.params()
    assert got["E"][0] == pytest.approx(truth["E"], abs=0.1)
    assert np.allclose(got["C"][0], truth["C"], rtol=0.15)
    assert np.allclose(got["gamma"][0], truth["gamma"], rtol=0.15)
    assert np.allclose(got["alpha"][0], truth["alpha"], rtol=0.1)
    assert np.allclose(got["log_A"][0], truth["log_A"], atol=0.1)


def test_joint_scaling_law_moves_the_optimum_with_scale_and_extrapolates() -> None:
    """Fitted on small scales only, the joint law predicts the largest scale and its different optimum."""
    rng = np.random.default_rng(14)
    h = mixtures(500, 3, seed=14, concentration=0.8)
    s = rng.choice([0.0, 0.25, 0.5, 0.75], size=(500, 1))
    log_a = np.array([[2.5, 0.0, -1.5]])  # domain 0 helps small models less than it costs at scale
    c, gamma = np.array([1.0, 2.0, 1.5]), np.array([0.5, 0.5, 0.5])

    def truth(hh: np.ndarray, ss: np.ndarray) -> np.ndarray:
        return 1.0 + 1.0 / (hh**gamma @ c) + np.exp(hh @ log_a[0] - 3.0 * ss[:, 0])

    law = ScalingJointLaw().fit(h, s, truth(h, s) + rng.normal(0, 0.002, 500))
    grid = mixtures(4000, 3, seed=15)
    small, large = np.zeros((4000, 1)), np.ones((4000, 1))
    assert np.abs(law.predict(grid, large)[:, 0] - truth(grid, large)).max() < 0.05
    best_small = grid[np.argmin(law.predict(grid, small)[:, 0])]
    best_large = grid[np.argmin(law.predict(grid, large)[:, 0])]
    true_large = grid[np.argmin(truth(grid, large))]
    assert np.abs(best_small - best_large).sum() > 0.2
    assert np.abs(best_large - true_large).sum() < 0.1


def test_scaling_law_refuses_data_without_a_fidelity_axis() -> None:
    x = mixtures(100, 3, seed=16)
    with pytest.raises(FitError):
        ScalingJointLaw().fit(x, None, x[:, 0])
    with pytest.raises(FitError):
        ScalingJointLaw().fit(x, np.zeros((100, 1)), x[:, 0])


def test_gp_recovers_the_noise_level_and_its_intervals_are_calibrated() -> None:
    x = mixtures(300, 4, seed=17)
    noise = 0.05

    def f(m: np.ndarray) -> np.ndarray:
        return np.column_stack([np.sin(3 * m[:, 0]) + m[:, 1] ** 2, np.log(m[:, 2] + 0.05)])

    rng = np.random.default_rng(18)
    y = f(x) + rng.normal(0, noise, (300, 2))
    law = SimplexGP(max_hyper_points=300).fit(x, None, y)
    fitted_noise = np.sqrt(np.exp(law.theta_[:, -1])) * law.y_std_
    assert np.allclose(fitted_noise, noise, rtol=0.35)
    test = mixtures(400, 4, seed=19)
    y_test = f(test) + rng.normal(0, noise, (400, 2))
    z = np.abs(y_test - law.predict(test)) / law.predict_std(test)
    coverage = (z < 1.645).mean(axis=0)
    assert np.all((coverage > 0.82) & (coverage < 0.97))
    agg_z = np.abs((y_test - law.predict(test)) @ [0.5, 0.5]) / law.aggregate_std(test, None, [0.5, 0.5])
    assert 0.82 < (agg_z < 1.645).mean() < 0.98


def test_gp_learns_across_fidelities() -> None:
    x = mixtures(300, 3, seed=20)
    s = np.random.default_rng(21).choice([0.0, 0.5, 1.0], size=(300, 1))
    y = x[:, 0] ** 2 + 0.5 * s[:, 0]
    law = SimplexGP().fit(x, s, y)
    test = mixtures(100, 3, seed=22)
    assert np.abs(law.predict(test, np.ones((100, 1)))[:, 0] - (test[:, 0] ** 2 + 0.5)).max() < 0.05
    with pytest.raises(FitError):
        law.predict(test)


def test_regmix_linear_recovers_coefficients_and_lightgbm_fits_a_step() -> None:
    x = mixtures(200, 4, seed=23)
    coef = np.array([1.0, -2.0, 0.5, 3.0])
    assert np.allclose(RegMixLinear().fit(x, None, x @ coef + 2).predict(x)[:, 0], x @ coef + 2)
    step = np.where(x[:, 0] > 0.3, 1.0, 0.0)
    pred = RegMixLightGBM().fit(x, None, step).predict(x)[:, 0]
    assert np.mean((pred > 0.5) == (step > 0.5)) > 0.97


def test_laws_need_enough_runs() -> None:
    x = mixtures(6, 10, seed=24)
    for cls in (DataMixingLaw, AioliLogLinear):
        with pytest.raises(NotEnoughDataError):
            cls().fit(x, None, x[:, 0])


def test_stacked_ensemble_trusts_the_member_that_is_right() -> None:
    x = mixtures(200, 4, seed=25)
    y = exp_law(x, C, K, T) + np.random.default_rng(26).normal(0, 0.01, (200, 3))
    ens = StackedEnsemble(members=["regmix_linear", "data_mixing_law"]).fit(x, None, y)
    assert ens.weights_.sum() == pytest.approx(1.0)
    assert ens.weights_[1] > 0.9
    fixed = make_law("ensemble", members=["regmix_linear", {"name": "data_mixing_law"}], weights=[0.25, 0.75])
    fixed.fit(x, None, y)
    manual = 0.25 * RegMixLinear().fit(x, None, y).predict(x) + 0.75 * DataMixingLaw().fit(
        x, None, y
    ).predict(x)
    assert np.allclose(fixed.predict(x), manual)
    assert fixed.differentiable
    dropped = StackedEnsemble(members=["scaling_joint", "regmix_linear"]).fit(x, None, y)
    assert "scaling_joint" in dropped.dropped_ and len(dropped.members_) == 1
