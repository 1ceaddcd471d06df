"""Run reports: a client's results, stored idempotently, one at a time or as an all-or-nothing batch.

A retried report never duplicates a run: a run is found again by its ``id`` or ``client_run_id``, an
identical repeat changes nothing, and a contradicting one is refused. Every change bumps the experiment's
data version in the same transaction.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import numpy as np
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from mixing.problem import same_fidelity
from service import validation as v
from service.errors import ErrorCode
from service.spec import ExperimentSpec, spec_of
from service.store.errors import InvalidRecord, RecordConflict, RecordNotFound
from service.store.loading import bump_version, load_experiment, require_active
from service.store.models import FINAL_STATES, Experiment, Run, RunState, new_id, utcnow
from service.store.repository import Repository, any_of
from service.store.run_writes import NewRunInsert, PendingRunAdvance, insert_runs
from service.store.session import retry_races, with_retries

#: Which state changes a report may make to a stored run; a final state is never left.
ALLOWED_TRANSITIONS: dict[str, set[str]] = {
    RunState.suggested: {RunState.running, RunState.completed, RunState.failed, RunState.abandoned},
    RunState.running: {RunState.running, RunState.completed, RunState.failed, RunState.abandoned},
    RunState.completed: set(),
    RunState.failed: set(),
    RunState.abandoned: set(),
}

#: Experiments whose specs :meth:`Reports.report_run` keeps in memory, per process (a spec is ~2 KB).
REPORT_SPEC_CACHE_SIZE = 4096


class RunReportFields(Protocol):
    """One report as a client sent it: mixture and fidelity by name, not yet checked against the spec."""

    @property
    def id(self) -> str | None: ...
    @property
    def client_run_id(self) -> str | None: ...
    @property
    def mixture(self) -> dict[str, float] | None: ...
    @property
    def fidelity(self) -> dict[str, float] | None: ...
    @property
    def metrics(self) -> Mapping[str, float]: ...
    @property
    def cost(self) -> float | None: ...
    @property
    def state(self) -> str: ...
    @property
    def error(self) -> str | None: ...


@dataclass(frozen=True)
class RunWrite:
    """A validated run report, in the experiment's domain and axis order, ready to store."""

    mixture: list[float] | None
    fidelity: list[float] | None
    metrics: dict[str, float]
    cost: float | None
    state: str
    client_run_id: str | None
    run_id: str | None
    error: str | None


def new_run_row(exp_id: str, run_id: str, w: RunWrite, now: datetime) -> dict[str, Any]:
    """A reported run that matches no stored one, as the column values of its new row."""
    return {
        "id": run_id, "experiment_id": exp_id, "mixture": w.mixture, "fidelity": w.fidelity or [],
        "state": w.state, "metrics": w.metrics, "cost": w.cost, "method": "external", "prediction": None,
        "client_run_id": w.client_run_id, "proposal_id": None, "error": w.error, "created_at": now,
        "updated_at": now, "heartbeat_at": now, "completed_at": now if w.state in FINAL_STATES else None,
    }


def validate_report(rules: v.ReportRules, body: RunReportFields, field: str) -> RunWrite:
    """``body`` checked against the experiment's rules; ``field`` prefixes the blamed path (``runs[3]``)."""
    mixture = rules.mixture(body.mixture, f"{field}.mixture" if field else "mixture") \
        if body.mixture is not None else None
    fid_field = f"{field}.fidelity" if field else "fidelity"
    fidelity = rules.fidelity(body.fidelity, fid_field) if body.fidelity is not None else None
    if body.id is None and mixture is None:
        raise InvalidRecord("a run not matched to a suggestion needs a mixture",
                            field=f"{field}.mixture" if field else "mixture", code=ErrorCode.invalid_mixture)
    if body.id is None and fidelity is None:
        fidelity = rules.fidelity(None, fid_field)
    if body.state == RunState.completed:
        rules.check_metrics_complete(dict(body.metrics), f"{field}.metrics" if field else "metrics")
    return RunWrite(mixture=mixture, fidelity=fidelity, metrics=dict(body.metrics), cost=body.cost,
                    state=body.state, client_run_id=body.client_run_id, run_id=body.id, error=body.error)


class Reports(Repository):
    def __init__(self, engine: Engine, factory: sessionmaker[Session]) -> None:
        super().__init__(engine, factory)
        self._insert_new_run = NewRunInsert(self.engine)
        self._advance_pending_run = PendingRunAdvance(self.engine)
        #: (experiment id, project) -> (spec, its report rules), for experiments seen active. What a report
        #: is validated against (domains, fidelity axes, objective metrics) never changes after creation,
        #: and there is no delete, so an entry never goes stale; whether the experiment is still active is
        #: checked by the insert itself.
        self._report_specs: dict[tuple[str, str], tuple[ExperimentSpec, v.ReportRules]] = {}

    def report_run(self, experiment_id: str, body: RunReportFields, project: str = "default"
                   ) -> tuple[Run, bool, ExperimentSpec]:
        """Store one report; returns (run, created, the experiment's spec). Retries never duplicate.

        For an experiment seen before, a new run and a plain result for a pending run are one round trip
        each (``service/store/run_writes.py``). Everything else — the first report, retries, runs already
        final, reports that repeat a mixture to check, archived or unknown experiments — reads, validates
        and writes in one session, and a rejected report rolls back having written nothing.
        """
        key = (experiment_id, project)
        cached = self._report_specs.get(key)
        if cached is not None:
            done = self._report_fast(experiment_id, body, project, cached)
            if done is not None:
                return done

        def general(s: Session, _attempt: int) -> tuple[Run, bool, ExperimentSpec, v.ReportRules]:
            exp = load_experiment(s, experiment_id, project)
            require_active(exp)
            spec = spec_of(exp)
            rules = v.ReportRules.of(spec)
            run, created, changed = self._apply_report(s, exp, validate_report(rules, body, ""), "")
            if changed:
                bump_version(s, exp.id)
            return run, created, spec, rules

        # A concurrent report with the same client_run_id may win the insert: the retry reads it back and
        # applies this one to it.
        run, created, spec, rules = with_retries(self.factory, general)
        if len(self._report_specs) >= REPORT_SPEC_CACHE_SIZE:
            self._report_specs.clear()
        self._report_specs[key] = (spec, rules)
        return run, created, spec

    def _report_fast(self, experiment_id: str, body: RunReportFields, project: str,
                     cached: tuple[ExperimentSpec, v.ReportRules]) -> tuple[Run, bool, ExperimentSpec] | None:
        """The one-statement writes of ``run_writes``, or None when the general path must decide."""
        spec, rules = cached
        try:
            write = validate_report(rules, body, "")
        except Exception:  # pure validation, repeated by the general path, which answers an archived 409 first
            return None
        now = utcnow()
        if body.id is None:
            row = new_run_row(experiment_id, new_id("run"), write, now)
            pk = self._insert_new_run(row, project, now)
            return None if pk is None else (Run(pk=pk, **row), True, spec)
        if body.mixture is None and body.fidelity is None and body.client_run_id is None:
            advanced = self._advance_pending_run(experiment_id, project, body.id, write.state,
                                                 write.state in FINAL_STATES, write.metrics, write.cost,
                                                 write.error, now)
            return None if advanced is None else (advanced, False, spec)
        return None

    def report_batch(self, experiment_id: str, bodies: Sequence[RunReportFields], project: str = "default"
                     ) -> tuple[int, int, int, list[str]]:
        """Validate every report first, then store all of them in one transaction (all or nothing)."""
        with self.factory() as s:
            exp = load_experiment(s, experiment_id, project)
        require_active(exp)
        rules = v.ReportRules.of(spec_of(exp))
        writes = [validate_report(rules, b, f"runs[{i}]") for i, b in enumerate(bodies)]
        seen: dict[str, int] = {}
        for i, w in enumerate(writes):
            key = w.client_run_id or w.run_id
            if key is not None and key in seen:
                raise InvalidRecord(f"the batch reports {key!r} twice (also at runs[{seen[key]}])",
                                    field=f"runs[{i}]", code=ErrorCode.duplicate_in_batch)
            if key is not None:
                seen[key] = i
        return with_retries(self.factory, lambda s, attempt: self._store_batch(s, exp, writes, attempt > 0),
                            retry=retry_races)

    def _store_batch(self, s: Session, exp: Experiment, writes: list[RunWrite], skip_taken: bool
                     ) -> tuple[int, int, int, list[str]]:
        """Store the batch in ``s``; returns (created, existing, updated, run ids in report order).

        New client_run_ids are inserted in one statement. One that a concurrent report stores between this
        read and that insert fails the insert (an ``IntegrityError``, and the caller retries), or, with
        ``skip_taken`` (the retry), is left to the concurrent report's run and applied to it like a repeat.
        A retry therefore never fails on a taken id again, however many reports race it.
        """
        client_ids = [w.client_run_id for w in writes if w.client_run_id and not w.run_id]
        existing: dict[str, Run] = {}
        for match in any_of(s, Run.client_run_id, client_ids):
            for r in s.scalars(select(Run).where(Run.experiment_id == exp.id, match)):
                existing[r.client_run_id or ""] = r
        counts = Counter[str]()
        ids: list[str] = []
        fresh: list[tuple[int, dict[str, Any]]] = []
        now = utcnow()

        def apply(i: int, known: Run | None) -> str:
            run, _, changed = self._apply_report(s, exp, writes[i], f"runs[{i}]", known)
            counts["updated" if changed else "existing"] += 1
            return run.id

        for i, w in enumerate(writes):
            if w.run_id is None and (w.client_run_id is None or w.client_run_id not in existing):
                row = new_run_row(exp.id, new_id("run"), w, now)
                fresh.append((i, row))
                ids.append(row["id"])
            else:
                ids.append(apply(i, existing.get(w.client_run_id or "")))
        if fresh:
            taken = insert_runs(s, [row for _, row in fresh], skip_taken=skip_taken)
            for i, row in fresh:
                if row["client_run_id"] in taken:
                    ids[i] = apply(i, None)
            counts["created"] = len(fresh) - len(taken)
        if counts["created"] or counts["updated"]:
            bump_version(s, exp.id)
        return counts["created"], counts["existing"], counts["updated"], ids

    def _apply_report(self, s: Session, exp: Experiment, w: RunWrite, field: str,
                      known: Run | None = None) -> tuple[Run, bool, bool]:
        """Create or advance one run inside ``s``; returns (run, created, changed)."""
        prefix = f"{field}." if field else ""
        run = known
        if run is None and w.run_id is not None:
            run = s.scalar(select(Run).where(Run.id == w.run_id, Run.experiment_id == exp.id).with_for_update())
            if run is None:
                raise RecordNotFound(f"run {w.run_id!r} not found in this experiment", field=f"{prefix}id")
            if w.client_run_id and run.client_run_id and run.client_run_id != w.client_run_id:
                raise RecordConflict("the run already has a different client_run_id",
                                     field=f"{prefix}client_run_id", code=ErrorCode.client_run_id_mismatch)
        elif run is None and w.client_run_id is not None:
            run = s.scalar(select(Run).where(Run.experiment_id == exp.id, Run.client_run_id == w.client_run_id)
                           .with_for_update())
        if run is None:
            run = Run(**new_run_row(exp.id, new_id("run"), w, utcnow()))
            s.add(run)
            s.flush()
            return run, True, True
        return run, False, _advance(run, w, prefix)


def _advance(run: Run, w: RunWrite, prefix: str) -> bool:
    """Apply a report to a stored run. Identical repeats are no-ops; contradictions are conflicts."""
    if w.mixture is not None and not np.allclose(run.mixture, w.mixture, atol=v.MIXTURE_SUM_TOLERANCE * 10):
        raise RecordConflict("the mixture differs from the stored run's", field=f"{prefix}mixture",
                             code=ErrorCode.mixture_mismatch)
    if w.fidelity is not None and run.fidelity and not same_fidelity(run.fidelity, w.fidelity):
        raise RecordConflict("the fidelity differs from the stored run's", field=f"{prefix}fidelity",
                             code=ErrorCode.fidelity_mismatch)
    if run.state == w.state and run.state in FINAL_STATES:
        # A retry repeats its own metrics; the run may hold more (merged from earlier running reports).
        stored = run.metrics or {}
        same = (all(stored.get(k) == x for k, x in w.metrics.items())
                and (w.cost is None or run.cost == w.cost))
        if not same:
            raise RecordConflict(f"run {run.id} is already {run.state} with other results",
                                 field=f"{prefix}state", code=ErrorCode.run_final)
        return False
    if w.state not in ALLOWED_TRANSITIONS[run.state]:
        raise RecordConflict(f"run {run.id} is {run.state}; it cannot become {w.state}", field=f"{prefix}state",
                             code=ErrorCode.invalid_transition)
    now = utcnow()
    run.state = w.state
    if w.metrics:
        run.metrics = {**(run.metrics or {}), **w.metrics}
    if w.cost is not None:
        run.cost = w.cost
    if w.client_run_id and not run.client_run_id:
        run.client_run_id = w.client_run_id
    if w.error is not None:
        run.error = w.error
    run.heartbeat_at = now
    if w.state in FINAL_STATES:
        run.completed_at = now
    run.updated_at = now
    return True
