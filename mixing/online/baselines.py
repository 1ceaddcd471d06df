"""The two fixed schedules online methods are compared against.

``stratified`` trains on the uniform mixture (every domain equally often), the baseline of the Aioli
paper; ``static`` trains on a given prior (e.g. natural token shares or an offline law's optimum). Both
still accept observations, so a session records the same loss trajectory as an adaptive one.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from mixing.online.base import OnlineMethod, State, next_step
from mixing.online.directive import Directive
from mixing.online.errors import InvalidWeightsError
from mixing.online.hyperparameters import MAX_STEPS, Hyperparameters, Param
from mixing.online.vectors import as_mixture, uniform
from mixing.simplex import FloatArray

_INTERVAL = {"update_interval": Param(int, 200, minimum=1, maximum=MAX_STEPS,
                                     doc="steps between two observations")}


class _Fixed(OnlineMethod):
    """A mixture that never changes; observations are only recorded."""

    parameters: ClassVar = _INTERVAL

    def initial_state(
        self, n_domains: int, hp: Hyperparameters, reference_losses: FloatArray | None
    ) -> State:
        return {}

    def transition(self, state: State, step: int, losses: FloatArray) -> State:
        return {}

    def directive(self, state: State) -> Directive:
        w = np.asarray(state["weights"], dtype=np.float64)
        steps = state["hyperparameters"]["update_interval"]
        return Directive(w, w, "static", steps, next_step(state, steps))


class Stratified(_Fixed):
    name: ClassVar[str] = "stratified"

    def initial_weights(self, n_domains: int, values: Any) -> FloatArray:
        w = uniform(n_domains)
        if values is not None and not np.allclose(as_mixture(values, n_domains, "initial_weights", True), w):
            raise InvalidWeightsError(
                "initial_weights", "stratified always trains on the uniform mixture; use 'static' for a prior"
            )
        return w


class Static(_Fixed):
    name: ClassVar[str] = "static"

    def initial_weights(self, n_domains: int, values: Any) -> FloatArray:
        if values is None:
            raise InvalidWeightsError("initial_weights", "static needs the prior mixture to train on")
        return as_mixture(values, n_domains, "initial_weights", allow_zeros=True)
