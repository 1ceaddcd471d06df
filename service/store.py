"""The store: every read and write of experiments, runs, jobs, fits and proposals goes through here.

Routers and tasks never build queries themselves, so invariants (idempotent reports, data versions bumped
with every result change, all-or-nothing batches) hold whichever entry point is used.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import ARRAY, ColumnElement, Engine, String, any_, bindparam, func, select, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from mixing.problem import Candidates, Observations
from service import validation as v
from service.db import transaction
from service.errors import Conflict, InvalidInput, NotFound
from service.locks import serialize
from service.models import (
    FINAL_STATES,
    PENDING_STATES,
    CandidatePool,
    Experiment,
    ExperimentState,
    Fit,
    Job,
    JobState,
    Proposal,
    ReoptPolicy,
    Run,
    RunState,
    new_id,
    utcnow,
)
from service.run_writes import NewRunInsert, PendingRunAdvance, insert_runs
from service.schemas import ExperimentCreate, ExperimentPatch, RunReport

#: Which state changes a report may make to a stored run; a final state is never left.
ALLOWED_TRANSITIONS: dict[str, set[str]] = {
    RunState.suggested: {RunState.running, RunState.completed, RunState.failed, RunState.abandoned},
    RunState.running: {RunState.running, RunState.completed, RunState.failed, RunState.abandoned},
    RunState.completed: set(),
    RunState.failed: set(),
    RunState.abandoned: set(),
}


def encode_page_token(pk: int) -> str:
    return base64.urlsafe_b64encode(f"pk:{pk}".encode()).decode().rstrip("=")


def decode_page_token(token: str | None) -> int | None:
    if not token:
        return None
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        pk = int(raw[3:]) if raw.startswith("pk:") else -1
        if not 0 <= pk < 2**31:  # primary keys are 32-bit integers on PostgreSQL
            raise ValueError(raw)
        return pk
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInput("page_token is not one this service issued", field="page_token",
                           code="invalid_page_token") from exc


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


@dataclass(frozen=True)
class Snapshot:
    """An experiment's data as arrays, with the rows they came from."""

    observations: Observations
    completed_ids: list[str]
    data_version: int


#: Experiments whose specs :meth:`Store.report_run` keeps in memory, per process (a spec is ~2 KB).
REPORT_SPEC_CACHE_SIZE = 4096
#: How long a delivery held back by its project's cap waits before asking for a slot again.
PROJECT_SLOT_WAIT_S = 1.0


#: Byte order and width of stored pools, fixed so a pool reads back the same on any machine.
POOL_DTYPE = np.dtype("<f8")


def pool_digest(pool: Candidates) -> str:
    """SHA-256 (hex) of a pool's shape and values, NaN ("the method chooses") included: equal pools,
    equal digests."""
    h = hashlib.sha256(repr((pool.mixtures.shape, pool.fidelities.shape)).encode())
    for part in (pool.mixtures, pool.fidelities):
        h.update(np.ascontiguousarray(part, dtype=POOL_DTYPE).tobytes())
    return h.hexdigest()


class Store:
    def __init__(self, engine: Engine, factory: sessionmaker[Session]) -> None:
        self.engine = engine
        self.factory = factory
        self._insert_new_run = NewRunInsert(engine)
        self._advance_pending_run = PendingRunAdvance(engine)
        #: (experiment id, project) -> (spec, its report rules), for experiments seen active. What a report
        #: is validated against (domains, fidelity axes, objective metrics) never changes after creation,
        #: and there is no delete, so an entry never goes stale; whether the experiment is still active is
        #: checked by the insert itself.
        self._report_specs: dict[tuple[str, str], tuple[dict[str, Any], v.ReportRules]] = {}

    # ----------------------------------------------------------------------------------- experiments
    def create_experiment(self, body: ExperimentCreate, project: str = "default") -> Experiment:
        spec = body.model_dump(mode="json", exclude={"name", "metadata"})
        v.constraints_from_spec(spec)
        exp = Experiment(id=new_id("exp"), project=project, name=body.name, spec=spec, metadata_=body.metadata,
                         state=ExperimentState.active.value, data_version=0, hints={})
        try:
            with transaction(self.factory) as s:
                s.add(exp)
        except IntegrityError as exc:
            raise Conflict(f"an experiment named {body.name!r} already exists", field="name",
                           code="duplicate_name") from exc
        return exp

    def get_experiment(self, experiment_id: str, project: str = "default", session: Session | None = None
                       ) -> Experiment:
        def _load(s: Session) -> Experiment:
            exp = s.scalar(select(Experiment).where(Experiment.id == experiment_id, Experiment.project == project))
            if exp is None:
                raise NotFound(f"experiment {experiment_id!r} not found", field="experiment_id")
            return exp

        if session is not None:
            return _load(session)
        with self.factory() as s:
            return _load(s)

    def list_experiments(self, project: str, page_size: int, page_token: str | None,
                         state: str | None = None, query: str | None = None) -> tuple[list[Experiment], str | None]:
        after = decode_page_token(page_token)
        stmt = select(Experiment).where(Experiment.project == project)
        if state:
            stmt = stmt.where(Experiment.state == state)
        if query:
            stmt = stmt.where(Experiment.name.contains(query, autoescape=True))
        if after is not None:
            stmt = stmt.where(Experiment.pk > after)
        with self.factory() as s:
            rows = list(s.scalars(stmt.order_by(Experiment.pk).limit(page_size + 1)))
        token = encode_page_token(rows[page_size - 1].pk) if len(rows) > page_size else None
        return rows[:page_size], token

    def patch_experiment(self, experiment_id: str, patch: ExperimentPatch, project: str = "default") -> Experiment:
        try:
            with transaction(self.factory) as s:
                exp = self.get_experiment(experiment_id, project, session=s)
                # Lock the row: a concurrent patch or version bump between this read and the write is lost.
                s.refresh(exp, with_for_update=True)
                spec = dict(exp.spec)
                if patch.budget is not None:
                    spec["budget"] = patch.budget.model_dump(mode="json")
                if patch.search is not None:
                    spec["search"] = patch.search.model_dump(mode="json")
                v.constraints_from_spec(spec)
                exp.spec = spec
                if patch.name is not None:
                    exp.name = patch.name
                if patch.state is not None:
                    exp.state = patch.state
                if patch.metadata is not None:
                    exp.metadata_ = patch.metadata
                if patch.budget is not None:
                    exp.data_version = exp.data_version + 1
                s.flush()
        except IntegrityError as exc:
            raise Conflict(f"an experiment named {patch.name!r} already exists", field="name",
                           code="duplicate_name") from exc
        return exp

    def run_counts(self, experiment_ids: Sequence[str]) -> dict[str, dict[str, int]]:
        if not experiment_ids:
            return {}
        stmt = (select(Run.experiment_id, Run.state, func.count())
                .where(Run.experiment_id.in_(experiment_ids)).group_by(Run.experiment_id, Run.state))
        out: dict[str, dict[str, int]] = {e: {} for e in experiment_ids}
        with self.factory() as s:
            for exp_id, state, n in s.execute(stmt):
                out[exp_id][state] = n
        return out

    def update_hints(self, experiment_id: str, hints: dict[str, Any]) -> None:
        with transaction(self.factory) as s:
            exp = s.scalar(select(Experiment).where(Experiment.id == experiment_id).with_for_update())
            if exp is not None:
                exp.hints = {**(exp.hints or {}), **hints}

    # --------------------------------------------------------------------------------- candidate pools
    def save_pool(self, experiment_id: str, pool: Candidates) -> str:
        """Store a validated pool unless this experiment already has it; returns its hash for a job's params."""
        digest = pool_digest(pool)
        exists = select(CandidatePool.pk).where(CandidatePool.experiment_id == experiment_id,
                                                CandidatePool.sha256 == digest)
        with self.factory() as s:
            if s.scalar(exists) is not None:
                return digest
        chosen = np.isnan(pool.fidelities)
        row = CandidatePool(id=new_id("pool"), experiment_id=experiment_id, sha256=digest,
                            n_rows=len(pool.mixtures),
                            mixtures=np.ascontiguousarray(pool.mixtures, dtype=POOL_DTYPE).tobytes(),
                            fidelities=np.where(chosen, 0.0, pool.fidelities).astype(POOL_DTYPE).tobytes(),
                            chosen=chosen.astype(np.uint8).tobytes())
        try:
            with transaction(self.factory) as s:
                s.add(row)
        except IntegrityError:  # the same pool stored by a concurrent request: one row serves both
            with self.factory() as s:
                if s.scalar(exists) is None:
                    raise
        return digest

    def load_pool(self, experiment_id: str, digest: str) -> Candidates:
        """The pool a propose job names (NaN fidelity where the method chooses), read without a copy."""
        with self.factory() as s:
            row = s.execute(select(CandidatePool.n_rows, CandidatePool.mixtures, CandidatePool.fidelities,
                                   CandidatePool.chosen)
                            .where(CandidatePool.experiment_id == experiment_id,
                                   CandidatePool.sha256 == digest)).first()
        if row is None:
            raise NotFound(f"candidate pool {digest} not found", field="candidates")
        n = int(row.n_rows)
        fidelities = np.frombuffer(row.fidelities, dtype=POOL_DTYPE).reshape(n, -1).astype(np.float64)
        fidelities[np.frombuffer(row.chosen, dtype=np.uint8).reshape(n, -1).astype(bool)] = np.nan
        return Candidates(mixtures=np.frombuffer(row.mixtures, dtype=POOL_DTYPE).reshape(n, -1),
                          fidelities=fidelities)

    # ------------------------------------------------------------------------------------------ runs
    @staticmethod
    def validate_report(rules: v.ReportRules, body: RunReport, field: str) -> RunWrite:
        mixture = rules.mixture(body.mixture, f"{field}.mixture" if field else "mixture") \
            if body.mixture is not None else None
        fid_field = f"{field}.fidelity" if field else "fidelity"
        fidelity = rules.fidelity(body.fidelity, fid_field) if body.fidelity is not None else None
        if body.id is None and mixture is None:
            raise InvalidInput("a run not matched to a suggestion needs a mixture",
                               field=f"{field}.mixture" if field else "mixture", code="invalid_mixture")
        if body.id is None and fidelity is None:
            fidelity = rules.fidelity(None, fid_field)
        if body.state == RunState.completed:
            rules.check_metrics_complete(body.metrics, f"{field}.metrics" if field else "metrics")
        return RunWrite(mixture=mixture, fidelity=fidelity, metrics=dict(body.metrics), cost=body.cost,
                        state=body.state, client_run_id=body.client_run_id, run_id=body.id, error=body.error)

    def report_run(self, experiment_id: str, body: RunReport, project: str = "default"
                   ) -> tuple[Run, bool, dict[str, Any]]:
        """Store one report; returns (run, created, the experiment's spec). Retries never duplicate.

        For an experiment seen before, a new run and a plain result for a pending run are one round trip
        each (``service/run_writes.py``). Everything else — the first report, retries, runs already final,
        reports that repeat a mixture to check, archived or unknown experiments — reads, validates and
        writes in one session, and a rejected report rolls back having written nothing.
        """
        key = (experiment_id, project)
        cached = self._report_specs.get(key)
        write = None
        if cached is not None:
            spec, rules = cached
            # An invalid report is answered by the general path, so an archived experiment's 409 comes first.
            with contextlib.suppress(InvalidInput):
                write = self.validate_report(rules, body, "")
        if write is not None:
            now = utcnow()
            if body.id is None:
                row = _new_run_row(experiment_id, new_id("run"), write, now)
                pk = self._insert_new_run(row, project, now)
                if pk is not None:
                    return Run(pk=pk, **row), True, spec
            elif body.mixture is None and body.fidelity is None and body.client_run_id is None:
                advanced = self._advance_pending_run(experiment_id, project, body.id, write.state,
                                                     write.state in FINAL_STATES, write.metrics, write.cost,
                                                     write.error, now)
                if advanced is not None:
                    return advanced, False, spec
        for attempt in range(3):
            try:
                with transaction(self.factory) as s:
                    exp = self.get_experiment(experiment_id, project, session=s)
                    _require_active(exp)
                    rules = v.ReportRules.of(exp.spec)
                    write = self.validate_report(rules, body, "")
                    run, created, changed = self._apply_report(s, exp, write, "")
                    if changed:
                        _bump_version(s, exp.id)
                if len(self._report_specs) >= REPORT_SPEC_CACHE_SIZE:
                    self._report_specs.clear()
                self._report_specs[key] = (exp.spec, rules)
                return run, created, exp.spec
            except IntegrityError:
                # A concurrent report with the same client_run_id won the insert; read it back and apply ours.
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def report_batch(self, experiment_id: str, bodies: Sequence[RunReport], project: str = "default"
                     ) -> tuple[int, int, int, list[str]]:
        """Validate every report first, then store all of them in one transaction (all or nothing)."""
        exp = self.get_experiment(experiment_id, project)
        _require_active(exp)
        rules = v.ReportRules.of(exp.spec)
        writes = [self.validate_report(rules, b, f"runs[{i}]") for i, b in enumerate(bodies)]
        seen: dict[str, int] = {}
        for i, w in enumerate(writes):
            key = w.client_run_id or w.run_id
            if key is not None and key in seen:
                raise InvalidInput(f"the batch reports {key!r} twice (also at runs[{seen[key]}])",
                                   field=f"runs[{i}]", code="duplicate_in_batch")
            if key is not None:
                seen[key] = i
        for attempt in range(3):
            try:
                with transaction(self.factory) as s:
                    return self._store_batch(s, exp, writes, skip_taken=attempt > 0)
            except (IntegrityError, OperationalError) as exc:
                if attempt == 2 or not (isinstance(exc, IntegrityError) or _is_deadlock(exc)):
                    raise
        raise AssertionError("unreachable")

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
        for match in _any_of(s, Run.client_run_id, client_ids):
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
                row = _new_run_row(exp.id, new_id("run"), w, now)
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
            _bump_version(s, exp.id)
        return counts["created"], counts["existing"], counts["updated"], ids

    def _apply_report(self, s: Session, exp: Experiment, w: RunWrite, field: str,
                      known: Run | None = None) -> tuple[Run, bool, bool]:
        """Create or advance one run inside ``s``; returns (run, created, changed)."""
        prefix = f"{field}." if field else ""
        run = known
        if run is None and w.run_id is not None:
            run = s.scalar(select(Run).where(Run.id == w.run_id, Run.experiment_id == exp.id).with_for_update())
            if run is None:
                raise NotFound(f"run {w.run_id!r} not found in this experiment", field=f"{prefix}id")
            if w.client_run_id and run.client_run_id and run.client_run_id != w.client_run_id:
                raise Conflict("the run already has a different client_run_id", field=f"{prefix}client_run_id",
                               code="client_run_id_mismatch")
        elif run is None and w.client_run_id is not None:
            run = s.scalar(select(Run).where(Run.experiment_id == exp.id, Run.client_run_id == w.client_run_id)
                           .with_for_update())
        if run is None:
            now = utcnow()
            row = _new_run_row(exp.id, new_id("run"), w, now)
            run = Run(**row)
            s.add(run)
            s.flush()
            return run, True, True
        return run, False, self._advance(exp, run, w, prefix)

    @staticmethod
    def _advance(exp: Experiment, run: Run, w: RunWrite, prefix: str) -> bool:
        """Apply a report to a stored run. Identical repeats are no-ops; contradictions are 409s."""
        if w.mixture is not None and not np.allclose(run.mixture, w.mixture, atol=v.MIXTURE_SUM_TOLERANCE * 10):
            raise Conflict("the mixture differs from the stored run's", field=f"{prefix}mixture",
                           code="mixture_mismatch")
        if w.fidelity is not None and run.fidelity and not np.allclose(run.fidelity, w.fidelity, rtol=1e-9):
            raise Conflict("the fidelity differs from the stored run's", field=f"{prefix}fidelity",
                           code="fidelity_mismatch")
        if run.state == w.state and run.state in FINAL_STATES:
            # A retry repeats its own metrics; the run may hold more (merged from earlier running reports).
            stored = run.metrics or {}
            same = (all(stored.get(k) == x for k, x in w.metrics.items())
                    and (w.cost is None or run.cost == w.cost))
            if not same:
                raise Conflict(f"run {run.id} is already {run.state} with other results",
                               field=f"{prefix}state", code="run_final")
            return False
        if w.state not in ALLOWED_TRANSITIONS[run.state]:
            raise Conflict(f"run {run.id} is {run.state}; it cannot become {w.state}", field=f"{prefix}state",
                           code="invalid_transition")
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

    def get_run(self, experiment_id: str, run_id: str, project: str = "default") -> Run:
        self.get_experiment(experiment_id, project)
        with self.factory() as s:
            run = s.scalar(select(Run).where(Run.id == run_id, Run.experiment_id == experiment_id))
        if run is None:
            raise NotFound(f"run {run_id!r} not found", field="run_id")
        return run

    def list_runs(self, exp: Experiment, page_size: int, page_token: str | None,
                  states: Sequence[str] = (), fidelity: list[float] | None = None) -> tuple[list[Run], str | None]:
        after = decode_page_token(page_token)
        stmt = select(Run).where(Run.experiment_id == exp.id)
        if states:
            stmt = stmt.where(Run.state.in_(list(states)))
        if after is not None:
            stmt = stmt.where(Run.pk > after)
        stmt = stmt.order_by(Run.pk)
        # Unfiltered, one row past the page says whether there is a next one; a server-side cursor
        # streaming thousands of rows costs more than the page itself when nothing is filtered in Python.
        stmt = stmt.limit(page_size + 1) if fidelity is None else stmt.execution_options(yield_per=2000)
        out: list[Run] = []
        last_pk: int | None = None
        with self.factory() as s:
            # Fidelity is stored as JSON; filter in Python, scanning pages until one is full.
            for run in s.scalars(stmt):
                if fidelity is not None and not np.allclose(run.fidelity, fidelity, rtol=1e-9, atol=0):
                    continue
                if len(out) == page_size:
                    return out, encode_page_token(last_pk or 0)
                out.append(run)
                last_pk = run.pk
        return out, None

    def add_suggested_runs(self, exp_id: str, mixtures: np.ndarray, fidelities: np.ndarray, method: str,
                           predictions: list[dict[str, Any] | None], proposal: dict[str, Any] | None = None,
                           job_id: str | None = None, handed_to: str | None = None, claimed: bool = True
                           ) -> list[Run]:
        """Store suggestions. ``claimed``: handed out now (to ``handed_to``, if the request named a client);
        False for a ready queue's runs, which wait unclaimed until a request takes them."""
        now = utcnow()
        with transaction(self.factory) as s:
            prop_id = None
            if proposal is not None:
                prop = Proposal(id=new_id("prop"), experiment_id=exp_id, job_id=job_id, kind="suggestion",
                                method=method, data_version=proposal["data_version"], n_runs=proposal["n_runs"],
                                payload=proposal.get("payload", {}))
                s.add(prop)
                prop_id = prop.id
            runs = [Run(id=new_id("run"), experiment_id=exp_id, mixture=[float(x) for x in m],
                        fidelity=[float(x) for x in f], state=RunState.suggested.value, metrics={},
                        method=method, prediction=p, proposal_id=prop_id, created_at=now, updated_at=now,
                        client_id=handed_to if claimed else None, claimed_at=now if claimed else None)
                    for m, f, p in zip(mixtures, fidelities, predictions, strict=True)]
            s.add_all(runs)
        return runs

    def suggestions_held(self, exp_id: str, client_id: str, limit: int) -> list[Run]:
        """Pending runs handed to ``client_id`` earlier, oldest first: what a repeated request gets back."""
        with self.factory() as s:
            return list(s.scalars(select(Run).where(Run.experiment_id == exp_id, Run.client_id == client_id,
                                                    Run.state.in_([p.value for p in PENDING_STATES]))
                                  .order_by(Run.pk).limit(limit)))

    def inflight_propose_job(self, exp_id: str, client_id: str) -> Job | None:
        """The oldest propose job still queued or running for ``client_id``, if any.

        Few propose jobs are in flight per experiment at once, so the ``client_id`` inside the JSON params
        is matched here rather than by an index.
        """
        with self.factory() as s:
            jobs = s.scalars(select(Job).where(Job.experiment_id == exp_id, Job.kind == "propose",
                                               Job.state.in_([JobState.queued.value, JobState.running.value]))
                             .order_by(Job.pk))
            return next((j for j in jobs if (j.params or {}).get("client_id") == client_id), None)

    def claim_ready(self, exp_id: str, job_kind: str, count: int, client_id: str | None) -> list[Run]:
        """Hand out ``count`` waiting ready-queue runs (proposed by ``job_kind`` jobs), oldest first, or none.

        All or nothing, so a request is served either wholly from the queue or wholly by a fresh proposal,
        and in one statement (it needs no transaction around it, which SQLite's driver would not open for
        a statement that starts with WITH). Concurrent claims never share a run: on PostgreSQL the picked
        rows are locked and other claims skip them (then find too few and take none); SQLite runs one
        writer at a time; and the re-checked ``claimed_at IS NULL`` never hands a run out twice.
        """
        now = utcnow()
        # MATERIALIZED: inlined into the IN, PostgreSQL may rescan the picking query, and each rescan with
        # SKIP LOCKED picks rows the previous one locked past; the LIMIT would then bound nothing.
        waiting = (select(Run.pk).join(Proposal, Proposal.id == Run.proposal_id).join(Job, Job.id == Proposal.job_id)
                   .where(Run.experiment_id == exp_id, Run.state == RunState.suggested.value,
                          Run.claimed_at.is_(None), Job.kind == job_kind)
                   .order_by(Run.pk).limit(count).with_for_update(of=Run, skip_locked=True)
                   .cte("waiting").prefix_with("MATERIALIZED"))
        enough = select(func.count()).select_from(waiting).scalar_subquery() == count
        with transaction(self.factory) as s:
            runs = list(s.scalars(update(Run).where(Run.pk.in_(select(waiting.c.pk)), Run.claimed_at.is_(None), enough)
                                  .values(claimed_at=now, client_id=client_id, updated_at=now)
                                  .returning(Run).execution_options(synchronize_session=False)))
        return sorted(runs, key=lambda r: r.pk)

    def snapshot(self, exp: Experiment) -> Snapshot:
        """Completed runs with every objective metric, plus pending points, as arrays."""
        metrics = exp.spec["objective"]["metrics"]
        d, m = len(exp.spec["domains"]), len(exp.spec.get("fidelities") or [])
        with self.factory() as s:
            version = s.scalar(select(Experiment.data_version).where(Experiment.id == exp.id)) or 0
            rows = s.execute(select(Run.id, Run.mixture, Run.fidelity, Run.metrics, Run.cost, Run.state)
                             .where(Run.experiment_id == exp.id,
                                    Run.state.in_([RunState.completed.value, *[p.value for p in PENDING_STATES]]))
                             .order_by(Run.pk)).all()
        done = [r for r in rows if r.state == RunState.completed.value and all(k in r.metrics for k in metrics)]
        pend = [r for r in rows if r.state != RunState.completed.value]
        obs = Observations(
            # Explicit row counts: ``reshape(-1, 0)`` is ambiguous, and an experiment without axes has m = 0.
            mixtures=np.array([r.mixture for r in done], dtype=np.float64).reshape(len(done), d),
            fidelities=np.array([r.fidelity for r in done], dtype=np.float64).reshape(len(done), m),
            metrics=np.array([[r.metrics[k] for k in metrics] for r in done],
                             dtype=np.float64).reshape(-1, len(metrics)),
            costs=np.array([math.nan if r.cost is None else r.cost for r in done], dtype=np.float64),
            pending_mixtures=np.array([r.mixture for r in pend], dtype=np.float64).reshape(len(pend), d),
            pending_fidelities=np.array([r.fidelity for r in pend], dtype=np.float64).reshape(len(pend), m),
        )
        return Snapshot(obs, [r.id for r in done], version)

    # ------------------------------------------------------------------------------------------ jobs
    def create_job(self, kind: str, experiment_id: str | None, params: dict[str, Any]) -> Job:
        job = Job(id=new_id("job"), kind=kind, experiment_id=experiment_id, params=params,
                  state=JobState.queued.value, progress=0.0, attempts=0)
        with transaction(self.factory) as s:
            s.add(job)
        return job

    def get_job(self, job_id: str, project: str | None = None) -> Job:
        """A job by id; with ``project``, only a job of one of that project's experiments (else 404)."""
        stmt = select(Job).where(Job.id == job_id)
        if project is not None:
            stmt = stmt.join(Experiment, Experiment.id == Job.experiment_id).where(Experiment.project == project)
        with self.factory() as s:
            job = s.scalar(stmt)
        if job is None:
            raise NotFound(f"job {job_id!r} not found", field="job_id")
        return job

    def start_job(self, job_id: str) -> Job | None:
        """Mark a queued (or retried) job running; None when it already finished (a duplicate delivery)."""
        with transaction(self.factory) as s:
            job = s.scalar(select(Job).where(Job.id == job_id).with_for_update())
            if job is None or job.state == JobState.succeeded.value:
                return None
            job.state = JobState.running.value
            job.attempts += 1
            job.started_at = utcnow()
            return job

    def set_job_progress(self, job_id: str, progress: float) -> None:
        with transaction(self.factory) as s:
            s.execute(update(Job).where(Job.id == job_id).values(progress=float(progress)))

    def finish_job(self, job_id: str, result: dict[str, Any] | None = None, error: str | None = None) -> None:
        with transaction(self.factory) as s:
            s.execute(update(Job).where(Job.id == job_id).values(
                state=JobState.failed.value if error else JobState.succeeded.value,
                result=result, error=error, progress=1.0 if error is None else Job.progress,
                finished_at=datetime.now(UTC)))

    # ----------------------------------------------------------------------------- fits and proposals
    def save_recommendation(self, exp_id: str, method: str, data_version: int, n_runs: int,
                            payload: dict[str, Any], job_id: str | None = None) -> Proposal:
        prop = Proposal(id=new_id("prop"), experiment_id=exp_id, job_id=job_id, kind="recommendation",
                        method=method, data_version=data_version, n_runs=n_runs, payload=payload)
        with transaction(self.factory) as s:
            s.add(prop)
        return prop

    def latest_recommendation(self, exp_id: str) -> Proposal | None:
        with self.factory() as s:
            return s.scalar(select(Proposal).where(Proposal.experiment_id == exp_id,
                                                   Proposal.kind == "recommendation")
                            .order_by(Proposal.pk.desc()).limit(1))

    def proposals(self, exp_id: str, kind: str | None = None, limit: int = 1000) -> list[Proposal]:
        stmt = select(Proposal).where(Proposal.experiment_id == exp_id)
        if kind:
            stmt = stmt.where(Proposal.kind == kind)
        with self.factory() as s:
            return list(s.scalars(stmt.order_by(Proposal.pk.desc()).limit(limit)))

    def save_fits(self, exp_id: str, fits: Iterable[Fit]) -> None:
        with transaction(self.factory) as s:
            for f in fits:
                f.experiment_id = exp_id
                s.add(f)

    def latest_fits(self, exp_id: str) -> list[Fit]:
        with self.factory() as s:
            version = s.scalar(select(func.max(Fit.data_version)).where(Fit.experiment_id == exp_id))
            if version is None:
                return []
            last_job = s.scalar(select(Fit.job_id).where(Fit.experiment_id == exp_id, Fit.data_version == version)
                                .order_by(Fit.pk.desc()).limit(1))
            return list(s.scalars(select(Fit).where(Fit.experiment_id == exp_id, Fit.data_version == version,
                                                    Fit.job_id == last_job).order_by(Fit.pk)))

    def fit_history(self, exp_id: str, limit: int = 5000) -> list[Fit]:
        with self.factory() as s:
            return list(s.scalars(select(Fit).where(Fit.experiment_id == exp_id).order_by(Fit.pk).limit(limit)))

    # -------------------------------------------------- background work: leases, sweeps, policies, refits
    def lease_job(self, job_id: str, owner: str, lease_s: float, max_attempts: int,
                  project_cap: int = 0, lane_kinds: Sequence[str] = ()) -> tuple[str, float]:
        """Claim the right to run a job: ``("acquired", 0)``, ``("held", seconds to wait)``, ``("finished", 0)``.

        Several deliveries of one job (broker redelivery, a sweep's republish, a retry) race here and only the
        lease holder runs it. A running job that already used ``max_attempts`` starts (its workers kept dying)
        is failed instead, so a task that kills its worker cannot cycle forever. With ``project_cap``, a job
        is also held while that many other jobs of its project with a kind in ``lane_kinds`` hold live
        leases, so one project's flood of jobs cannot occupy every worker.
        """
        now = utcnow()
        with transaction(self.factory) as s:
            job = s.scalar(select(Job).where(Job.id == job_id).with_for_update())
            if job is None or job.state in (JobState.succeeded.value, JobState.failed.value):
                return "finished", 0.0
            if job.lease_owner not in (None, owner) and job.lease_expires_at and job.lease_expires_at > now:
                return "held", (job.lease_expires_at - now).total_seconds()
            if project_cap and job.experiment_id and job.lease_owner != owner:
                project = s.scalar(select(Experiment.project).where(Experiment.id == job.experiment_id))
                serialize(s, f"project-jobs:{project}")
                leased = s.scalar(
                    select(func.count()).select_from(Job)
                    .join(Experiment, Experiment.id == Job.experiment_id)
                    .where(Experiment.project == project, Job.id != job_id, Job.kind.in_(lane_kinds),
                           Job.lease_owner.is_not(None), Job.lease_expires_at > now)) or 0
                if leased >= project_cap:
                    return "held", PROJECT_SLOT_WAIT_S
            if job.state == JobState.running.value and job.attempts >= max_attempts:
                job.state, job.finished_at = JobState.failed.value, now
                job.error = f"gave up after {job.attempts} attempts: the worker running it was lost"
                job.lease_owner = job.lease_expires_at = None
                return "finished", 0.0
            job.lease_owner, job.lease_expires_at = owner, now + timedelta(seconds=lease_s)
            return "acquired", 0.0

    def renew_lease(self, job_id: str, owner: str, lease_s: float) -> bool:
        """Extend a held lease; False when it was lost (another worker took the job over)."""
        with transaction(self.factory) as s:
            res = s.execute(update(Job).where(Job.id == job_id, Job.lease_owner == owner)
                            .values(lease_expires_at=utcnow() + timedelta(seconds=lease_s)))
            return bool(res.rowcount)  # type: ignore[attr-defined]

    def release_lease(self, job_id: str, owner: str) -> None:
        with transaction(self.factory) as s:
            s.execute(update(Job).where(Job.id == job_id, Job.lease_owner == owner)
                      .values(lease_owner=None, lease_expires_at=None))

    def requeue_job(self, job_id: str, note: str) -> None:
        """Put a job that hit a transient error back to ``queued`` for its retry (error kept as a note)."""
        with transaction(self.factory) as s:
            s.execute(update(Job).where(Job.id == job_id, Job.state != JobState.succeeded.value)
                      .values(state=JobState.queued.value, error=note, lease_owner=None,
                              lease_expires_at=None, finished_at=None))

    def mark_published(self, job_id: str, published: bool = True) -> None:
        with transaction(self.factory) as s:
            s.execute(update(Job).where(Job.id == job_id)
                      .values(published_at=utcnow() if published else None))

    def sweep_jobs(self, kinds: Sequence[str], unpublished_grace_s: float, republish_after_s: float,
                   max_attempts: int) -> tuple[list[tuple[str, str]], list[str]]:
        """Recover jobs whose worker died or whose message never reached (or was lost by) the broker.

        Returns ``(to_publish, failed)``: ``(kind, job_id)`` pairs now queued and marked published (the caller
        sends them, and unmarks any it cannot send), and ids failed for running out of attempts. Rows are
        taken with ``SKIP LOCKED`` so overlapping sweeps never handle one job twice.
        """
        now = utcnow()
        active = Job.state.in_([JobState.queued.value, JobState.running.value])
        lapsed = active & Job.lease_owner.is_not(None) & (Job.lease_expires_at < now)
        unsent = (Job.state == JobState.queued.value) & Job.lease_owner.is_(None) & (
            (Job.published_at.is_(None) & (Job.created_at < now - timedelta(seconds=unpublished_grace_s)))
            | (Job.published_at < now - timedelta(seconds=republish_after_s)))
        to_publish: list[tuple[str, str]] = []
        failed: list[str] = []
        with transaction(self.factory) as s:
            jobs = s.scalars(select(Job).where(Job.kind.in_(list(kinds)), lapsed | unsent).order_by(Job.pk)
                             .limit(500).with_for_update(skip_locked=True))
            for job in jobs:
                if job.state == JobState.running.value and job.attempts >= max_attempts:
                    job.state, job.finished_at = JobState.failed.value, now
                    job.error = f"gave up after {job.attempts} attempts: the worker running it was lost"
                    failed.append(job.id)
                else:
                    job.state, job.published_at = JobState.queued.value, now
                    to_publish.append((job.kind, job.id))
                job.lease_owner = job.lease_expires_at = None
        return to_publish, failed

    def abandon_stale_runs(self, heartbeat_timeout_s: float) -> dict[str, int]:
        """Runs ``running`` with no report for ``heartbeat_timeout_s`` become ``abandoned``; counts per exp.

        Abandoned runs leave the pending set, so their points can be suggested again; each affected
        experiment's data version is bumped, as a client's own ``abandoned`` report would.
        """
        now = utcnow()
        cutoff = now - timedelta(seconds=heartbeat_timeout_s)
        with transaction(self.factory) as s:
            stale = s.execute(select(Run.pk, Run.experiment_id)
                              .where(Run.state == RunState.running.value, Run.heartbeat_at < cutoff)
                              .order_by(Run.pk).limit(10_000).with_for_update(skip_locked=True)).all()
            if not stale:
                return {}
            for chunk in _chunks([r.pk for r in stale], 900):
                s.execute(update(Run).where(Run.pk.in_(chunk)).values(
                    state=RunState.abandoned.value, completed_at=now, updated_at=now,
                    error=f"no heartbeat for {heartbeat_timeout_s:g} s; abandoned by the stale-run sweep"))
            counts: dict[str, int] = {}
            for r in stale:
                counts[r.experiment_id] = counts.get(r.experiment_id, 0) + 1
            for exp_id in sorted(counts):
                _bump_version(s, exp_id)
        return counts

    def enqueue_exclusive(self, exp_id: str, kind: str, params: dict[str, Any],
                          exclusive_kinds: Sequence[str],
                          policy_token: tuple[int, str | None, int] | None = None) -> tuple[Job | None, bool]:
        """Create a job unless one of ``exclusive_kinds`` is already queued or running for the experiment.

        Returns ``(job, created)``: the new job, or the active one (``created`` False). With
        ``policy_token = (policy_pk, last_job_id seen, completed runs)`` this is a scheduled refit: it is
        created only if the policy was not acted on since it was read (else ``(None, False)``), and the
        policy records it, so two beat ticks evaluating the same policy enqueue one job.
        """
        with transaction(self.factory) as s:
            # Locking the experiment row serialises enqueues (and reports) of one experiment for a moment.
            s.scalar(select(Experiment.pk).where(Experiment.id == exp_id).with_for_update())
            policy = None
            if policy_token is not None:
                policy = s.scalar(select(ReoptPolicy).where(ReoptPolicy.pk == policy_token[0])
                                  .with_for_update())
                if policy is None or policy.last_job_id != policy_token[1]:
                    return None, False
            active = s.scalar(select(Job).where(Job.experiment_id == exp_id,
                                                Job.kind.in_(list(exclusive_kinds)),
                                                Job.state.in_([JobState.queued.value,
                                                               JobState.running.value]))
                              .order_by(Job.pk).limit(1))
            if active is not None:
                return active, False
            job = Job(id=new_id("job"), kind=kind, experiment_id=exp_id, params=params,
                      state=JobState.queued.value, progress=0.0, attempts=0)
            s.add(job)
            if policy is not None and policy_token is not None:
                policy.last_job_id, policy.last_enqueued_at = job.id, utcnow()
                policy.last_completed = policy_token[2]
            return job, True

    def get_policy(self, exp_id: str) -> ReoptPolicy | None:
        with self.factory() as s:
            return s.scalar(select(ReoptPolicy).where(ReoptPolicy.experiment_id == exp_id))

    def put_policy(self, exp_id: str, values: dict[str, Any]) -> ReoptPolicy:
        """Create or replace the experiment's re-optimization policy (its bookkeeping fields are kept)."""
        with transaction(self.factory) as s:
            s.scalar(select(Experiment.pk).where(Experiment.id == exp_id).with_for_update())
            policy = s.scalar(select(ReoptPolicy).where(ReoptPolicy.experiment_id == exp_id))
            if policy is None:
                policy = ReoptPolicy(experiment_id=exp_id, last_completed=0)
                s.add(policy)
            for key, value in values.items():
                setattr(policy, key, value)
            s.flush()
        return policy

    def policy_states(self) -> list[PolicyState]:
        """Every enabled policy of an active experiment, with the counts its schedule is evaluated on."""
        with self.factory() as s:
            rows = s.execute(select(ReoptPolicy, Experiment.project)
                             .join(Experiment, Experiment.id == ReoptPolicy.experiment_id)
                             .where(ReoptPolicy.enabled.is_(True),
                                    Experiment.state == ExperimentState.active.value)
                             .order_by(ReoptPolicy.pk)).all()
            completed: dict[str, int] = {}
            for chunk in _chunks([p.experiment_id for p, _ in rows], 900):
                counts = s.execute(select(Run.experiment_id, func.count())
                                   .where(Run.experiment_id.in_(chunk), Run.state == RunState.completed.value)
                                   .group_by(Run.experiment_id))
                completed.update((exp_id, int(n)) for exp_id, n in counts)
        return [PolicyState(p, project, completed.get(p.experiment_id, 0)) for p, project in rows]

    def apply_refit(self, exp_id: str, fits: Sequence[Fit], data_version: int, hints: dict[str, Any]) -> bool:
        """Store a refit's fits and hints, unless fits of newer data are already stored (then store nothing).

        The check and the writes share one transaction on the locked experiment row, so a refit overtaken by
        newer data can never land on top of the newer one.
        """
        with transaction(self.factory) as s:
            exp = s.scalar(select(Experiment).where(Experiment.id == exp_id).with_for_update())
            if exp is None:
                raise NotFound(f"experiment {exp_id!r} not found", field="experiment_id")
            newest = s.scalar(select(func.max(Fit.data_version)).where(Fit.experiment_id == exp_id))
            if newest is not None and newest > data_version:
                return False
            for f in fits:
                f.experiment_id, f.data_version = exp_id, data_version
                s.add(f)
            exp.hints = {**(exp.hints or {}), **hints}
        return True

    def recent_fits(self, exp_id: str, limit: int) -> list[Fit]:
        """The newest ``limit`` fits, oldest first."""
        with self.factory() as s:
            rows = list(s.scalars(select(Fit).where(Fit.experiment_id == exp_id)
                                  .order_by(Fit.pk.desc()).limit(limit)))
        return rows[::-1]

    def list_fits(self, exp_id: str, page_size: int, page_token: str | None) -> tuple[list[Fit], str | None]:
        after = decode_page_token(page_token)
        stmt = select(Fit).where(Fit.experiment_id == exp_id)
        if after is not None:
            stmt = stmt.where(Fit.pk > after)
        with self.factory() as s:
            rows = list(s.scalars(stmt.order_by(Fit.pk).limit(page_size + 1)))
        token = encode_page_token(rows[page_size - 1].pk) if len(rows) > page_size else None
        return rows[:page_size], token

    def ready_queue_size(self, exp_id: str, job_kind: str) -> int:
        """Runs that jobs of ``job_kind`` proposed, still ``suggested`` and not yet handed out (the experiment's
        ready queue)."""
        with self.factory() as s:
            return int(s.scalar(select(func.count()).select_from(Run)
                                .join(Proposal, Proposal.id == Run.proposal_id)
                                .join(Job, Job.id == Proposal.job_id)
                                .where(Run.experiment_id == exp_id, Run.state == RunState.suggested.value,
                                       Run.claimed_at.is_(None), Job.kind == job_kind)) or 0)


def _require_active(exp: Experiment) -> None:
    if exp.state != ExperimentState.active.value:
        raise Conflict(f"experiment {exp.id} is {exp.state}; unarchive it to add runs", field="experiment_id",
                       code="experiment_archived")


def _is_deadlock(exc: OperationalError) -> bool:
    """PostgreSQL chose this transaction as a deadlock victim (SQLSTATE 40P01): retrying it succeeds."""
    return getattr(exc.orig, "sqlstate", None) == "40P01"


def _bump_version(s: Session, exp_id: str) -> None:
    s.execute(update(Experiment).where(Experiment.id == exp_id)
              .values(data_version=Experiment.data_version + 1, updated_at=utcnow()))


def _new_run_row(exp_id: str, run_id: str, w: RunWrite, now: datetime) -> dict[str, Any]:
    return {
        "id": run_id, "experiment_id": exp_id, "mixture": w.mixture, "fidelity": w.fidelity or [],
        "state": w.state, "metrics": w.metrics, "cost": w.cost, "method": "external", "prediction": None,
        "client_run_id": w.client_run_id, "proposal_id": None, "error": w.error, "created_at": now,
        "updated_at": now, "heartbeat_at": now, "completed_at": now if w.state in FINAL_STATES else None,
    }


def _any_of(s: Session, column: Any, values: Sequence[str]) -> Iterable[ColumnElement[bool]]:
    """Conditions that together match ``column`` against every value, one query each.

    PostgreSQL gets one array parameter (``= ANY(:values)``): rendering and converting a 10,000-item
    ``IN`` list cost more than running the query. SQLite builds before 3.32 take 999 parameters, so it
    gets ``IN`` lists of 900.
    """
    if s.get_bind().dialect.name == "postgresql":
        if values:
            yield column == any_(bindparam("values", list(values), type_=ARRAY(String)))
        return
    for chunk in _chunks(values, 900):
        yield column.in_(chunk)


def _chunks(items: Sequence[str], size: int) -> Iterable[Sequence[str]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


@dataclass(frozen=True)
class PolicyState:
    """A re-optimization policy with what its schedule is evaluated on."""

    policy: ReoptPolicy
    project: str
    #: Completed runs of the experiment now.
    completed: int
