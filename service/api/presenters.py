"""Stored rows -> response bodies (domain-keyed mixtures, computed objective)."""

from __future__ import annotations

from typing import Any, cast

from service.schemas import (
    STORED,
    ExperimentOut,
    JobOut,
    PredictionOut,
    RunCounts,
    RunOut,
    RunStateName,
    TransferredRunOut,
    TransferResult,
    TransferSkips,
    TransferTaskName,
)
from service.spec import ExperimentSpec
from service.store.models import Experiment, Job, Run, TransferredRun
from service.store.transfers import TransferCounts
from service.validation import metric_weights


def experiment_out(exp: Experiment, counts: dict[str, int], transferred: int = 0,
                   warm_start: list[TransferCounts] | None = None) -> ExperimentOut:
    """The experiment as stored: its spec is validated under :data:`STORED`, so a spec accepted before a
    request range was tightened still reads back (and the response is not validated again)."""
    spec = exp.spec
    return ExperimentOut.model_validate(dict(
        id=exp.id, name=exp.name, state=exp.state, domains=spec["domains"], objective=spec["objective"],
        fidelities=spec.get("fidelities") or [], budget=spec.get("budget") or {}, search=spec.get("search") or {},
        continual=spec.get("continual"),
        metadata=exp.metadata_ or {}, run_counts=RunCounts(**counts), transferred_runs=transferred,
        warm_start=None if warm_start is None else [transfer_result(c) for c in warm_start],
        data_version=exp.data_version, created_at=exp.created_at, updated_at=exp.updated_at,
    ), context=STORED)


def transfer_result(counts: TransferCounts) -> TransferResult:
    return TransferResult(source_experiment_id=counts.source_experiment_id, weight=counts.weight,
                          transferred=counts.transferred,
                          skipped=TransferSkips(already_transferred=counts.already_transferred,
                                                domain_not_in_target=counts.domain_not_in_target,
                                                no_objective=counts.no_objective))


class RunPresenter:
    """Formats runs of one experiment; built once per request so the spec is parsed once."""

    def __init__(self, spec: ExperimentSpec) -> None:
        self.domains = spec.domain_names
        self.axes = spec.axis_names
        self.metrics = spec.objective.metrics
        self.weights = metric_weights(spec.objective).tolist()

    def objective(self, metrics: dict[str, float]) -> float | None:
        if not metrics or any(m not in metrics for m in self.metrics):
            return None
        return float(sum(w * metrics[m] for w, m in zip(self.weights, self.metrics, strict=True)))

    def mixture(self, vector: list[float]) -> dict[str, float]:
        return dict(zip(self.domains, vector, strict=True))

    def fidelity(self, vector: list[float]) -> dict[str, float]:
        return dict(zip(self.axes, vector, strict=False))

    def run(self, r: Run) -> RunOut:
        pred: dict[str, Any] | None = r.prediction
        return RunOut(
            id=r.id, experiment_id=r.experiment_id, mixture=self.mixture(r.mixture), fidelity=self.fidelity(r.fidelity),
            state=cast(RunStateName, r.state), metrics=r.metrics or {}, objective=self.objective(r.metrics or {}),
            cost=r.cost,
            method=r.method, predicted=PredictionOut(**pred) if pred else None, client_run_id=r.client_run_id,
            client_id=r.client_id, claimed_at=r.claimed_at, error=r.error, created_at=r.created_at,
            updated_at=r.updated_at, completed_at=r.completed_at,
        )

    def transferred(self, r: TransferredRun) -> TransferredRunOut:
        """A run brought in from another experiment: its fidelity as the source measured it."""
        return TransferredRunOut(
            id=r.id, experiment_id=r.experiment_id, source_experiment_id=r.source_experiment_id,
            source_run_id=r.source_run_id, weight=r.weight, task=cast(TransferTaskName, r.task),
            mixture=self.mixture(r.mixture), fidelity=r.fidelity, metrics=r.metrics, loss=r.loss, cost=r.cost,
            created_at=r.created_at,
        )


def job_out(job: Job) -> JobOut:
    return JobOut(id=job.id, kind=job.kind, state=job.state, experiment_id=job.experiment_id, progress=job.progress,
                  error=job.error, result=job.result, created_at=job.created_at, started_at=job.started_at,
                  finished_at=job.finished_at)
