"""Small parts: the cost model, the device choice, the replay pool."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mixing.bo import engine
from mixing.bo.cost import fit_cost_model
from mixing.bo.device import bo_device, cpu_threads
from mixing.bo.surrogate import balanced_subset
from mixing.compute import Compute, Device
from mixing.methods.bo import BayesOptMethod
from mixing.replay_pool import NoRunAtFidelityError, ReplayPool
from tests.mixing.bo.synthetic import SMALL, context, observations, problem


def test_affine_cost_is_learned_and_unknown_costs_are_ignored() -> None:
    f = np.array([[1e6, 1e9], [6e7, 1e9], [1e6, 4e9], [6e7, 4e9], [1e6, 1e9]])
    c = 5.0 + 2e-6 * f[:, 0] + 1e-9 * f[:, 1]
    c[-1] = np.nan
    model = fit_cost_model(f, c)
    assert np.allclose(model(np.array([[3e7, 2e9]])), 5.0 + 60.0 + 2.0, rtol=1e-6)


def test_a_declared_cost_stands_in_for_a_level_no_run_has_reported() -> None:
    """Cheap runs alone extrapolate a 60M run to 60 of them; a declared (6e7, 5) says 5, until 60M runs
    report their own cost, which then wins over the declaration."""
    cheap = np.array([[1e6]] * 4)
    declared = np.array([[1e6, 1.0], [6e7, 5.0]])
    assert fit_cost_model(cheap, np.ones(4))(np.array([[6e7]]))[0] == pytest.approx(60.0)
    assert fit_cost_model(cheap, np.ones(4), declared)(np.array([[6e7]]))[0] == pytest.approx(5.0)
    both = fit_cost_model(np.array([[1e6]] * 4 + [[6e7]]), np.array([1.0] * 4 + [20.0]), declared)
    assert both(np.array([[6e7]]))[0] == pytest.approx(20.0)
    assert fit_cost_model(np.zeros((3, 0)), np.ones(3), declared)(np.zeros((1, 0)))[0] == pytest.approx(1.0)
    # A target that costs more than its axis says (16.3x for 5.1x the parameters: it also trains longer) is
    # more than an affine fit with non-negative coefficients can reach; the declared level is kept exactly.
    steep = fit_cost_model(np.array([[1.25e5]] * 8), np.ones(8), np.array([[6.4e5, 16.3]]))
    assert steep(np.array([[1.25e5], [6.4e5]])) == pytest.approx([1.0, 16.3])


def test_cost_falls_back_to_the_product_of_axes() -> None:
    one_level = fit_cost_model(np.array([[2e6, 1e9]] * 3), np.array([4.0, 4.2, 3.8]))
    assert np.isclose(one_level(np.array([[4e6, 2e9]]))[0], 16.0)
    nothing = fit_cost_model(np.array([[1e6], [6e7]]), np.array([np.nan, np.nan]))
    assert np.isclose(nothing(np.array([[6e7]]))[0] / nothing(np.array([[1e6]]))[0], 60.0)


def test_device_choice() -> None:
    assert bo_device(Device.CPU) == torch.device("cpu")
    with pytest.raises(ValueError):
        Device("tpu")
    assert bo_device(Device.AUTO).type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError):
            bo_device(Device.CUDA)


DEVICES = ["cpu", *(["cuda"] if torch.cuda.is_available() else [])]


@pytest.mark.parametrize("device", DEVICES)
def test_every_device_runs_the_same_code_to_the_same_answer(device: str) -> None:
    """On a CPU-only machine this pins CPU determinism; on a GPU machine it compares CUDA with CPU."""
    obs = observations(30, 10, seed=11)

    def run(dev: str) -> tuple[np.ndarray, np.ndarray, float]:
        compute = Compute(Device(dev))
        props = BayesOptMethod(SMALL).suggest(context(obs, seed=3, compute=compute), 2)
        rec = BayesOptMethod(SMALL).recommend(context(obs, seed=3, compute=compute))
        assert props[0].details["device"].startswith(dev)
        return np.array([p.mixture for p in props]), rec.mixture, rec.predicted.value

    ref, got = run("cpu"), run(device)
    assert np.allclose(ref[0], got[0], atol=1e-5)
    assert np.allclose(ref[1], got[1], atol=1e-5)
    assert abs(ref[2] - got[2]) < 1e-6


def test_surrogate_tensors_live_on_the_chosen_device() -> None:
    s = engine.fit_surrogate(
        problem(), observations(20, 5), bo_device(Device.CPU), np.random.default_rng(0), None, SMALL
    )
    assert s.gp.posterior.chol.device.type == "cpu" and s.gp.posterior.chol.dtype == torch.float64


def test_replay_pool_answers_exact_or_nearest_at_the_fidelity() -> None:
    mix = np.array([[0.5, 0.5, 0.0], [0.2, 0.3, 0.5], [0.5, 0.5, 0.0], [0.1, 0.1, 0.8]])
    pool = ReplayPool(
        mix, np.array([[1.0], [1.0], [60.0], [60.0]]), np.arange(4.0), np.array([1.0, 1, 60, 60])
    )
    assert pool.answer([0.2, 0.3, 0.5], [1.0]) == (1, True)
    assert pool.answer([0.45, 0.5, 0.05], [60.0]) == (2, False)
    assert pool.answer([0.2, 0.2, 0.6], [60.0]) == (3, False)
    with pytest.raises(NoRunAtFidelityError):
        pool.answer([0.2, 0.3, 0.5], [7.0])


def test_bo_work_runs_with_capped_threads_and_restores_them() -> None:
    before = torch.get_num_threads()
    with cpu_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


def test_fit_subset_keeps_the_rare_fidelity_levels() -> None:
    groups = np.array([0] * 700 + [1] * 32 + [2] * 5)
    rows = balanced_subset(groups, 100, np.random.default_rng(0))
    assert len(rows) == len(np.unique(rows)) == 100
    assert np.bincount(groups[rows]).tolist() == [63, 32, 5]
    assert balanced_subset(groups[:50], 100, np.random.default_rng(0)).tolist() == list(range(50))
