"""DoReMi's domain-weight updates (Xie et al. 2023, "DoReMi: Optimizing Data Mixtures Speeds Up Language
Model Pretraining", Algorithm 1), one update per observation.

Each observation carries the proxy model's per-domain losses ``L``; with the reference model's losses
``R`` (fixed for the session, given at start) the update is Group DRO's:

    excess   λ   = max(L - R, 0)                      per-domain excess loss, clipped at 0
    step     α'  ∝ α_{t-1} · exp(η λ)                 exponentiated gradient on the log-weights
    smooth   α_t = (1 - c) α' + c u                   u the uniform mixture, c the ``smoothing``
    answer   ᾱ   = (α_1 + ... + α_t) / t              the running average, DoReMi's output mixture

The paper updates every training step; a service is called every few hundred steps, so here one
observation is one update and ``ᾱ`` averages over observations, which equals the paper's step average
when observations are equally spaced (``update_interval``, the cadence the directive asks for). The proxy
trains on ``α_t`` (``Directive.weights``, as loss weights or as the sampling mixture); the final model
should use ``ᾱ`` (``Directive.mixture``).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from mixing.online.base import OnlineMethod, State, next_step
from mixing.online.directive import Directive
from mixing.online.errors import OnlineInputError
from mixing.online.hyperparameters import MAX_ETA, MAX_STEPS, Hyperparameters, Param
from mixing.online.vectors import domain_vector, exponentiated_step
from mixing.simplex import FloatArray


class DoReMi(OnlineMethod):
    name: ClassVar[str] = "doremi"
    parameters: ClassVar = {
        "eta": Param(float, 1.0, minimum=0.0, maximum=MAX_ETA, exclusive_minimum=True,
                     doc="step size of the log-weights"),
        "smoothing": Param(float, 1e-3, minimum=0.0, maximum=1.0, doc="mass c mixed in from uniform"),
        "update_interval": Param(int, 200, minimum=1, maximum=MAX_STEPS,
                                 doc="steps between two observations (updates)"),
    }

    def reference_losses(self, n_domains: int, values: Any) -> FloatArray:
        if values is None:
            raise OnlineInputError("reference_losses", "DoReMi needs the reference model's per-domain losses")
        return domain_vector(values, n_domains, "reference_losses")

    def initial_state(
        self, n_domains: int, hp: Hyperparameters, reference_losses: FloatArray | None
    ) -> State:
        return {"reference_losses": np.asarray(reference_losses).tolist(), "weight_sum": [0.0] * n_domains}

    def transition(self, state: State, step: int, losses: FloatArray) -> State:
        hp = state["hyperparameters"]
        alpha = np.asarray(state["weights"], dtype=np.float64)
        with np.errstate(over="ignore"):  # an infinite excess is a step's limit, which the step handles
            excess = np.maximum(losses - np.asarray(state["reference_losses"], dtype=np.float64), 0.0)
        alpha = exponentiated_step(alpha, excess, hp["eta"])
        c = hp["smoothing"]
        alpha = (1.0 - c) * alpha + c / alpha.size
        return {
            "weights": alpha.tolist(),
            "weight_sum": (np.asarray(state["weight_sum"], dtype=np.float64) + alpha).tolist(),
        }

    def directive(self, state: State) -> Directive:
        alpha = np.asarray(state["weights"], dtype=np.float64)
        n = state["n_observations"]
        average = np.asarray(state["weight_sum"], dtype=np.float64) / n if n else alpha
        steps = state["hyperparameters"]["update_interval"]
        return Directive(alpha, average, "update", steps, next_step(state, steps))
