"""Warm start in mixing/: related runs as a learned prior mean, used only where they help."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mixing.bo.encoding import ENCODINGS, decode_mixtures, encode_mixtures
from mixing.bo.engine import BOSettings
from mixing.bo.kernel import multi_fidelity_kernel
from mixing.bo.posterior import ExactPosterior
from mixing.bo.surrogate import FitSettings
from mixing.evaluation import compare_transfer
from mixing.laws import make_law
from mixing.methods import WARM_INITIAL_RUNS, resolve_method
from mixing.methods.base import SearchContext
from mixing.methods.bo import BayesOptMethod
from mixing.methods.law import LawMethod
from mixing.problem import Observations, Problem
from mixing.simplex import SimplexConstraints
from mixing.transfer import MIN_OWN_RUNS, Transfers, fit_prior

D = 5
SMALL = BOSettings(fit=FitSettings(maxiter_cold=60, maxiter_warm=20), n_global=512, n_local=128, n_centres=4)


def target(w: np.ndarray) -> np.ndarray:
    """A smooth loss with its optimum inside the simplex."""
    return 3.0 + 2.0 * (w[:, 0] - 0.4) ** 2 + 1.5 * (w[:, 1] - 0.3) ** 2 + 0.5 * w[:, 2]


def source(kind: str, n: int = 300, seed: int = 0, weight: float = 1.0) -> Transfers:
    """Runs of a related task: the target shifted and rescaled (``related``), or the same values shuffled
    across mixtures (``shuffled``: the marginal distribution is right, the link to the mixture is gone)."""
    rng = np.random.default_rng(seed)
    x = rng.dirichlet(np.ones(D), n)
    values = 0.5 * target(x) + 7.0 + 0.005 * rng.standard_normal(n)
    if kind == "shuffled":
        values = rng.permutation(values)
    return Transfers(x, values, np.zeros(n, dtype=np.intp), np.full(n, weight))


def own_runs(n: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.dirichlet(np.ones(D), n)
    return x, target(x) + 0.005 * rng.standard_normal(n)


def problem() -> Problem:
    return Problem(tuple(f"d{i}" for i in range(D)), SimplexConstraints.unconstrained(D), ("loss",), np.ones(1))


def context(n: int, transfers: Transfers | None, hints: dict[str, object] | None = None) -> SearchContext:
    x, y = own_runs(n)
    obs = Observations(x, np.zeros((n, 0)), y[:, None], np.ones(n), np.zeros((0, D)), np.zeros((0, 0)))
    return SearchContext(problem(), obs, np.random.default_rng(3), dict(hints or {}), transfers=transfers)


def test_prior_learns_a_related_source_and_ignores_a_shuffled_one() -> None:
    x, y = own_runs(12)
    related = fit_prior(source("related"), x, y[:, None])
    assert related is not None and related.used.tolist() == [True]
    probe, _ = own_runs(200, seed=9)
    truth = target(probe)
    # shape, not level: the prior is centred on the own runs
    assert np.corrcoef(related.predict(probe)[:, 0], truth)[0, 1] > 0.95
    shuffled = fit_prior(source("shuffled"), x, y[:, None])
    assert shuffled is not None and shuffled.used.tolist() == [False]
    assert np.all(shuffled.predict(probe) == 0.0)


def test_no_prior_without_transfers_or_enough_own_runs() -> None:
    x, y = own_runs(MIN_OWN_RUNS - 1)
    assert fit_prior(None, x, y[:, None]) is None
    assert fit_prior(source("related"), x, y[:, None]) is None


def test_weight_scales_how_far_the_source_is_trusted() -> None:
    x, y = own_runs(6)
    strong = fit_prior(source("related", weight=10.0), x, y[:, None])
    weak = fit_prior(source("related", weight=1e-3), x, y[:, None])
    assert strong is not None and weak is not None
    assert np.abs(weak.beta).sum() < 0.1 * np.abs(strong.beta).sum()


@pytest.mark.parametrize("method", [LawMethod(), BayesOptMethod(SMALL)], ids=["law", "bo"])
def test_methods_predict_better_with_a_related_source_and_alike_with_a_shuffled_one(method: object) -> None:
    probe, _ = own_runs(300, seed=9)
    truth = target(probe)
    hints: dict[str, object] = {"selected_law": "regmix_linear"}

    def rmse(transfers: Transfers | None) -> float:
        predictor = method.predictor(context(10, transfers, hints))  # type: ignore[attr-defined]
        return float(np.sqrt(np.mean((predictor.predict(probe)[1] - truth) ** 2)))

    cold = rmse(None)
    assert rmse(source("related")) < 0.5 * cold
    assert rmse(source("shuffled")) == pytest.approx(cold, rel=1e-6)


def test_recommendation_says_whether_the_transfer_was_used() -> None:
    rec = LawMethod().recommend(context(10, source("related"), {"selected_law": "regmix_linear"}))
    assert rec.details["transfer"]["used"] == [True] and rec.details["transfer"]["n_transferred"] == 300
    off = LawMethod().recommend(context(10, source("related"), {"selected_law": "regmix_linear",
                                                                 "transfer_helps": False}))
    assert off.details["transfer"] is None


def test_compare_transfer_cross_validates_on_own_runs_only() -> None:
    x, y = own_runs(15)
    law = make_law("regmix_linear")
    related = compare_transfer(law, x, None, y[:, None], np.ones(1), source("related"), seed=0)
    assert related.helps and related.mse_with < 0.5 * related.mse_without and related.with_transfer.n == 15
    shuffled = compare_transfer(law, x, None, y[:, None], np.ones(1), source("shuffled"), seed=0)
    assert not shuffled.helps
    assert related.to_dict()["helps"] is True and related.to_dict()["with"]["n"] == 15


def test_posterior_with_a_mean_function_is_the_gp_of_the_residual_plus_the_mean() -> None:
    torch.manual_seed(0)
    x = torch.rand(12, 3, dtype=torch.float64)
    y = torch.sin(3 * x[:, 0]) + x[:, 1]
    z = torch.rand(7, 3, dtype=torch.float64)

    def mean(t: torch.Tensor) -> torch.Tensor:
        return 0.7 * t[:, 1]

    kernel = multi_fidelity_kernel(3, 0).to(dtype=torch.float64)
    with_mean = ExactPosterior(kernel, 0.1, 1e-3, x, y, mean)
    residual = ExactPosterior(kernel, 0.1, 1e-3, x, y - mean(x))
    m1, v1 = with_mean.mean_var(z)
    m2, v2 = residual.mean_var(z)
    assert torch.allclose(m1, m2 + mean(z)) and torch.allclose(v1, v2)
    believed = with_mean.believe(z[:2])
    assert believed.mean_fn is mean and torch.allclose(believed.mean_var(z[:2])[0], m1[:2])


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_decode_inverts_encode(encoding: str) -> None:
    w = np.random.default_rng(0).dirichlet(np.ones(D), 20)
    w[0, 0] = 0.0
    assert np.allclose(decode_mixtures(encode_mixtures(w, encoding), encoding), w)  # type: ignore[arg-type]


def test_auto_designs_less_before_models_in_a_warm_started_experiment() -> None:
    assert resolve_method("auto", context(WARM_INITIAL_RUNS, source("related"))).name != "design"
    assert resolve_method("auto", context(WARM_INITIAL_RUNS, None)).name == "design"
    assert resolve_method("auto", context(WARM_INITIAL_RUNS, source("related")), configured_initial=20).name == "design"
