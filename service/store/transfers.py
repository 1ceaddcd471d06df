"""Warm starts: completed runs of earlier experiments of the same project, brought into an experiment.

They live in their own table (:class:`~service.store.models.TransferredRun`), so every path that counts
or serves an experiment's own runs stays as it is; the fitting snapshot (:meth:`Runs.snapshot`) is the one
reader that sees them, as :class:`mixing.transfer.Transfers`.

Matching: domains by name, a domain the source lacks at zero share; a run that puts weight on a domain this
experiment lacks is not brought in (counted as ``domain_not_in_target``): its outcome depends on data this
experiment cannot choose. Fidelities are kept as the source measured them. Transferring the same source
again adds no row; it only sets the weight.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from mixing.transfer import Transfers
from service.errors import ErrorCode
from service.schemas import MAX_METRIC
from service.spec import ExperimentSpec, spec_of
from service.store.errors import InvalidRecord, RecordNotFound
from service.store.loading import bump_version, load_experiment, require_active
from service.store.models import Experiment, Run, RunState, TransferredRun, TransferTask, new_id, utcnow
from service.store.paging import page
from service.store.repository import Repository
from service.store.session import transaction
from service.validation import metric_weights

#: INSERT statements with ``ON CONFLICT``, per dialect.
_DIALECT_INSERT: dict[str, Callable[..., Any]] = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}
#: A share below this on a domain the target lacks counts as none (mixtures are stored rounded).
ZERO_SHARE = 1e-9


@dataclass(frozen=True)
class TransferSource:
    """One ``warm_start`` item: the source experiment, its weight, and the request field to blame."""

    experiment_id: str
    weight: float
    field: str


@dataclass(frozen=True)
class TransferCounts:
    source_experiment_id: str
    weight: float
    transferred: int
    already_transferred: int
    domain_not_in_target: int
    no_objective: int


def _loss(spec: ExperimentSpec, metrics: dict[str, Any]) -> float | None:
    """``spec``'s objective of ``metrics``, lower is better; None without all its metrics or if not finite."""
    names = spec.objective.metrics
    if not all(k in metrics and isinstance(metrics[k], int | float) for k in names):
        return None
    value = float(np.dot(metric_weights(spec.objective), [float(metrics[k]) for k in names]))
    value = value if spec.objective.goal == "minimize" else -value
    return value if math.isfinite(value) else None


def transfer_into(s: Session, target: Experiment, source: TransferSource, project: str) -> TransferCounts:
    """Bring ``source``'s completed runs into ``target`` inside ``s``'s transaction (see module docstring)."""
    if source.experiment_id == target.id:
        raise InvalidRecord("an experiment cannot warm-start from itself", field=source.field,
                            code=ErrorCode.invalid_input)
    try:
        src = load_experiment(s, source.experiment_id, project)
    except RecordNotFound as exc:
        raise RecordNotFound(f"source experiment {source.experiment_id!r} not found in this project",
                             field=source.field) from exc
    t_spec, s_spec = spec_of(target), spec_of(src)
    t_domains = {name: i for i, name in enumerate(t_spec.domain_names)}
    s_index = [t_domains.get(name) for name in s_spec.domain_names]
    axes = s_spec.axis_names
    have = set(s.scalars(select(TransferredRun.source_run_id).where(
        TransferredRun.experiment_id == target.id, TransferredRun.source_experiment_id == src.id)))
    rows = s.execute(select(Run.id, Run.mixture, Run.fidelity, Run.metrics, Run.cost)
                     .where(Run.experiment_id == src.id, Run.state == RunState.completed.value)
                     .order_by(Run.pk)).all()
    added: list[dict[str, Any]] = []
    again = foreign = no_objective = 0
    for r in rows:
        if r.id in have:
            again += 1
            continue
        mixture = [0.0] * len(t_domains)
        outside = 0.0
        for i, w in zip(s_index, r.mixture, strict=True):
            if i is None:
                outside += abs(float(w))
            else:
                mixture[i] = float(w)
        if outside > ZERO_SHARE:
            foreign += 1
            continue
        task, loss = TransferTask.target_objective, _loss(t_spec, r.metrics)
        if loss is None:
            task, loss = TransferTask.source_objective, _loss(s_spec, r.metrics)
        if loss is None:
            no_objective += 1
            continue
        added.append(dict(
            id=new_id("xrun"), experiment_id=target.id, source_experiment_id=src.id, source_run_id=r.id,
            weight=source.weight, task=task.value, mixture=mixture,
            fidelity=dict(zip(axes, (float(x) for x in r.fidelity), strict=False)), metrics=dict(r.metrics),
            loss=loss, cost=r.cost if r.cost is not None and math.isfinite(r.cost) else None, created_at=utcnow()))
    written = 0
    if added:
        # A concurrent transfer of the same source may have committed since ``have`` was read (SQLite
        # takes no row lock): its rows are skipped here, not a failure.
        insert = _DIALECT_INSERT[s.get_bind().dialect.name](TransferredRun).on_conflict_do_nothing(
            index_elements=["experiment_id", "source_run_id"]).returning(TransferredRun.source_run_id)
        written = len(s.execute(insert, added).all())
        again += len(added) - written
    reweighted = (TransferredRun.experiment_id == target.id, TransferredRun.source_experiment_id == src.id,
                  TransferredRun.weight != source.weight)
    changed = s.scalar(select(func.count()).select_from(TransferredRun).where(*reweighted)) or 0
    if changed:
        s.execute(update(TransferredRun).where(*reweighted).values(weight=source.weight))
    if written or changed:
        bump_version(s, target.id)
    return TransferCounts(src.id, source.weight, written, again, foreign, no_objective)


def transfers_of(s: Session, exp: Experiment) -> Transfers | None:
    """``exp``'s transferred runs as arrays for the methods (None when it has none).

    Each (source experiment, task, fidelity) is its own related task -- one source index -- since a model
    must not assume that the source's runs at two scales, or of two objectives, share one offset.
    """
    rows = s.execute(select(TransferredRun.source_experiment_id, TransferredRun.task, TransferredRun.fidelity,
                            TransferredRun.mixture, TransferredRun.loss, TransferredRun.weight)
                     .where(TransferredRun.experiment_id == exp.id).order_by(TransferredRun.pk)).all()
    rows = [r for r in rows if math.isfinite(r.loss) and abs(r.loss) <= MAX_METRIC]
    if not rows:
        return None
    tasks: dict[tuple[Any, ...], int] = {}
    sources = [tasks.setdefault((r.source_experiment_id, r.task, tuple(sorted(r.fidelity.items()))), len(tasks))
               for r in rows]
    return Transfers(
        mixtures=np.array([r.mixture for r in rows], dtype=np.float64),
        losses=np.array([r.loss for r in rows], dtype=np.float64),
        sources=np.array(sources, dtype=np.intp),
        weights=np.array([r.weight for r in rows], dtype=np.float64),
    )


class WarmStarts(Repository):
    def add_transfers(self, experiment_id: str, sources: Sequence[TransferSource], project: str
                      ) -> list[TransferCounts]:
        """Bring every source's completed runs into the experiment, all or nothing."""
        with transaction(self.factory) as s:
            exp = load_experiment(s, experiment_id, project)
            s.refresh(exp, with_for_update=True)  # two transfers of one source at once: one adds the rows
            require_active(exp)
            return [transfer_into(s, exp, src, project) for src in sources]

    def list_transferred_runs(self, exp: Experiment, page_size: int, page_token: str | None,
                              source_experiment_id: str | None = None) -> tuple[list[TransferredRun], str | None]:
        """A page of the runs brought into ``exp``, optionally from one source only."""
        stmt = select(TransferredRun).where(TransferredRun.experiment_id == exp.id)
        if source_experiment_id is not None:
            stmt = stmt.where(TransferredRun.source_experiment_id == source_experiment_id)
        with self.factory() as s:
            return page(s, stmt, TransferredRun.pk, page_size, page_token)

    def transferred_counts(self, experiment_ids: Sequence[str]) -> dict[str, int]:
        """Runs brought into each experiment (0 for none)."""
        out = dict.fromkeys(experiment_ids, 0)
        if not experiment_ids:
            return out
        with self.factory() as s:
            for exp_id, n in s.execute(select(TransferredRun.experiment_id, func.count())
                                       .where(TransferredRun.experiment_id.in_(experiment_ids))
                                       .group_by(TransferredRun.experiment_id)):
                out[exp_id] = n
        return out
