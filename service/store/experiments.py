"""Experiments: their spec, name, state and data version, and the per-state run counts shown with them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from service import validation as v
from service.errors import ErrorCode
from service.spec import parse_spec
from service.store.errors import RecordConflict
from service.store.loading import load_experiment
from service.store.models import Experiment, ExperimentState, Run, new_id
from service.store.paging import page
from service.store.repository import Repository
from service.store.session import transaction
from service.store.transfers import TransferCounts, TransferSource, transfer_into


class SpecPart(Protocol):
    """A section of a spec (budget, search) that renders itself as the JSON stored in the spec."""

    def model_dump(self, *, mode: str) -> dict[str, Any]: ...


class ExperimentDraft(Protocol):
    """A new experiment: its name, metadata, and the rest rendered as the stored spec."""

    @property
    def name(self) -> str: ...
    @property
    def metadata(self) -> Mapping[str, str]: ...
    def model_dump(self, *, mode: str, exclude: set[str]) -> dict[str, Any]: ...


class WarmStartItem(Protocol):
    """One ``warm_start`` source of a new experiment."""

    @property
    def experiment_id(self) -> str: ...
    @property
    def weight(self) -> float: ...


class ExperimentChanges(Protocol):
    """What a patch may change; None leaves a field as it is."""

    @property
    def name(self) -> str | None: ...
    @property
    def state(self) -> str | None: ...
    @property
    def metadata(self) -> Mapping[str, str] | None: ...
    @property
    def budget(self) -> SpecPart | None: ...
    @property
    def search(self) -> SpecPart | None: ...


def _duplicate_name(name: str | None) -> RecordConflict:
    return RecordConflict(f"an experiment named {name!r} already exists", field="name", code=ErrorCode.duplicate_name)


class Experiments(Repository):
    def create_experiment(self, body: ExperimentDraft, project: str = "default") -> Experiment:
        return self.create_warm_started(body, project, ())[0]

    def create_warm_started(self, body: ExperimentDraft, project: str, warm_start: Sequence[WarmStartItem]
                            ) -> tuple[Experiment, list[TransferCounts]]:
        """The new experiment and what each ``warm_start`` source brought in (one transaction: a missing
        source stores nothing)."""
        spec = body.model_dump(mode="json", exclude={"name", "metadata"})
        parsed = parse_spec(spec)
        v.constraints_from_spec(parsed)
        v.check_continual(parsed)
        v.check_outcome_constraints(parsed)
        v.check_level_costs(parsed)
        exp = Experiment(id=new_id("exp"), project=project, name=body.name, spec=spec,
                         metadata_=dict(body.metadata), state=ExperimentState.active.value, data_version=0,
                         hints={})
        try:
            with transaction(self.factory) as s:
                s.add(exp)
                s.flush()
                counts = [transfer_into(s, exp, TransferSource(w.experiment_id, w.weight,
                                                               f"warm_start[{i}].experiment_id"), project)
                          for i, w in enumerate(warm_start)]
        except IntegrityError as exc:
            raise _duplicate_name(body.name) from exc
        return exp, counts

    def get_experiment(self, experiment_id: str, project: str = "default") -> Experiment:
        with self.factory() as s:
            return load_experiment(s, experiment_id, project)

    def list_experiments(self, project: str, page_size: int, page_token: str | None,
                         state: str | None = None, query: str | None = None) -> tuple[list[Experiment], str | None]:
        stmt = select(Experiment).where(Experiment.project == project)
        if state:
            stmt = stmt.where(Experiment.state == state)
        if query:
            stmt = stmt.where(Experiment.name.contains(query, autoescape=True))
        with self.factory() as s:
            return page(s, stmt, Experiment.pk, page_size, page_token)

    def patch_experiment(self, experiment_id: str, patch: ExperimentChanges, project: str = "default"
                         ) -> Experiment:
        try:
            with transaction(self.factory) as s:
                exp = load_experiment(s, experiment_id, project)
                # Lock the row: a concurrent patch or version bump between this read and the write is lost.
                s.refresh(exp, with_for_update=True)
                spec = dict(exp.spec)
                if patch.budget is not None:
                    spec["budget"] = patch.budget.model_dump(mode="json")
                if patch.search is not None:
                    spec["search"] = patch.search.model_dump(mode="json")
                v.constraints_from_spec(parse_spec(spec))
                exp.spec = spec
                if patch.name is not None:
                    exp.name = patch.name
                if patch.state is not None:
                    exp.state = patch.state
                if patch.metadata is not None:
                    exp.metadata_ = dict(patch.metadata)
                if patch.budget is not None:
                    exp.data_version = exp.data_version + 1
                s.flush()
        except IntegrityError as exc:
            raise _duplicate_name(patch.name) from exc
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
