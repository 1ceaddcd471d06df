"""Aioli (Chen, Hu, Lourie, Cho, Ré 2024, "Aioli: A Unified Optimization Framework for Language Model
Data Mixing"), driven by observations instead of owning the training loop.

The model (the linear dynamic mixing law). Training one step on mixture ``p`` changes the per-domain
losses by ``L_{s+1} = L_s - A p``: column ``j`` of the interaction matrix ``A`` is how much one step of
pure domain ``j`` lowers every domain's loss. ``A`` drifts during training, so it is re-estimated every
round and the mixture takes one exponentiated-gradient step towards the domains whose columns lower the
total loss most.

Our reading of the algorithm (paper's Algorithms 1-2, checked against the released trainer
``HazyResearch/aioli``, ``trainer/aioli_trainer.py``). Training is cut into rounds; round ``t``:

1. LearnParams. Sweep ``sweeps`` times over the ``k`` domains, each sweep in a fresh random order (seeded
   by ``seed`` and the round number, so a restarted session replays it exactly). Probe ``j`` trains
   ``probe_steps`` steps on the smoothed one-hot mixture ``w_j = f e_j + (1 - f)/(k - 1) (1 - e_j)``
   (``f = one_hot_factor``; the rest spread evenly over the other domains, as the released code does),
   and records the loss drop since the previous observation, ``L_before - L_after``. Probes run back to
   back, so each probe's "before" is the previous probe's "after".
2. Solve for ``A``. Averaging the ``sweeps`` drops of each probe gives ``G[i, j] = (A W^T)[i, j]`` with
   ``W`` the matrix whose rows are the probe mixtures; hence ``A = G W^{-T}``. ``W = a I + b 11^T`` with
   ``b = (1 - f)/(k - 1)``, ``a = f - b``, so ``W^{-1} = (I - b 11^T)/a`` (rows of ``W`` sum to one) and
   the solve is ``O(k^2)``; it exists iff ``f > 1/k`` (``a > 0``), which the hyperparameter check
   enforces. ``f = 1`` gives ``A = G`` (pure one-hot probes).
3. Normalise (``normalize_a``, on in the paper's runs): shift ``A`` so its smallest entry is 0 when one is
   negative, then divide by the sum of its entries, which makes ``eta`` scale-free. A matrix with no
   signal (all drops equal to zero) is left at zero rather than divided by zero.
4. Smooth: ``A ← (1 - ema) A_new + ema A_prev`` (``ema`` is the weight kept on history, as in the released
   code, whose default 0.1 we keep; 0 disables smoothing; the first round has no history).
5. Update: ``p_t ∝ p_{t-1} · exp(eta Σ_i A_ij)`` (the paper's Algorithm 1). Note: with EMA on, the
   released code instead restarts from uniform each round, ``p_t ∝ exp(eta Σ_i A_ij)``; we follow the
   paper's multiplicative update, which under a fixed ``A`` keeps moving towards the law's optimum.
6. Exploit: train ``exploit_steps`` steps on ``p_t``; the observation that ends them is the "before" of
   the next round's first probe. A round is ``T = k · sweeps · probe_steps + exploit_steps`` steps, of
   which LearnParams is the fraction ``δ``; the released SlimPajama runs (k = 7) used probe_steps 10,
   sweeps 2 and T = 200, i.e. exploit_steps 60, which are our defaults.

Units. The released code stores raw drops per probe; we divide each drop by the steps that actually
elapsed, so ``A`` is in loss per training step (the law's own units) and a trainer that overshoots a
probe's length does not bias the estimate. With ``normalize_a`` (the default) the scale cancels; without
it, ``eta`` multiplies per-step drops and must be chosen accordingly.

Before the first round the session asks for one observation (phase ``measure``, after ``warmup_steps``
steps on the initial mixture, the released code's optional prior phase) to anchor the first probe.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from mixing.online.base import OnlineMethod, State, next_step
from mixing.online.directive import Directive, Probe
from mixing.online.errors import HyperparameterError
from mixing.online.hyperparameters import MAX_ETA, MAX_SEED, MAX_STEPS, Hyperparameters, Param
from mixing.online.vectors import exponentiated_step
from mixing.simplex import FloatArray


def probe_mixture(n_domains: int, domain: int, one_hot_factor: float) -> FloatArray:
    """``f`` on ``domain``, the remaining ``1 - f`` spread evenly over the other domains."""
    w = np.full(n_domains, (1.0 - one_hot_factor) / (n_domains - 1))
    w[domain] = one_hot_factor
    return w


def solve_interactions(drops: FloatArray, one_hot_factor: float) -> FloatArray:
    """``A`` from the mean per-step drops ``G`` (column ``j``: probe of domain ``j``): ``A = G W^{-1}``."""
    k = drops.shape[0]
    b = (1.0 - one_hot_factor) / (k - 1)
    a = one_hot_factor - b
    return (drops - b * drops.sum(axis=1, keepdims=True)) / a


def normalise_interactions(matrix: FloatArray) -> FloatArray:
    """Shift to a zero minimum when negative, then scale to unit sum (the released code's normalisation)."""
    shifted = matrix - min(matrix.min(), 0.0)
    total = shifted.sum()
    return shifted / total if total > 0 else np.zeros_like(matrix)


def probe_order(n_domains: int, sweeps: int, seed: int, round_index: int) -> list[int]:
    """``sweeps`` random permutations of the domains, reproducible from (seed, round)."""
    rng = np.random.default_rng([seed, round_index])
    return [int(j) for _ in range(sweeps) for j in rng.permutation(n_domains)]


class Aioli(OnlineMethod):
    name: ClassVar[str] = "aioli"
    parameters: ClassVar = {
        "eta": Param(float, 1.0, minimum=0.0, maximum=MAX_ETA, exclusive_minimum=True,
                     doc="exponentiated-gradient step size"),
        "ema": Param(
            float,
            0.1,
            minimum=0.0,
            maximum=1.0,
            exclusive_maximum=True,
            doc="weight kept on the previous A estimate (0: no smoothing)",
        ),
        "one_hot_factor": Param(
            float,
            0.75,
            minimum=0.0,
            maximum=1.0,
            exclusive_minimum=True,
            doc="share of the probed domain in a probe mixture; must exceed 1/k",
        ),
        "probe_steps": Param(int, 10, minimum=1, maximum=MAX_STEPS, doc="training steps per probe"),
        "sweeps": Param(int, 2, minimum=1, maximum=1000, doc="passes over all domains in each LearnParams"),
        "exploit_steps": Param(int, 60, minimum=0, maximum=MAX_STEPS,
                               doc="steps on the updated mixture after LearnParams"),
        "warmup_steps": Param(int, 0, minimum=0, maximum=MAX_STEPS,
                              doc="steps on the initial mixture before the first round"),
        "normalize_a": Param(bool, True, doc="shift A to non-negative and scale it to unit sum"),
        "seed": Param(int, 0, minimum=0, maximum=MAX_SEED, doc="seed of the probe order"),
    }

    def hyperparameters(self, n_domains: int, values: Mapping[str, Any] | None) -> Hyperparameters:
        hp = super().hyperparameters(n_domains, values)
        if hp["one_hot_factor"] <= 1.0 / n_domains:
            raise HyperparameterError(
                "one_hot_factor",
                f"must exceed 1/n_domains = {1.0 / n_domains:.4g}, or the probes cannot separate A's columns",
            )
        return hp

    def initial_state(
        self, n_domains: int, hp: Hyperparameters, reference_losses: FloatArray | None
    ) -> State:
        return {
            "phase": "measure",
            "round": 0,
            "probe_order": [],
            "probe_index": 0,
            "anchor_losses": None,
            "drop_sums": None,
            "interactions": None,
        }

    def transition(self, state: State, step: int, losses: FloatArray) -> State:
        if state["phase"] == "measure":
            return self._begin_round(state, 0, losses)
        if state["phase"] == "exploit":
            return self._begin_round(state, state["round"] + 1, losses)
        return self._record_probe(state, step, losses)

    def _begin_round(self, state: State, round_index: int, anchor: FloatArray) -> State:
        hp, k = state["hyperparameters"], state["n_domains"]
        return {
            "phase": "probe",
            "round": round_index,
            "probe_order": probe_order(k, hp["sweeps"], hp["seed"], round_index),
            "probe_index": 0,
            "anchor_losses": anchor.tolist(),
            "drop_sums": np.zeros((k, k)).tolist(),
        }

    def _record_probe(self, state: State, step: int, losses: FloatArray) -> State:
        rate = (np.asarray(state["anchor_losses"], dtype=np.float64) - losses) / (step - state["last_step"])
        drops = np.asarray(state["drop_sums"], dtype=np.float64)
        domain = state["probe_order"][state["probe_index"]]
        drops[:, domain] += rate
        index = state["probe_index"] + 1
        if index < len(state["probe_order"]):
            return {"probe_index": index, "anchor_losses": losses.tolist(), "drop_sums": drops.tolist()}
        return self._end_learn_params(state, drops, losses)

    def _end_learn_params(self, state: State, drops: FloatArray, losses: FloatArray) -> State:
        hp = state["hyperparameters"]
        estimate = solve_interactions(drops / hp["sweeps"], hp["one_hot_factor"])
        current = normalise_interactions(estimate) if hp["normalize_a"] else estimate
        if state["interactions"] is not None:
            current = (1.0 - hp["ema"]) * current + hp["ema"] * np.asarray(
                state["interactions"], dtype=np.float64
            )
        weights = exponentiated_step(
            np.asarray(state["weights"], dtype=np.float64), current.sum(axis=0), hp["eta"]
        )
        updated = {
            "weights": weights.tolist(),
            "interactions": current.tolist(),
            "phase": "exploit",
            "probe_index": len(state["probe_order"]),
            "anchor_losses": None,  # the observation that ends the exploit phase anchors the next round
            "drop_sums": None,
        }
        if hp["exploit_steps"] == 0:
            updated.update(self._begin_round(state, state["round"] + 1, losses))
        return updated

    def directive(self, state: State) -> Directive:
        hp = state["hyperparameters"]
        p = np.asarray(state["weights"], dtype=np.float64)
        phase = state["phase"]
        if phase == "probe":
            domain = state["probe_order"][state["probe_index"]]
            w = probe_mixture(state["n_domains"], domain, hp["one_hot_factor"])
            steps = hp["probe_steps"]
            probe = Probe(domain, steps, w, state["probe_index"], len(state["probe_order"]))
            return Directive(w, p, "probe", steps, next_step(state, steps), probe)
        steps = hp["warmup_steps"] if phase == "measure" else hp["exploit_steps"]
        return Directive(p, p, phase, steps, next_step(state, steps))
