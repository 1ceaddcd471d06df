"""Answer proposed runs from a fixed table of finished runs, for replay benchmarks.

A replay benchmark lets a method propose (mixture, fidelity) pairs and answers each with a run that was
really trained: the row at the same fidelity whose mixture is the same or, failing that, the nearest in
L1 distance (the total variation between mixtures, x2). Methods given the pool as ``candidates`` always
hit exact rows; continuous proposals are snapped to the nearest one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from mixing.errors import MixingError
from mixing.problem import same_fidelity
from mixing.simplex import FloatArray


class NoRunAtFidelityError(MixingError):
    """The pool holds no run at the proposed fidelity."""


@dataclass(frozen=True)
class ReplayPool:
    """Finished runs: mixtures ``(n, d)``, fidelities ``(n, m)``, objective ``(n,)`` and cost ``(n,)``."""

    mixtures: FloatArray
    fidelities: FloatArray
    objective: FloatArray
    cost: FloatArray

    def answer(self, mixture: ArrayLike, fidelity: ArrayLike) -> tuple[int, bool]:
        """(row index, exact?) of the run answering a proposal at ``fidelity`` (:func:`same_fidelity`)."""
        f = np.asarray(fidelity, dtype=np.float64).reshape(1, -1)
        rows = np.flatnonzero(same_fidelity(self.fidelities, f))
        if len(rows) == 0:
            raise NoRunAtFidelityError(f"no run in the pool at fidelity {f.ravel().tolist()}")
        dist = np.abs(self.mixtures[rows] - np.asarray(mixture, dtype=np.float64)).sum(axis=1)
        i = int(np.argmin(dist))
        return int(rows[i]), bool(dist[i] < 1e-9)
