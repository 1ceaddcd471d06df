"""Input validation, purity and exact resumption of online sessions, for every method."""

from __future__ import annotations

import copy
import json
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mixing.errors import MixingError
from mixing.online import (
    ONLINE_METHODS,
    DomainMismatchError,
    HyperparameterError,
    InvalidWeightsError,
    NonFiniteValueError,
    OnlineInputError,
    StateError,
    StepOrderError,
    UnknownMethodError,
    directive,
    observe,
    start,
    validate_hyperparameters,
)

K = 5
REFERENCE = np.linspace(2.0, 3.0, K)


def start_kwargs(method: str) -> dict[str, Any]:
    """Minimal valid arguments for ``start`` of each method."""
    if method == "doremi":
        return {"reference_losses": REFERENCE}
    if method == "static":
        return {"initial_weights": np.arange(1.0, K + 1)}
    return {}


def started(method: str, **hp: Any) -> dict[str, Any]:
    return start(method, K, hp or None, **start_kwargs(method))[0]


def test_registry_holds_the_four_methods() -> None:
    assert set(ONLINE_METHODS) == {"doremi", "aioli", "stratified", "static"}


def test_defaults_are_merged_with_user_values() -> None:
    hp = validate_hyperparameters("doremi", K, {"eta": 2})
    defaults = {name: p.default for name, p in ONLINE_METHODS["doremi"].parameters.items()}
    assert hp == {**defaults, "eta": 2.0}
    assert isinstance(hp["eta"], float)


def test_integral_float_is_accepted_for_an_integer_field() -> None:
    hp = validate_hyperparameters("aioli", K, {"probe_steps": 20.0})
    assert hp["probe_steps"] == 20 and isinstance(hp["probe_steps"], int)


@pytest.mark.parametrize(
    ("method", "values", "field"),
    [
        ("doremi", {"etta": 1.0}, "etta"),
        ("doremi", {"eta": 0}, "eta"),
        ("doremi", {"eta": -1.0}, "eta"),
        ("doremi", {"eta": float("nan")}, "eta"),
        ("doremi", {"eta": "1"}, "eta"),
        ("doremi", {"smoothing": 1.5}, "smoothing"),
        ("doremi", {"update_interval": 0}, "update_interval"),
        ("doremi", {"eta": 1e308}, "eta"),
        ("doremi", {"update_interval": 2**31}, "update_interval"),
        ("aioli", {"eta": 1e5}, "eta"),
        ("aioli", {"probe_steps": 1e300}, "probe_steps"),
        ("aioli", {"seed": 2**64}, "seed"),
        ("stratified", {"update_interval": 2**40}, "update_interval"),
        ("aioli", {"probe_steps": 2.5}, "probe_steps"),
        ("aioli", {"sweeps": True}, "sweeps"),
        ("aioli", {"normalize_a": 1}, "normalize_a"),
        ("aioli", {"ema": 1.0}, "ema"),
        ("aioli", {"one_hot_factor": 1.0 / K}, "one_hot_factor"),
        ("aioli", {"exploit_steps": -1}, "exploit_steps"),
        ("stratified", {"eta": 1.0}, "eta"),
        ("static", {"update_interval": None}, "update_interval"),
    ],
)
def test_bad_hyperparameters_name_the_field(method: str, values: dict[str, Any], field: str) -> None:
    with pytest.raises(HyperparameterError) as err:
        start(method, K, values, **start_kwargs(method))
    assert err.value.field == field
    assert field in str(err.value)
    assert isinstance(err.value, MixingError)


def test_unknown_method_is_refused() -> None:
    with pytest.raises(UnknownMethodError) as err:
        start("doremi2", K)
    assert err.value.field == "method"


@pytest.mark.parametrize("n_domains", [1, True, 2.5, "3"])
def test_bad_domain_count_is_refused(n_domains: Any) -> None:
    with pytest.raises(OnlineInputError) as err:
        start("stratified", n_domains)
    assert err.value.field == "n_domains"


@pytest.mark.parametrize(
    ("method", "weights", "error"),
    [
        ("aioli", [0.5, 0.5], DomainMismatchError),
        ("aioli", [0.2, 0.2, np.nan, 0.2, 0.2], NonFiniteValueError),
        ("aioli", [0.5, 0.5, -0.2, 0.1, 0.1], InvalidWeightsError),
        ("aioli", [0.5, 0.5, 0.0, 0.0, 0.0], InvalidWeightsError),
        ("doremi", [0.0, 0.0, 0.0, 0.0, 0.0], InvalidWeightsError),
        ("static", None, InvalidWeightsError),
        ("static", [0.0] * K, InvalidWeightsError),
        ("stratified", [0.5, 0.5, 0.0, 0.0, 0.0], InvalidWeightsError),
        ("aioli", [["a"] * K], OnlineInputError),
    ],
)
def test_bad_initial_weights_are_refused(method: str, weights: Any, error: type[Exception]) -> None:
    kwargs = {**start_kwargs(method), "initial_weights": weights}
    with pytest.raises(error) as err:
        start(method, K, **kwargs)
    assert err.value.field == "initial_weights"


def test_initial_weights_are_rescaled_to_the_simplex() -> None:
    state, d = start("static", 3, initial_weights=[1, 1, 2])
    np.testing.assert_allclose(d.weights, [0.25, 0.25, 0.5])
    state, d = start("stratified", 3, initial_weights=[2, 2, 2])
    np.testing.assert_allclose(d.weights, np.full(3, 1 / 3))


def test_reference_losses_are_required_by_doremi_only() -> None:
    with pytest.raises(OnlineInputError) as err:
        start("doremi", K)
    assert err.value.field == "reference_losses"
    with pytest.raises(OnlineInputError) as err:
        start("aioli", K, reference_losses=REFERENCE)
    assert err.value.field == "reference_losses"
    with pytest.raises(DomainMismatchError) as err:
        start("doremi", K, reference_losses=REFERENCE[:3])
    assert err.value.field == "reference_losses"


@pytest.mark.parametrize("method", sorted(ONLINE_METHODS))
def test_steps_must_increase(method: str) -> None:
    state, _ = observe(started(method), 100, REFERENCE + 1)
    for step in (100, 99):
        with pytest.raises(StepOrderError) as err:
            observe(state, step, REFERENCE + 1)
        assert err.value.field == "step"
        assert str(step) in str(err.value)


@pytest.mark.parametrize("step", [-1, 1.5, True, "10", None])
def test_step_must_be_a_non_negative_integer(step: Any) -> None:
    with pytest.raises(OnlineInputError) as err:
        observe(started("aioli"), step, REFERENCE)
    assert err.value.field == "step"


@pytest.mark.parametrize("method", sorted(ONLINE_METHODS))
@pytest.mark.parametrize(
    ("losses", "error"),
    [
        (REFERENCE[:-1], DomainMismatchError),
        (np.append(REFERENCE, 1.0), DomainMismatchError),
        (np.where(np.arange(K) == 2, np.nan, REFERENCE), NonFiniteValueError),
        (np.where(np.arange(K) == 0, np.inf, REFERENCE), NonFiniteValueError),
        (["x"] * K, OnlineInputError),
        (REFERENCE.reshape(1, K), DomainMismatchError),
    ],
)
def test_bad_losses_are_refused(method: str, losses: Any, error: type[Exception]) -> None:
    state = started(method)
    before = copy.deepcopy(state)
    with pytest.raises(error) as err:
        observe(state, 10, losses)
    assert err.value.field == "losses"
    assert state == before


@pytest.mark.parametrize(
    "bad", [{}, {"schema": 99, "method": "aioli"}, {"schema": 1, "method": "nope"}, None]
)
def test_foreign_state_is_refused(bad: Any) -> None:
    with pytest.raises(StateError):
        observe(bad, 1, REFERENCE)


def loss_sequence(n: int, seed: int) -> np.ndarray:
    """Falling, noisy per-domain losses, straddling the DoReMi reference."""
    rng = np.random.default_rng(seed)
    trend = 3.5 - np.log1p(np.arange(n))[:, None] * 0.2
    return trend + 0.3 * rng.standard_normal((n, K))


def drive(state: dict[str, Any], losses: np.ndarray) -> list[dict[str, Any]]:
    """Observe each row at the step the previous directive asked for; returns the directives as dicts."""
    out = []
    d = directive(state)
    for row in losses:
        step = (state["last_step"] or 0) + max(d.train_steps, 1)
        state, d = observe(state, step, row)
        out.append(d.to_dict())
    return out


@pytest.mark.parametrize("method", sorted(ONLINE_METHODS))
def test_a_json_round_trip_resumes_exactly(method: str) -> None:
    losses = loss_sequence(60, seed=3)
    state = started(method, **({"exploit_steps": 5, "probe_steps": 3} if method == "aioli" else {}))
    straight = drive(copy.deepcopy(state), losses)

    d = directive(state)
    resumed = []
    for i, row in enumerate(losses):
        step = (state["last_step"] or 0) + max(d.train_steps, 1)
        state, d = observe(state, step, row)
        resumed.append(d.to_dict())
        if i % 7 == 0:
            state = json.loads(json.dumps(state, allow_nan=False))
            d = directive(state)
            assert d.to_dict() == resumed[-1]
    assert resumed == straight


@pytest.mark.parametrize("method", sorted(ONLINE_METHODS))
def test_observe_does_not_mutate_its_input(method: str) -> None:
    state = started(method)
    for i, row in enumerate(loss_sequence(20, seed=5)):
        before = copy.deepcopy(state)
        new_state, _ = observe(state, 10 * (i + 1), row)
        assert state == before
        state = new_state


@pytest.mark.parametrize("method", ["doremi", "aioli"])
@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_weights_stay_on_the_simplex(method: str, data: st.DataObject) -> None:
    k = data.draw(st.integers(2, 6))
    values = st.floats(0.0, 20.0, allow_nan=False)
    rows = data.draw(st.lists(st.lists(values, min_size=k, max_size=k), min_size=1, max_size=40))
    eta = data.draw(st.floats(0.01, 50.0))
    kwargs = {"reference_losses": np.full(k, 5.0)} if method == "doremi" else {}
    state, d = start(method, k, {"eta": eta}, **kwargs)
    for i, row in enumerate(rows):
        state, d = observe(state, i + 1, row)
        for w in (d.weights, d.mixture):
            assert np.all(np.isfinite(w)) and np.all(w >= 0)
            assert abs(w.sum() - 1.0) < 1e-9
    json.dumps(state, allow_nan=False)
