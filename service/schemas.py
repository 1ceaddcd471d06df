"""Pydantic request and response bodies: the wire contract of ``/v1``.

Shape checks that need no stored state live here (types, ranges, finiteness, uniqueness); checks that
depend on the experiment (domain names, fidelity ranges) live in :mod:`service.validation`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)

from mixing.methods import method_names

#: Validation context of specs read back from storage (:func:`service.api.presenters.experiment_out`): the
#: request-only checks below (magnitudes, the method registry) are skipped, so tightening them never makes
#: an experiment stored before unreadable.
STORED: dict[str, bool] = {"stored": True}

# Magnitudes accepted from requests (README "Magnitudes"). Models square, sum and exponentiate these; within
# the ranges every such intermediate stays far from float overflow, so finite inputs give finite fits.
#: Metrics and losses (run metrics, online losses, DoReMi reference losses).
MAX_METRIC = 1e12
#: Objective weights and online initial weights (both rescaled to sum to 1).
MAX_WEIGHT = 1e12
#: Fidelity values, token counts and priors (token shares or token counts).
MAX_SCALE = 1e24
#: Run costs (any unit, FLOPs included).
MAX_COST = 1e30
MIN_EPOCHS, MAX_EPOCHS = 1e-3, 1e6


def _from_request(info: ValidationInfo) -> bool:
    return not (info.context or {}).get("stored")


def within(low: float, high: float) -> AfterValidator:
    """A number in ``[low, high]``, checked on requests only (see :data:`STORED`)."""

    def check(value: float, info: ValidationInfo) -> float:
        if _from_request(info) and not low <= value <= high:
            raise ValueError(f"must lie within [{low:g}, {high:g}], got {value:g} (README: Magnitudes)")
        return value

    return AfterValidator(check)


#: Numbers must be JSON numbers (strict mode, every field of every request body): lax parsing would take
#: ``"0.4"`` or ``true`` (as 1.0) for a weight or a loss, and ``"2"`` for a count. A float field still
#: takes an integer, since JSON has one number type.
Finite = Annotated[float, Field(allow_inf_nan=False, strict=True)]
Weight = Annotated[float, Field(allow_inf_nan=False, strict=True)]
Metric = Annotated[Finite, within(-MAX_METRIC, MAX_METRIC)]
FidelityValue = Annotated[Finite, within(-MAX_SCALE, MAX_SCALE)]
Name = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$")]
#: Free text, stored as given. PostgreSQL text cannot hold NUL, so no backend accepts one.
Text = Annotated[str, StringConstraints(pattern=r"^[^\x00]*$")]
#: A client's idempotency key (``client_run_id``, ``client_session_id``).
ClientKey = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=r"^[^\x00]+$")]
Seed = Annotated[int, Field(ge=0, lt=2**63)]
RunStateName = Literal["suggested", "running", "completed", "failed", "abandoned"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class DomainSpec(Strict):
    name: Name
    prior: Annotated[float, Field(ge=0, allow_inf_nan=False), within(0, MAX_SCALE)] | None = Field(
        default=None, description="natural token share (or token count); used as the Dirichlet prior of designs")
    tokens_available: Annotated[float, Field(gt=0, allow_inf_nan=False), within(1, MAX_SCALE)] | None = Field(
        default=None, description="tokens of this domain available for the target run")
    min_weight: Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)] = 0.0
    max_weight: Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)] = 1.0

    @model_validator(mode="after")
    def _bounds_ordered(self) -> DomainSpec:
        if self.min_weight > self.max_weight:
            raise ValueError("min_weight must not exceed max_weight")
        return self


#: ``relative_to`` of an outcome constraint naming the experiment's natural mixture (the domains' priors).
PRIOR_BASELINE = "prior"


class OutcomeConstraintSpec(Strict):
    """A bound a recommended mixture's predicted metric must meet at the target fidelity (README: Outcome
    constraints): absolute (``bound``), or relative to a baseline (``relative_to`` with ``slack``)."""

    metric: Name = Field(description="a metric every completed run reports (it becomes required)")
    op: Literal["<=", ">="]
    bound: Metric | None = None
    relative_to: Name | None = Field(
        default=None, description=f'"{PRIOR_BASELINE}" (the mixture the domains\' priors give) or the id of a '
                                  "run of this experiment: the bound is that mixture's value of the metric")
    slack: Annotated[float, Field(ge=0, allow_inf_nan=False, strict=True), within(0, 1e3)] = Field(
        default=0.0, description="relative: <= allows value*(1+slack), >= value*(1-slack) (for positive values)")

    @model_validator(mode="after")
    def _one_bound(self) -> OutcomeConstraintSpec:
        if (self.bound is None) == (self.relative_to is None):
            raise ValueError("give exactly one of bound and relative_to")
        if self.bound is not None and self.slack:
            raise ValueError("slack is only allowed with relative_to")
        return self


class TradeOffSpec(Strict):
    """A further objective for trade-off fronts (``GET …/pareto``): a metric with its own goal. BO's
    suggestions aim at the front's hypervolume with it; the recommendation optimises the objective."""

    metric: Name = Field(description="a metric every completed run reports (it becomes required)")
    goal: Literal["minimize", "maximize"] = "minimize"


class ObjectiveSpec(Strict):
    metrics: list[Name] = Field(min_length=1, max_length=1024)
    aggregate: Literal["single", "mean", "weighted_mean"] = "mean"
    weights: list[Annotated[float, Field(ge=0, allow_inf_nan=False), within(0, MAX_WEIGHT)]] | None = None
    goal: Literal["minimize", "maximize"] = "minimize"
    constraints: list[OutcomeConstraintSpec] = Field(
        default_factory=list, max_length=64, description="outcome constraints a recommendation must meet")
    feasibility_probability: Annotated[float, Field(gt=0, lt=1, allow_inf_nan=False, strict=True)] = Field(
        default=0.9, description="the predicted probability of meeting every constraint a recommendation needs")
    tradeoffs: list[TradeOffSpec] = Field(
        default_factory=list, max_length=16, description="further objectives, each with its goal, that "
                                                         "trade-off fronts show against the objective")

    @model_validator(mode="after")
    def _consistent(self) -> ObjectiveSpec:
        if len(set(self.metrics)) != len(self.metrics):
            raise ValueError("metrics must be unique")
        if self.aggregate == "single" and len(self.metrics) != 1:
            raise ValueError("aggregate 'single' takes exactly one metric")
        if self.aggregate == "weighted_mean":
            if self.weights is None or len(self.weights) != len(self.metrics):
                raise ValueError("weighted_mean needs one weight per metric")
            if sum(self.weights) <= 0:
                raise ValueError("weights must not all be zero")
        elif self.weights is not None:
            raise ValueError("weights are only allowed with aggregate 'weighted_mean'")
        return self


class FidelityAxis(Strict):
    name: Name
    min: FidelityValue
    max: FidelityValue
    target: FidelityValue
    default: FidelityValue | None = Field(default=None, description="value for suggestions that do not choose "
                                                                    "one (default: min, the cheapest proxy)")

    @model_validator(mode="after")
    def _ordered(self) -> FidelityAxis:
        if not self.min <= self.max:
            raise ValueError("min must not exceed max")
        if not self.min <= self.target <= self.max:
            raise ValueError("target must lie within [min, max]")
        if self.default is not None and not self.min <= self.default <= self.max:
            raise ValueError("default must lie within [min, max]")
        return self


class BudgetSpec(Strict):
    target_tokens: Annotated[float, Field(gt=0, allow_inf_nan=False), within(1, MAX_SCALE)] | None = None
    max_epochs: Annotated[float, Field(gt=0, allow_inf_nan=False), within(MIN_EPOCHS, MAX_EPOCHS)] | None = Field(
        default=None, description="with tokens_available, caps each weight at tokens*epochs/target_tokens")


class LevelCost(Strict):
    """What one run costs at one fidelity level, in the unit runs report their ``cost`` in (names are checked
    against the experiment's axes in :mod:`service.validation`)."""

    fidelity: dict[Name, FidelityValue] = Field(min_length=1, max_length=64,
                                                description="a value for every fidelity axis")
    cost: Annotated[float, Field(gt=0, allow_inf_nan=False), within(0, MAX_SCALE)]


class SearchSpec(Strict):
    level_costs: list[LevelCost] = Field(
        default_factory=list, max_length=64,
        description="known cost of a run at some fidelity levels (e.g. the target's). Until runs at a level "
                    "report their cost, BO forecasts it from these instead of extrapolating along the axes")
    initial_runs: Annotated[int, Field(ge=1, le=100_000)] | None = Field(
        default=None, description="space-filling designs before models take over (default max(10, 2*domains))")
    default_method: str = Field(default="auto", description="method of suggestion requests that name none")

    @field_validator("default_method")
    @classmethod
    def _known_method(cls, name: str, info: ValidationInfo) -> str:
        if _from_request(info) and name not in method_names():
            raise ValueError(f"unknown method {name!r}; available: {method_names()}")
        return name


class ContinualSpec(Strict):
    """Continual pretraining of a base model: general data replayed with the domain data of ``domain_group``
    (README "Continual pretraining"); names are checked against the experiment in :mod:`service.validation`."""

    domain_group: list[Name] = Field(min_length=1, max_length=1024, description="the domains of the new data; "
                                     "every other domain is general data replayed. A run's domain ratio is "
                                     "its mixture's total weight on these")
    general_metrics: list[Name] = Field(min_length=1, max_length=1024, description="objective metrics whose "
                                        "mean is a run's general loss")
    domain_metrics: list[Name] = Field(min_length=1, max_length=1024, description="objective metrics whose "
                                       "mean is a run's domain loss")
    tokens_axis: Name = Field(description="the fidelity axis that counts a run's training tokens")
    base_general_loss: Metric = Field(description="the base model's general loss, before continual pretraining")
    tolerance: Annotated[float, Field(gt=0, allow_inf_nan=False, strict=True), within(0, MAX_METRIC)] = Field(
        description="the general-loss increase allowed over base_general_loss")
    tolerance_kind: Literal["absolute", "relative"] = Field(default="absolute", description="absolute: in loss "
                                          "units; relative: a fraction of base_general_loss")
    target_tokens: Annotated[float, Field(gt=0, allow_inf_nan=False, strict=True), within(1, MAX_SCALE)] | None = (
        Field(default=None, description="tokens of the planned run (default: the tokens axis' target)"))


class TransferIn(Strict):
    """One source of a warm start: an earlier experiment of the same project and how much to trust it."""

    experiment_id: Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[^\x00-\x1f\x7f]+$")]
    weight: Annotated[float, Field(gt=0, allow_inf_nan=False, strict=True), within(0, MAX_WEIGHT)] = Field(
        default=1.0, description="> 0; scales how strongly the source's runs pull the models before this "
                                 "experiment's own runs confirm them (1: as much as the data say)")


class ExperimentCreate(Strict):
    name: Name
    domains: list[DomainSpec] = Field(min_length=2, max_length=1024)
    objective: ObjectiveSpec
    fidelities: list[FidelityAxis] = Field(default_factory=list, max_length=8)
    budget: BudgetSpec = Field(default_factory=BudgetSpec)
    search: SearchSpec = Field(default_factory=SearchSpec)
    continual: ContinualSpec | None = None
    metadata: dict[Text, Text] = Field(default_factory=dict)
    #: Not part of the stored spec (``exclude``): the transfers it asks for are stored as runs of their own.
    warm_start: list[TransferIn] = Field(
        default_factory=list, max_length=64, exclude=True,
        description="earlier experiments (same project) whose completed runs this one starts from "
                    "(README: Warm start)")

    @field_validator("domains")
    @classmethod
    def _unique_domains(cls, v: list[DomainSpec]) -> list[DomainSpec]:
        names = [d.name for d in v]
        if len(set(names)) != len(names):
            raise ValueError("domain names must be unique")
        return v

    @field_validator("fidelities")
    @classmethod
    def _unique_axes(cls, v: list[FidelityAxis]) -> list[FidelityAxis]:
        names = [a.name for a in v]
        if len(set(names)) != len(names):
            raise ValueError("fidelity names must be unique")
        return v


class ExperimentPatch(Strict):
    name: Name | None = None
    state: Literal["active", "archived"] | None = None
    budget: BudgetSpec | None = None
    search: SearchSpec | None = None
    metadata: dict[Text, Text] | None = None


class RunCounts(BaseModel):
    suggested: int = 0
    running: int = 0
    completed: int = 0
    failed: int = 0
    abandoned: int = 0


class ExperimentOut(BaseModel):
    id: str
    name: str
    state: str
    domains: list[DomainSpec]
    objective: ObjectiveSpec
    fidelities: list[FidelityAxis]
    budget: BudgetSpec
    search: SearchSpec
    continual: ContinualSpec | None = None
    metadata: dict[str, str]
    run_counts: RunCounts
    #: Runs brought in from other experiments (warm start); never among ``run_counts``.
    transferred_runs: int = 0
    #: On creation with ``warm_start`` only: what each source brought in.
    warm_start: list[TransferResult] | None = None
    data_version: int
    created_at: datetime
    updated_at: datetime


class ExperimentList(BaseModel):
    experiments: list[ExperimentOut]
    next_page_token: str | None = None


class RunReport(Strict):
    id: str | None = Field(default=None, description="id of a suggested run this reports on")
    client_run_id: ClientKey | None = None
    mixture: dict[str, Weight] | None = None
    fidelity: dict[str, FidelityValue] | None = None
    metrics: dict[Name, Metric] = Field(default_factory=dict)
    cost: Annotated[float, Field(ge=0, allow_inf_nan=False, strict=True), within(0, MAX_COST)] | None = None
    state: Literal["running", "completed", "failed", "abandoned"] = "completed"
    error: Annotated[Text, StringConstraints(max_length=10_000)] | None = None


class RunBatch(Strict):
    runs: list[RunReport] = Field(min_length=1, max_length=10_000)


class PredictionOut(BaseModel):
    value: float
    lower: float | None = None
    upper: float | None = None


class RunOut(BaseModel):
    id: str
    experiment_id: str
    mixture: dict[str, float]
    fidelity: dict[str, float]
    state: RunStateName
    metrics: dict[str, float]
    objective: float | None
    cost: float | None
    method: str | None
    predicted: PredictionOut | None
    client_run_id: str | None
    #: The client a suggestion was handed to (``client_id`` of its request), and when it was handed out.
    client_id: str | None = None
    claimed_at: datetime | None = None
    error: str | None
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None


class RunList(BaseModel):
    runs: list[RunOut]
    next_page_token: str | None = None


class BatchResult(BaseModel):
    created: int
    existing: int
    updated: int
    run_ids: list[str]


class CandidateIn(Strict):
    mixture: dict[str, Weight]
    fidelity: dict[str, FidelityValue] | None = None


class SuggestionRequest(Strict):
    count: Annotated[int, Field(ge=1, le=1000)] = 1
    fidelity: dict[str, FidelityValue] | None = None
    method: str | None = None
    candidates: list[CandidateIn] | None = Field(default=None, max_length=200_000)
    seed: Seed | None = None
    client_id: ClientKey | None = Field(
        default=None,
        description="the trainer asking (e.g. a worker's name). Its suggestions still pending are returned "
                    "first, so a repeated or retried request gets the same runs back instead of new ones")


class JobOut(BaseModel):
    id: str
    kind: str
    state: str
    experiment_id: str | None
    progress: float
    error: str | None
    result: dict[str, Any] | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class SuggestionResponse(BaseModel):
    runs: list[RunOut]


class JobAccepted(BaseModel):
    job: JobOut


class OutcomeOut(BaseModel):
    """An outcome constraint at the recommended mixture: the absolute bound it resolved to, the metric's
    predicted value with its 90% interval, and the probability that the bound holds."""

    metric: str
    op: Literal["<=", ">="]
    bound: float
    value: float
    lower: float
    upper: float
    probability: float


class RecommendationOut(BaseModel):
    mixture: dict[str, float]
    fidelity: dict[str, float]
    predicted: PredictionOut
    method: str
    n_runs: int
    data_version: int
    details: dict[str, Any] = Field(default_factory=dict)
    #: One per outcome constraint of the objective, in its order (empty without constraints).
    constraints: list[OutcomeOut] = Field(default_factory=list)
    created_at: datetime


class PredictRequest(Strict):
    mixtures: list[dict[str, Weight]] = Field(min_length=1, max_length=100_000)
    fidelity: dict[str, FidelityValue] | None = None
    method: str | None = None
    seed: Seed | None = Field(default=None, description="fixed seed: the same data gives the same model")


class RecommendationRequest(Strict):
    candidates: list[dict[str, Weight]] = Field(
        min_length=1, max_length=100_000, description="the mixtures to choose among (e.g. a replay's pool)")
    method: str | None = None
    seed: Seed | None = Field(default=None, description="fixed seed: the same data gives the same answer")


class PredictedPoint(BaseModel):
    objective: float
    lower: float | None = None
    upper: float | None = None
    metrics: dict[str, float]


class PredictResponse(BaseModel):
    predictions: list[PredictedPoint]
    method: str
    n_runs: int



class ParetoAxisOut(BaseModel):
    """One axis of a front: ``objective`` or a metric, its direction, and the bound of the outcome constraint
    on it (absolute, as resolved for the current data), if any."""

    name: str
    goal: Literal["minimize", "maximize"]
    bound: float | None = None


class ParetoPointOut(BaseModel):
    """A predicted point of the front: the mixture, its predicted value on each axis with a 90% interval, and
    the probability that it meets every outcome constraint."""

    mixture: dict[str, float]
    values: list[float]
    lower: list[float]
    upper: list[float]
    feasibility: float


class ObservedPointOut(BaseModel):
    """A completed run on the same axes; ``on_front`` when no other observed run dominates it."""

    run_id: str
    values: list[float]
    on_front: bool


class ParetoOut(BaseModel):
    axes: list[ParetoAxisOut]
    front: list[ParetoPointOut] = Field(description="non-dominated predictions over the candidates, by the first axis")
    observed: list[ObservedPointOut] = Field(description="completed runs at the fidelity level the model fitted")
    method: str
    n_candidates: int
    n_runs: int
    data_version: int


class TransferSkips(BaseModel):
    """Source runs not brought in, by reason."""

    #: Already brought in from this source (its weight is updated, no row is added).
    already_transferred: int = 0
    #: The run puts weight on a domain this experiment lacks.
    domain_not_in_target: int = 0
    #: The run has neither this experiment's objective metrics nor its own experiment's.
    no_objective: int = 0


class TransferResult(BaseModel):
    """What one warm-start source brought in (completed runs only: pending and failed ones never come)."""

    source_experiment_id: str
    weight: float
    transferred: int
    skipped: TransferSkips


TransferTaskName = Literal["target_objective", "source_objective"]


class TransferredRunOut(BaseModel):
    """A run of another experiment, brought in by a warm start: never one of this experiment's own."""

    id: str
    experiment_id: str
    source_experiment_id: str
    source_run_id: str
    weight: float
    #: ``loss`` is this experiment's objective (the run has its metrics), or else the source's own.
    task: TransferTaskName
    mixture: dict[str, float]
    fidelity: dict[str, float]
    metrics: dict[str, float]
    loss: float
    cost: float | None
    created_at: datetime


class TransferredRunList(BaseModel):
    runs: list[TransferredRunOut]
    next_page_token: str | None = None
