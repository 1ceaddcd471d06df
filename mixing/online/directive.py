"""What a session tells the training loop after each call: which mixture to train on, for how long."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from mixing.simplex import FloatArray

#: ``measure``: report losses before the first Aioli round (after ``train_steps`` warm-up steps);
#: ``probe``: an Aioli LearnParams probe; ``exploit``: Aioli's rest-of-round on its mixture;
#: ``update``: DoReMi between two weight updates; ``static``: the baselines, which never change.
Phase = Literal["measure", "probe", "exploit", "update", "static"]


@dataclass(frozen=True)
class Probe:
    """An Aioli probe: train ``steps`` steps on ``weights``, the one-hot mixture of ``domain`` smoothed."""

    domain: int
    steps: int
    weights: FloatArray
    #: Position of this probe in the round's LearnParams schedule, and the schedule's length.
    index: int
    count: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "domain": self.domain,
            "steps": self.steps,
            "weights": self.weights.tolist(),
            "index": self.index,
            "count": self.count,
        }


@dataclass(frozen=True)
class Directive:
    """The instruction for the trainer until its next observation.

    A training loop needs only ``weights`` and ``train_steps``: train ``train_steps`` steps on the mixture
    ``weights``, then report per-domain losses. ``weights`` already equals ``probe.weights`` during an
    Aioli probe; ``mixture`` is the method's current answer to "which mixture is best" (DoReMi's running
    average, Aioli's exploit mixture, the baselines' fixed mixture), which is what a final run should use.
    """

    weights: FloatArray
    mixture: FloatArray
    phase: Phase
    train_steps: int
    #: ``last observed step + train_steps``; ``None`` before the first observation (the trainer's step
    #: counter is not known yet).
    next_observation_step: int | None
    probe: Probe | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (lists instead of arrays) for the service's responses and trajectory."""
        return {
            "weights": self.weights.tolist(),
            "mixture": self.mixture.tolist(),
            "phase": self.phase,
            "train_steps": self.train_steps,
            "next_observation_step": self.next_observation_step,
            "probe": None if self.probe is None else self.probe.to_dict(),
        }
