"""The experiment spec as stored, parsed into a typed model once per use instead of read as a dict."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from pydantic import Field

from service.schemas import (
    STORED,
    BudgetSpec,
    ContinualSpec,
    DomainSpec,
    FidelityAxis,
    ObjectiveSpec,
    SearchSpec,
    Strict,
)


class ExperimentSpec(Strict):
    """What ``Experiment.spec`` holds: the creation request without its name and metadata.

    Parsed under :data:`~service.schemas.STORED`, so a spec stored before a request limit tightened (or
    imported) still parses.
    """

    domains: list[DomainSpec]
    objective: ObjectiveSpec
    fidelities: list[FidelityAxis] = Field(default_factory=list)
    budget: BudgetSpec = Field(default_factory=BudgetSpec)
    search: SearchSpec = Field(default_factory=SearchSpec)
    continual: ContinualSpec | None = None

    @property
    def domain_names(self) -> list[str]:
        return [d.name for d in self.domains]

    @property
    def axis_names(self) -> list[str]:
        return [a.name for a in self.fidelities]

    @property
    def model_metrics(self) -> list[str]:
        """Every metric a completed run must report and models fit: the objective's, then those only its
        outcome constraints and trade-offs name."""
        named = [c.metric for c in self.objective.constraints] + [t.metric for t in self.objective.tradeoffs]
        extra = [m for m in named if m not in self.objective.metrics]
        return [*self.objective.metrics, *dict.fromkeys(extra)]


class HasSpec(Protocol):
    """A stored experiment (``service.store.models.Experiment``): its spec column as JSON."""

    spec: dict[str, Any]


def parse_spec(stored: Mapping[str, Any]) -> ExperimentSpec:
    return ExperimentSpec.model_validate(stored, context=STORED)


def spec_of(exp: HasSpec) -> ExperimentSpec:
    return parse_spec(exp.spec)
