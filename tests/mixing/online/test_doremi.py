"""DoReMi against a direct transcription of the paper's update, and its fixed points."""

from __future__ import annotations

import numpy as np
import pytest

from mixing.online import observe, start


def direct_doremi(
    initial: np.ndarray, reference: np.ndarray, losses: np.ndarray, eta: float, c: float
) -> tuple[np.ndarray, np.ndarray]:
    """DoReMi Algorithm 1 written out naively: per-update weights and their running averages."""
    k = initial.size
    alpha = initial / initial.sum()
    history = []
    for row in losses:
        excess = np.maximum(row - reference, 0.0)
        alpha = alpha * np.exp(eta * excess)
        alpha = alpha / alpha.sum()
        alpha = (1 - c) * alpha + c * np.ones(k) / k
        history.append(alpha)
    weights = np.array(history)
    averages = np.cumsum(weights, axis=0) / np.arange(1, len(weights) + 1)[:, None]
    return weights, averages


@pytest.mark.parametrize(
    ("eta", "c", "initial"),
    [(1.0, 1e-3, np.full(6, 1 / 6)), (0.5, 0.05, np.array([3.0, 1, 1, 2, 1, 0.5])), (2.0, 0.0, np.ones(6))],
)
def test_matches_a_direct_implementation(eta: float, c: float, initial: np.ndarray) -> None:
    rng = np.random.default_rng(11)
    reference = rng.uniform(2.0, 4.0, 6)
    losses = reference + rng.uniform(-1.0, 2.0, (80, 6))  # some excesses negative: clipping is exercised
    expected_w, expected_avg = direct_doremi(initial, reference, losses, eta, c)

    state, d = start("doremi", 6, {"eta": eta, "smoothing": c}, initial, reference)
    np.testing.assert_allclose(d.weights, initial / initial.sum(), rtol=0, atol=1e-15)
    for t, row in enumerate(losses):
        state, d = observe(state, 100 * (t + 1), row)
        np.testing.assert_allclose(d.weights, expected_w[t], rtol=0, atol=1e-9)
        np.testing.assert_allclose(d.mixture, expected_avg[t], rtol=0, atol=1e-9)


@pytest.mark.parametrize("offset", [0.0, -0.5])
def test_no_excess_keeps_the_initial_uniform_weights(offset: float) -> None:
    reference = np.array([2.0, 3.0, 2.5, 4.0])
    state, d = start("doremi", 4, None, None, reference)
    for t in range(30):
        state, d = observe(state, t + 1, reference + offset)
        np.testing.assert_allclose(d.weights, np.full(4, 0.25), rtol=0, atol=1e-12)
        np.testing.assert_allclose(d.mixture, np.full(4, 0.25), rtol=0, atol=1e-12)


def test_equal_excess_keeps_any_initial_weights_without_smoothing() -> None:
    reference = np.array([2.0, 3.0, 2.5, 4.0])
    initial = np.array([0.1, 0.2, 0.3, 0.4])
    state, d = start("doremi", 4, {"smoothing": 0.0}, initial, reference)
    for t in range(30):
        state, d = observe(state, t + 1, reference + 0.7)
        np.testing.assert_allclose(d.weights, initial, rtol=0, atol=1e-12)


def test_smoothing_pulls_towards_uniform_when_excess_is_equal() -> None:
    """The uniform mixing of DoReMi's update is not a no-op for a non-uniform start: after n updates
    the weights are exactly ``u + (1 - c)^n (α_0 - u)``."""
    reference = np.zeros(3)
    initial = np.array([0.6, 0.3, 0.1])
    c = 0.1
    state, d = start("doremi", 3, {"smoothing": c}, initial, reference)
    for t in range(5):
        state, d = observe(state, t + 1, reference)
    np.testing.assert_allclose(d.weights, 1 / 3 + (1 - c) ** 5 * (initial - 1 / 3), rtol=0, atol=1e-12)


def test_the_domain_with_the_largest_excess_gains_weight() -> None:
    reference = np.full(4, 3.0)
    state, d = start("doremi", 4, None, None, reference)
    state, d = observe(state, 200, np.array([3.1, 3.5, 3.0, 2.0]))
    assert np.argmax(d.weights) == 1
    assert d.weights[2] == pytest.approx(d.weights[3])  # zero and negative excess are both clipped to 0
    assert d.weights[0] > d.weights[2]


def test_directive_asks_for_the_next_update() -> None:
    state, d = start("doremi", 3, {"update_interval": 250}, None, np.ones(3))
    assert d.phase == "update" and d.train_steps == 250 and d.next_observation_step is None
    state, d = observe(state, 1000, np.ones(3))
    assert d.next_observation_step == 1250


@pytest.mark.parametrize(
    ("reference", "losses"),
    [
        pytest.param([-1e308, 0.0, 0.0, 0.0], [1e308, 1e308, 0.0, 0.0], id="excess-overflows-to-inf"),
        pytest.param([0.0, 0.0, 0.0, 0.0], [1e308, 3e307, 1.0, 0.0], id="step-overflows-to-inf"),
    ],
)
def test_the_largest_step_on_extreme_losses_keeps_the_weights_finite(reference: list, losses: list) -> None:
    """Regression: ``eta · excess`` overflowed to inf, and ``inf - inf`` made every weight NaN. The limit
    of the update is all the mass on the domains with the largest (infinite) step."""
    state, _ = start("doremi", 4, {"eta": 1e4, "smoothing": 0.0}, None, np.array(reference))
    state, d = observe(state, 200, np.array(losses))
    assert np.isfinite(d.weights).all() and np.isfinite(d.mixture).all()
    np.testing.assert_allclose(d.weights, [0.5, 0.5, 0.0, 0.0])  # both infinite steps share the mass
    state, d = observe(state, 400, np.array(reference))
    assert np.isfinite(d.weights).all() and d.weights.sum() == pytest.approx(1)
