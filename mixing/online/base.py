"""The contract every online method implements; :mod:`mixing.online.session` does the shared checks.

A method is a pure state machine over JSON-serialisable dicts: ``initial_state`` builds its own fields,
``transition`` maps (state, step, losses) to the fields that change, ``directive`` reads the state. The
session layer owns the fields common to all methods (``method``, ``n_domains``, ``hyperparameters``,
``weights``, ``last_step``, ``n_observations``) and validates every input before a method sees it, so a
method can assume a well-formed step and a finite loss vector of the right length.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar

from mixing.online.directive import Directive
from mixing.online.errors import OnlineInputError
from mixing.online.hyperparameters import Hyperparameters, Param, merge
from mixing.online.vectors import as_mixture, uniform
from mixing.simplex import FloatArray

State = dict[str, Any]


class OnlineMethod(ABC):
    """One mixing schedule. Subclasses declare ``name`` and ``parameters`` and implement the three steps."""

    name: ClassVar[str]
    parameters: ClassVar[Mapping[str, Param]]

    def hyperparameters(self, n_domains: int, values: Mapping[str, Any] | None) -> Hyperparameters:
        """Defaults merged with ``values``. Methods whose ranges depend on the number of domains extend
        this and raise :class:`~mixing.online.errors.HyperparameterError`."""
        return merge(self.parameters, values)

    def initial_weights(self, n_domains: int, values: Any) -> FloatArray:
        """The starting mixture. Default: uniform when omitted; strictly positive (multiplicative updates)."""
        if values is None:
            return uniform(n_domains)
        return as_mixture(values, n_domains, "initial_weights", allow_zeros=False)

    def reference_losses(self, n_domains: int, values: Any) -> FloatArray | None:
        """Per-domain losses of a reference model. Only DoReMi uses them; others refuse them so that a
        misdirected request fails instead of being silently ignored."""
        if values is not None:
            raise OnlineInputError("reference_losses", f"method {self.name!r} does not use reference losses")
        return None

    @abstractmethod
    def initial_state(
        self, n_domains: int, hp: Hyperparameters, reference_losses: FloatArray | None
    ) -> State:
        """The method's own state fields at the start of a session."""

    @abstractmethod
    def transition(self, state: State, step: int, losses: FloatArray) -> State:
        """The state fields that change after observing ``losses`` at ``step`` (the rest is kept).

        ``state["last_step"]`` still holds the previous observation's step (``None`` for the first).
        """

    @abstractmethod
    def directive(self, state: State) -> Directive:
        """What the trainer should do now, as a pure function of the state."""


def next_step(state: State, train_steps: int) -> int | None:
    """Absolute step of the next observation, when the trainer's step counter is known."""
    last = state["last_step"]
    return None if last is None else int(last) + train_steps
