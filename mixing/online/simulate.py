"""Simulated training processes and a driver that runs a session against one, for tests and benchmarks.

A process maps cumulative exposure ``n`` (training steps spent on each domain, ``n += steps · weights``)
to per-domain losses. This captures what online mixing reacts to, how each domain's data lowers every
domain's loss, without training a model. Two processes:

* :class:`LinearDynamicProcess`, ``L(n) = L_0 - A n``: the linear dynamic mixing law with a fixed
  interaction matrix, the model Aioli assumes, so its estimate of ``A`` can be checked exactly.
* :class:`TransferPowerLawProcess`, ``L_i(n) = E_i + B_i (1 + (T n)_i / D)^(-alpha_i)``: a power law in
  "effective" exposure where data of domain ``j`` counts for domain ``i`` with transfer ``T_ij``
  (``T_ii = 1``). Returns diminish, so the best mixture is interior and drifts during training; locally
  it is a linear dynamic law with ``A_ij = -dL_i/dn_j``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from mixing.online.directive import Directive
from mixing.online.session import observe, start
from mixing.simplex import FloatArray


class LossProcess(Protocol):
    n_domains: int

    def losses(self, exposure: FloatArray) -> FloatArray:
        """Per-domain losses after ``exposure[j]`` training steps on domain ``j``."""
        ...


@dataclass(frozen=True)
class LinearDynamicProcess:
    initial: FloatArray
    interactions: FloatArray

    @property
    def n_domains(self) -> int:
        return int(self.initial.size)

    def losses(self, exposure: FloatArray) -> FloatArray:
        return self.initial - self.interactions @ exposure


@dataclass(frozen=True)
class TransferPowerLawProcess:
    irreducible: FloatArray
    reducible: FloatArray
    exponents: FloatArray
    transfer: FloatArray
    scale: float

    @property
    def n_domains(self) -> int:
        return int(self.irreducible.size)

    def losses(self, exposure: FloatArray) -> FloatArray:
        effective = self.transfer @ exposure
        return self.irreducible + self.reducible * (1.0 + effective / self.scale) ** (-self.exponents)


@dataclass
class Trajectory:
    """What a simulated session did: one row per observation."""

    steps: list[int] = field(default_factory=list)
    losses: list[FloatArray] = field(default_factory=list)
    directives: list[Directive] = field(default_factory=list)
    exposure: FloatArray = field(default_factory=lambda: np.zeros(0))

    def weights(self) -> FloatArray:
        """``(n_observations, k)``: the mixture trained on after each observation."""
        return np.array([d.weights for d in self.directives])

    def mixtures(self) -> FloatArray:
        """``(n_observations, k)``: the method's recommended mixture after each observation."""
        return np.array([d.mixture for d in self.directives])


def run_session(
    method: str,
    process: LossProcess,
    total_steps: int,
    hyperparameters: Mapping[str, Any] | None = None,
    initial_weights: FloatArray | None = None,
    reference_losses: FloatArray | None = None,
    noise: float = 0.0,
    rng: np.random.Generator | None = None,
) -> tuple[dict[str, Any], Trajectory]:
    """Train ``total_steps`` steps following the session's directives, observing losses (plus Gaussian
    ``noise``) whenever a directive's ``train_steps`` run out; the last directive is cut at the budget."""
    rng = rng if rng is not None else np.random.default_rng(0)
    state, d = start(method, process.n_domains, hyperparameters, initial_weights, reference_losses)
    out = Trajectory(exposure=np.zeros(process.n_domains))
    step = 0
    while True:
        steps = min(d.train_steps, total_steps - step)
        out.exposure = out.exposure + steps * d.weights
        step += steps
        if step >= total_steps and out.steps:
            return state, out
        observed = process.losses(out.exposure) + noise * rng.standard_normal(process.n_domains)
        state, d = observe(state, step, observed)
        out.steps.append(step)
        out.losses.append(observed)
        out.directives.append(d)
