"""The public entry points: ``start`` a session, ``observe`` losses, read the current ``directive``.

Each call is a pure function of its arguments. The state is a JSON-serialisable dict (lists, numbers,
strings, ``None``) that the caller stores between calls, e.g. in a database row; feeding a stored state
back after a restart continues exactly where the session was, since floats survive a JSON round trip
bit for bit. Inputs are validated here, once, before any method sees them; the input state is never
mutated.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from mixing.online.aioli import Aioli
from mixing.online.base import OnlineMethod, State
from mixing.online.baselines import Static, Stratified
from mixing.online.directive import Directive
from mixing.online.doremi import DoReMi
from mixing.online.errors import OnlineInputError, StateError, StepOrderError, UnknownMethodError
from mixing.online.hyperparameters import Hyperparameters
from mixing.online.vectors import domain_vector

#: Version of the state layout; bumped when a stored state would no longer be read correctly.
STATE_SCHEMA = 1

ONLINE_METHODS: dict[str, OnlineMethod] = {m.name: m for m in (DoReMi(), Aioli(), Stratified(), Static())}


def get_method(name: Any) -> OnlineMethod:
    if not isinstance(name, str) or name not in ONLINE_METHODS:
        raise UnknownMethodError(
            "method", f"unknown online method {name!r} (known: {', '.join(ONLINE_METHODS)})"
        )
    return ONLINE_METHODS[name]


def validate_hyperparameters(
    method: str, n_domains: int, hyperparameters: Mapping[str, Any] | None = None
) -> Hyperparameters:
    """The method's defaults merged with ``hyperparameters``; unknown keys or bad values raise
    :class:`~mixing.online.errors.HyperparameterError` naming the key."""
    return get_method(method).hyperparameters(_domain_count(n_domains), hyperparameters)


def start(
    method: str,
    n_domains: int,
    hyperparameters: Mapping[str, Any] | None = None,
    initial_weights: Any = None,
    reference_losses: Any = None,
) -> tuple[State, Directive]:
    """A new session's state and its first directive.

    ``initial_weights`` (any non-negative vector, rescaled to sum to one) defaults to uniform where the
    method allows; ``reference_losses`` is required by DoReMi and refused by the others.
    """
    impl = get_method(method)
    n = _domain_count(n_domains)
    hp = impl.hyperparameters(n, hyperparameters)
    weights = impl.initial_weights(n, initial_weights)
    reference = impl.reference_losses(n, reference_losses)
    state: State = {
        "schema": STATE_SCHEMA,
        "method": impl.name,
        "n_domains": n,
        "hyperparameters": hp,
        "weights": weights.tolist(),
        "last_step": None,
        "n_observations": 0,
    }
    state.update(impl.initial_state(n, hp, reference))
    return state, impl.directive(state)


def observe(state: State, step: int, losses: Any) -> tuple[State, Directive]:
    """Feed per-domain losses measured at training step ``step``; returns the new state and directive.

    ``step`` must be strictly greater than the previous observation's; ``losses`` must hold one finite
    value per domain of the session.
    """
    impl = _method_of(state)
    if isinstance(step, bool) or not isinstance(step, int | np.integer) or step < 0:
        raise OnlineInputError("step", f"must be a non-negative integer, got {step!r}")
    step = int(step)
    last = state["last_step"]
    if last is not None and step <= last:
        raise StepOrderError("step", f"must increase: got {step} after {last}")
    values = domain_vector(losses, state["n_domains"], "losses")
    new_state = {**state, **impl.transition(state, step, values)}
    new_state["last_step"] = step
    new_state["n_observations"] = state["n_observations"] + 1
    return new_state, impl.directive(new_state)


def directive(state: State) -> Directive:
    """The directive in force for ``state`` (what the last call returned), e.g. for a restarted trainer."""
    return _method_of(state).directive(state)


def _domain_count(n_domains: Any) -> int:
    if isinstance(n_domains, bool) or not isinstance(n_domains, int | np.integer) or n_domains < 2:
        raise OnlineInputError("n_domains", f"must be an integer >= 2, got {n_domains!r}")
    return int(n_domains)


def _method_of(state: Any) -> OnlineMethod:
    if not isinstance(state, Mapping) or state.get("schema") != STATE_SCHEMA:
        raise StateError("state", f"not an online-session state of schema {STATE_SCHEMA}")
    method = state.get("method")
    if method not in ONLINE_METHODS:
        raise StateError("state", f"unknown method {method!r} in stored state")
    return ONLINE_METHODS[method]
