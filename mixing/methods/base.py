"""The interface between the service and a search method (design, RegMix, laws, BO, ...).

A method is stateless between calls: everything it needs arrives in a :class:`SearchContext`, including
``hints`` left by earlier fits (the selected law, GP hyperparameters for a warm start). This keeps the
service free to run the same call in-process or on a worker on another machine.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np

from mixing.compute import Compute
from mixing.problem import Candidates, Observations, Problem, Proposal, Recommendation
from mixing.simplex import FloatArray
from mixing.transfer import Transfers


@dataclass(frozen=True)
class SearchContext:
    """Everything a method may look at for one call."""

    problem: Problem
    observations: Observations
    rng: np.random.Generator
    hints: dict[str, Any] = field(default_factory=dict)
    #: Where the numerical work runs (the caller's settings; methods read no environment).
    compute: Compute = field(default_factory=Compute)
    #: Runs of related experiments (warm start), used as a learned prior mean (:mod:`mixing.transfer`).
    transfers: Transfers | None = None


class SearchMethod(Protocol):
    """What the service calls. ``suggest`` must not return points equal to pending ones."""

    name: ClassVar[str]

    def suggest(
        self,
        ctx: SearchContext,
        count: int,
        fidelity: FloatArray | None = None,
        candidates: Candidates | None = None,
    ) -> list[Proposal]: ...

    def recommend(self, ctx: SearchContext, candidates: FloatArray | None = None) -> Recommendation:
        """The best mixture at the target fidelity; with ``candidates`` (mixtures), the best of those."""
        ...


class Predictor(Protocol):
    """A model fitted once and asked many times; picklable, so the service can store it with the data
    version it was fitted on and answer later predictions without fitting again."""

    def predict(self, mixtures: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
        """(metrics ``(n, k)`` -- ``(n, 0)`` for a model of the objective alone --, objective ``(n,)`` in the
        user's orientation, 90% half-width ``(n,)``) at each of the ``(n, d)`` mixtures."""
        ...


@runtime_checkable
class PredictiveMethod(SearchMethod, Protocol):
    """A method that fits a model of the runs and answers predictions with it (a :class:`Predictor`).

    Model-free methods (design, random) are plain :class:`SearchMethod`; :func:`mixing.methods.as_predictive`
    gives the method that predicts for them.

    ``model_hints`` names the ``ctx.hints`` its fit reads: a stored predictor is only as current as those
    hints, so the service keys stored predictors by them as well as by the data version.
    """

    model_hints: ClassVar[tuple[str, ...]]

    def predictor(self, ctx: SearchContext, fidelity: FloatArray | None = None) -> Predictor:
        """The model fitted on the context's runs, predicting at ``fidelity`` (default: the target; NaN axes
        are taken at the target)."""
        ...


__all__ = ["PredictiveMethod", "Predictor", "SearchContext", "SearchMethod"]
