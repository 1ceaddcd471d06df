"""The simulated processes used by the Aioli tests and the online benchmarks."""

from __future__ import annotations

import numpy as np

from mixing.online.simulate import TransferPowerLawProcess, run_session


def process() -> TransferPowerLawProcess:
    transfer = np.array([[1.0, 0.5, 0.0], [0.5, 1.0, 0.0], [0.0, 0.0, 1.0]])
    return TransferPowerLawProcess(
        irreducible=np.array([1.0, 2.0, 3.0]),
        reducible=np.array([8.0, 7.0, 6.0]),
        exponents=np.array([0.3, 0.4, 0.5]),
        transfer=transfer,
        scale=50.0,
    )


def test_power_law_starts_at_e_plus_b_and_transfers_only_where_declared() -> None:
    p = process()
    np.testing.assert_allclose(p.losses(np.zeros(3)), [9.0, 9.0, 9.0])
    after = p.losses(np.array([1000.0, 0.0, 0.0]))
    assert after[0] < after[1] < 9.0  # domain 0 helps itself most, domain 1 through transfer 0.5
    assert after[2] == 9.0  # and domain 2 not at all


def test_run_session_spends_exactly_the_budget_and_observes_on_schedule() -> None:
    _, trajectory = run_session(
        "doremi", process(), 1050, {"update_interval": 100}, reference_losses=np.array([2.0, 3.0, 4.0])
    )
    np.testing.assert_allclose(trajectory.exposure.sum(), 1050)
    assert trajectory.steps == list(range(100, 1001, 100))
    assert trajectory.weights().shape == trajectory.mixtures().shape == (10, 3)
