"""The fixed schedules: they record observations but never change the mixture."""

from __future__ import annotations

import numpy as np

from mixing.online import observe, start


def test_stratified_and_static_never_move() -> None:
    prior = np.array([0.5, 0.3, 0.2])
    rng = np.random.default_rng(0)
    for method, expected in (("stratified", np.full(3, 1 / 3)), ("static", prior)):
        state, d = start(method, 3, {"update_interval": 50}, None if method == "stratified" else prior)
        for t in range(10):
            state, d = observe(state, 50 * (t + 1), rng.uniform(1, 5, 3))
            assert d.phase == "static" and d.probe is None
            np.testing.assert_array_equal(d.weights, expected)
            np.testing.assert_array_equal(d.mixture, expected)
            assert d.next_observation_step == 50 * (t + 2)
        assert state["n_observations"] == 10
