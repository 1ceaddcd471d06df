"""Re-optimization policies: when ``mixopt beat`` refits an experiment, and what it last did."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select

from service.store.models import Experiment, ExperimentState, ReoptPolicy, Run, RunState
from service.store.repository import Repository, chunks
from service.store.session import transaction


@dataclass(frozen=True)
class PolicyState:
    """A re-optimization policy with what its schedule is evaluated on."""

    policy: ReoptPolicy
    project: str
    #: Completed runs of the experiment now.
    completed: int


class Policies(Repository):
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
            for chunk in chunks([p.experiment_id for p, _ in rows], 900):
                counts = s.execute(select(Run.experiment_id, func.count())
                                   .where(Run.experiment_id.in_(chunk), Run.state == RunState.completed.value)
                                   .group_by(Run.experiment_id))
                completed.update((exp_id, int(n)) for exp_id, n in counts)
        return [PolicyState(p, project, completed.get(p.experiment_id, 0)) for p, project in rows]
