"""Runs as the service hands them out and reads them back: suggestions, the ready queue, pages of runs,
the data snapshot fits are computed from, and the sweep of runs whose trainer went silent."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import numpy as np
from sqlalchemy import func, select, update

from mixing.problem import Observations, same_fidelity
from mixing.transfer import Transfers
from service.spec import spec_of
from service.store.errors import RecordNotFound
from service.store.loading import bump_version, load_experiment
from service.store.models import (
    PENDING_STATES,
    Experiment,
    Job,
    Proposal,
    ProposalKind,
    Run,
    RunState,
    new_id,
    utcnow,
)
from service.store.paging import page
from service.store.repository import Repository, chunks
from service.store.session import transaction
from service.store.transfers import transfers_of


@dataclass(frozen=True)
class Snapshot:
    """An experiment's data as arrays, with the rows they came from."""

    observations: Observations
    completed_ids: list[str]
    data_version: int
    #: Runs brought in from other experiments (warm start); never among ``observations``.
    transfers: Transfers | None = None


class Runs(Repository):
    def get_run(self, experiment_id: str, run_id: str, project: str = "default") -> Run:
        with self.factory() as s:
            load_experiment(s, experiment_id, project)
            run = s.scalar(select(Run).where(Run.id == run_id, Run.experiment_id == experiment_id))
        if run is None:
            raise RecordNotFound(f"run {run_id!r} not found", field="run_id")
        return run

    def run_by_key(self, experiment_id: str, key: str) -> Run | None:
        """The experiment's run whose id or ``client_run_id`` is ``key`` (the id first); None if none is."""
        with self.factory() as s:
            for column in (Run.id, Run.client_run_id):
                run = s.scalar(select(Run).where(Run.experiment_id == experiment_id, column == key))
                if run is not None:
                    return run
        return None

    def list_runs(self, exp: Experiment, page_size: int, page_token: str | None,
                  states: Sequence[str] = (), fidelity: list[float] | None = None) -> tuple[list[Run], str | None]:
        """A page of the experiment's runs, optionally only those in ``states`` and at ``fidelity``."""
        stmt = select(Run).where(Run.experiment_id == exp.id)
        if states:
            stmt = stmt.where(Run.state.in_(list(states)))
        with self.factory() as s:
            if fidelity is None:
                return page(s, stmt, Run.pk, page_size, page_token)
            # Fidelity is stored as JSON: filtered in Python.
            return page(s, stmt, Run.pk, page_size, page_token,
                        keep=lambda run: bool(same_fidelity(run.fidelity, fidelity)))

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
                prop = Proposal(id=new_id("prop"), experiment_id=exp_id, job_id=job_id,
                                kind=ProposalKind.suggestion.value, method=method,
                                data_version=proposal["data_version"], n_runs=proposal["n_runs"],
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

    def ready_queue_size(self, exp_id: str, job_kind: str) -> int:
        """Runs that jobs of ``job_kind`` proposed, still ``suggested`` and not yet handed out (the experiment's
        ready queue)."""
        with self.factory() as s:
            return int(s.scalar(select(func.count()).select_from(Run)
                                .join(Proposal, Proposal.id == Run.proposal_id)
                                .join(Job, Job.id == Proposal.job_id)
                                .where(Run.experiment_id == exp_id, Run.state == RunState.suggested.value,
                                       Run.claimed_at.is_(None), Job.kind == job_kind)) or 0)

    def snapshot(self, exp: Experiment) -> Snapshot:
        """Completed runs with every metric models fit (:attr:`ExperimentSpec.model_metrics`), plus pending
        points, as arrays."""
        spec = spec_of(exp)
        metrics = spec.model_metrics
        d, m = len(spec.domains), len(spec.fidelities)
        with self.factory() as s:
            version = s.scalar(select(Experiment.data_version).where(Experiment.id == exp.id)) or 0
            rows = s.execute(select(Run.id, Run.mixture, Run.fidelity, Run.metrics, Run.cost, Run.state)
                             .where(Run.experiment_id == exp.id,
                                    Run.state.in_([RunState.completed.value, *[p.value for p in PENDING_STATES]]))
                             .order_by(Run.pk)).all()
            transfers = transfers_of(s, exp)
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
        return Snapshot(obs, [r.id for r in done], version, transfers)

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
            for chunk in chunks([r.pk for r in stale], 900):
                s.execute(update(Run).where(Run.pk.in_(chunk)).values(
                    state=RunState.abandoned.value, completed_at=now, updated_at=now,
                    error=f"no heartbeat for {heartbeat_timeout_s:g} s; abandoned by the stale-run sweep"))
            counts: dict[str, int] = {}
            for r in stale:
                counts[r.experiment_id] = counts.get(r.experiment_id, 0) + 1
            for exp_id in sorted(counts):
                bump_version(s, exp_id)
        return counts
