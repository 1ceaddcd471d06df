"""Loading an experiment within a session and marking its data changed: what every aggregate's writes share."""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from service.errors import ErrorCode
from service.store.errors import RecordConflict, RecordNotFound
from service.store.models import Experiment, ExperimentState, utcnow


def load_experiment(s: Session, experiment_id: str, project: str) -> Experiment:
    exp = s.scalar(select(Experiment).where(Experiment.id == experiment_id, Experiment.project == project))
    if exp is None:
        raise RecordNotFound(f"experiment {experiment_id!r} not found", field="experiment_id")
    return exp


def require_active(exp: Experiment) -> None:
    if exp.state != ExperimentState.active:
        raise RecordConflict(f"experiment {exp.id} is {exp.state}; unarchive it to add runs",
                             field="experiment_id", code=ErrorCode.experiment_archived)


def bump_version(s: Session, exp_id: str) -> None:
    """A result changed: cached fits and recommendations of the experiment are stale from now on."""
    s.execute(update(Experiment).where(Experiment.id == exp_id)
              .values(data_version=Experiment.data_version + 1, updated_at=utcnow()))
