"""SQLAlchemy 2 models: the persistent record of experiments, runs, jobs, fits and proposals.

Every table has an integer ``pk`` (insertion order, used for keyset pagination and cheap joins) and a
public string ``id`` that the API exposes. Mixtures and fidelities are stored as JSON lists aligned with
the experiment's domain and axis order: compact, and immune to a domain being renamed in a payload.
"""

from __future__ import annotations

import enum
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

#: JSON as text on every backend (PostgreSQL ``json``, not ``jsonb``): a value reads back exactly as it was
#: written. ``jsonb`` stores numbers as ``numeric``, which has no -0.0 and writes 1e20 as the integer
#: 100000000000000000000, so a float came back as 0.0 or an int. Stored values are never queried by
#: content (filters on mixtures and fidelities run in Python), so nothing needs jsonb's operators; the one
#: update that merges JSON in SQL (a pending run's metrics) uses the ``json || json`` operator that
#: migration 0006 defines.
JsonType = JSON()


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores them naive, so tag them on the way out)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JsonType, list[Any]: JsonType}


class ExperimentState(enum.StrEnum):
    active = "active"
    archived = "archived"


class RunState(enum.StrEnum):
    suggested = "suggested"
    running = "running"
    completed = "completed"
    failed = "failed"
    abandoned = "abandoned"


PENDING_STATES = (RunState.suggested, RunState.running)
FINAL_STATES = (RunState.completed, RunState.failed, RunState.abandoned)


class ProposalKind(enum.StrEnum):
    suggestion = "suggestion"
    recommendation = "recommendation"


class JobState(enum.StrEnum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"


#: The project that existing experiments, the open (no-auth) mode and the CLI default belong to.
DEFAULT_PROJECT = "default"


class Project(Base):
    """A tenant: tokens and experiments belong to one, and a token sees only its own project's experiments."""

    __tablename__ = "projects"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(64), unique=True, default=lambda: new_id("prj"))
    name: Mapped[str] = mapped_column(String(128), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ApiToken(Base):
    """An API token: only its secret's SHA-256 is stored; ``prefix`` finds the row and is safe to show."""

    __tablename__ = "api_tokens"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(64), unique=True, default=lambda: new_id("tok"))
    project: Mapped[str] = mapped_column(ForeignKey("projects.name", name="fk_api_tokens_project"),
                                         index=True)
    name: Mapped[str] = mapped_column(String(200))
    scopes: Mapped[list[Any]] = mapped_column(JsonType)
    prefix: Mapped[str] = mapped_column(String(32), unique=True)
    secret_sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: Written at most once per ``token_touch_interval_s`` per process, so it is approximate by that much.
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class Experiment(Base):
    __tablename__ = "experiments"
    __table_args__ = (UniqueConstraint("project", "name", name="uq_experiments_project_name"),)

    pk: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(64), unique=True, default=lambda: new_id("exp"))
    project: Mapped[str] = mapped_column(ForeignKey("projects.name", name="fk_experiments_project"),
                                         default=DEFAULT_PROJECT, index=True)
    name: Mapped[str] = mapped_column(String(200))
    state: Mapped[str] = mapped_column(String(16), default=ExperimentState.active.value)
    spec: Mapped[dict[str, Any]] = mapped_column(JsonType)
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JsonType, default=dict)
    #: Bumped whenever a result changes, so cached fits and recommendations know they are stale.
    data_version: Mapped[int] = mapped_column(Integer, default=0)
    #: State carried between fits (selected law, GP hyperparameters for warm starts).
    hints: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


_WAITING = text(f"state = '{RunState.suggested.value}' AND claimed_at IS NULL")


class Run(Base):
    __tablename__ = "runs"
    __table_args__ = (
        UniqueConstraint("experiment_id", "client_run_id", name="uq_runs_experiment_client_run_id"),
        Index("ix_runs_experiment_state", "experiment_id", "state"),
        Index("ix_runs_experiment_pk", "experiment_id", "pk"),
        Index("ix_runs_experiment_client_id", "experiment_id", "client_id", "pk"),
        # The ready queue's waiting runs (Runs.claim_ready).
        Index("ix_runs_waiting", "experiment_id", "pk", postgresql_where=_WAITING, sqlite_where=_WAITING),
    )

    pk: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(64), unique=True, default=lambda: new_id("run"))
    experiment_id: Mapped[str] = mapped_column(ForeignKey("experiments.id", ondelete="CASCADE"))
    mixture: Mapped[list[Any]] = mapped_column(JsonType)
    fidelity: Mapped[list[Any]] = mapped_column(JsonType, default=list)
    state: Mapped[str] = mapped_column(String(16))
    metrics: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    cost: Mapped[float | None] = mapped_column(Float, nullable=True)
    method: Mapped[str | None] = mapped_column(String(64), nullable=True)
    prediction: Mapped[dict[str, Any] | None] = mapped_column(JsonType, nullable=True)
    client_run_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    proposal_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    #: The client (``client_id`` of ``POST /suggestions``) a suggestion was handed to, if it named one.
    client_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    #: When a suggestion was handed out; None for a ready-queue run still waiting for a taker.
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class Job(Base):
    __tablename__ = "jobs"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(64), unique=True, default=lambda: new_id("job"))
    kind: Mapped[str] = mapped_column(String(32))
    experiment_id: Mapped[str | None] = mapped_column(
        ForeignKey("experiments.id", ondelete="CASCADE"), nullable=True, index=True
    )
    state: Mapped[str] = mapped_column(String(16), default=JobState.queued.value)
    params: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    result: Mapped[dict[str, Any] | None] = mapped_column(JsonType, nullable=True)
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    #: Set when the job's message reached the broker; a queued job without it was never sent.
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    #: The worker executing the job and until when; a lapsed lease on a running job means the worker died.
    lease_owner: Mapped[str | None] = mapped_column(String(200), nullable=True)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class CandidatePool(Base):
    """A caller's candidate pool, stored once per experiment and content; propose jobs name it by hash.

    A 200,000-candidate pool was about 18 MB of JSON in each job's parameters, stored again with every
    request and parsed into lists of Python floats by the worker. Here it is stored once, as little-endian
    float64 arrays that load without a copy: ``mixtures`` (rows x domains, spec order), ``fidelities``
    (rows x axes; 0.0 where the method chooses) and ``chosen`` (one byte per fidelity cell: 1 where the
    method chooses the value, so no NaN is stored).
    """

    __tablename__ = "candidate_pools"
    __table_args__ = (UniqueConstraint("experiment_id", "sha256", name="uq_candidate_pools_experiment_sha256"),)

    pk: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(64), unique=True, default=lambda: new_id("pool"))
    experiment_id: Mapped[str] = mapped_column(ForeignKey("experiments.id", ondelete="CASCADE"))
    #: SHA-256 (hex) of the shape and the three arrays.
    sha256: Mapped[str] = mapped_column(String(64))
    n_rows: Mapped[int] = mapped_column(Integer)
    mixtures: Mapped[bytes] = mapped_column(LargeBinary)
    fidelities: Mapped[bytes] = mapped_column(LargeBinary)
    chosen: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Fit(Base):
    """One law fitted on one snapshot of an experiment's data, with its measured fidelity."""

    __tablename__ = "fits"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(64), unique=True, default=lambda: new_id("fit"))
    experiment_id: Mapped[str] = mapped_column(ForeignKey("experiments.id", ondelete="CASCADE"), index=True)
    job_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    law: Mapped[str] = mapped_column(String(64))
    selected: Mapped[bool] = mapped_column(default=False)
    n_runs: Mapped[int] = mapped_column(Integer)
    data_version: Mapped[int] = mapped_column(Integer)
    scores: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    params: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    duration_s: Mapped[float] = mapped_column(Float, default=0.0)
    device: Mapped[str] = mapped_column(String(32), default="cpu")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class FittedModel(Base):
    """A search method's fitted model (pickled), kept so ``POST /predict`` answers without fitting again.

    ``key`` digests what the fit depended on besides the runs (method, fidelity, seed, the hints it read);
    ``data_version`` says which runs. See :mod:`service.store.fitted_models` for when a stored model is served.
    """

    __tablename__ = "fitted_models"
    #: Derived from the runs and never carried in a bundle: a pickle from a file is not to be loaded.
    __table_args__ = (UniqueConstraint("experiment_id", "key", name="uq_fitted_model_key"), {"info": {"derived": True}})

    pk: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    experiment_id: Mapped[str] = mapped_column(ForeignKey("experiments.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(64))
    method: Mapped[str] = mapped_column(String(64))
    data_version: Mapped[int] = mapped_column(Integer)
    n_runs: Mapped[int] = mapped_column(Integer)
    model: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Proposal(Base):
    """A batch of suggestions or a recommendation, as produced by one method on one data snapshot."""

    __tablename__ = "proposals"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(64), unique=True, default=lambda: new_id("prop"))
    experiment_id: Mapped[str] = mapped_column(ForeignKey("experiments.id", ondelete="CASCADE"), index=True)
    job_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    kind: Mapped[str] = mapped_column(String(16))  # a ProposalKind
    method: Mapped[str] = mapped_column(String(64))
    data_version: Mapped[int] = mapped_column(Integer)
    n_runs: Mapped[int] = mapped_column(Integer)
    payload: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ReoptPolicy(Base):
    """When ``mixopt beat`` refits an experiment: after N new completed runs and/or every T minutes."""

    __tablename__ = "reopt_policies"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    experiment_id: Mapped[str] = mapped_column(ForeignKey("experiments.id", ondelete="CASCADE"), unique=True)
    enabled: Mapped[bool] = mapped_column(default=True)
    every_runs: Mapped[int | None] = mapped_column(Integer, nullable=True)
    every_minutes: Mapped[float | None] = mapped_column(Float, nullable=True)
    #: Suggested runs to keep waiting for trainers after each re-optimization.
    ready_suggestions: Mapped[int] = mapped_column(Integer, default=0)
    method: Mapped[str] = mapped_column(String(64), default="auto")
    #: Completed runs counted when the last scheduled refit was enqueued (the ``every_runs`` baseline).
    last_completed: Mapped[int] = mapped_column(Integer, default=0)
    last_enqueued_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_job_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


#: The sweeps of stale work scan these across all experiments.
Index("ix_runs_state_heartbeat", Run.state, Run.heartbeat_at)
Index("ix_jobs_state", Job.state)


class OnlineSession(Base):
    """One training run steered online (DoReMi, Aioli, baselines); ``state`` is the algorithm's own JSON."""

    __tablename__ = "online_sessions"
    __table_args__ = (UniqueConstraint("experiment_id", "client_session_id", name="uq_online_client_session"),)

    pk: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(64), unique=True, default=lambda: new_id("ses"))
    experiment_id: Mapped[str] = mapped_column(ForeignKey("experiments.id", ondelete="CASCADE"), index=True)
    client_session_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    method: Mapped[str] = mapped_column(String(32))
    hyperparameters: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    state: Mapped[dict[str, Any]] = mapped_column(JsonType)
    last_step: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class OnlineObservation(Base):
    """One posted loss vector and the directive it produced: the session's trajectory, step by step."""

    __tablename__ = "online_observations"
    __table_args__ = (UniqueConstraint("session_id", "step", name="uq_online_observation_step"),)

    pk: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    session_id: Mapped[str] = mapped_column(ForeignKey("online_sessions.id", ondelete="CASCADE"))
    step: Mapped[int] = mapped_column(Integer)
    split: Mapped[str] = mapped_column(String(16), default="train")
    losses: Mapped[list[Any]] = mapped_column(JsonType)
    directive: Mapped[dict[str, Any]] = mapped_column(JsonType)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class TransferredRun(Base):
    """A completed run of another experiment brought into this one (warm start), kept apart from its own runs.

    Apart so that nothing counted as the experiment's own (run counts, best observed, the trials history,
    exports of its runs, the report fast paths) can include one by mistake; only the fitting snapshot reads
    them. ``mixture`` is in this experiment's domain order (domains it lacks at zero share), ``fidelity``
    the source run's own axes by name (kept as measured), ``metrics`` the source run's. ``loss`` is the
    related task's value, lower is better: this experiment's objective when the run has all its metrics
    (``task`` = ``target_objective``), else the source experiment's own objective (``source_objective``).
    """

    __tablename__ = "transferred_runs"
    __table_args__ = (UniqueConstraint("experiment_id", "source_run_id", name="uq_transferred_runs_source_run"),
                      Index("ix_transferred_runs_experiment_pk", "experiment_id", "pk"))

    pk: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(64), unique=True, default=lambda: new_id("xrun"))
    experiment_id: Mapped[str] = mapped_column(ForeignKey("experiments.id", ondelete="CASCADE"))
    source_experiment_id: Mapped[str] = mapped_column(String(64))
    source_run_id: Mapped[str] = mapped_column(String(64))
    #: The request's weight (> 0): how strongly the source is trusted before this experiment's runs speak.
    weight: Mapped[float] = mapped_column(Float)
    task: Mapped[str] = mapped_column(String(32))  # a TransferTask
    mixture: Mapped[list[Any]] = mapped_column(JsonType)
    fidelity: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    metrics: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    loss: Mapped[float] = mapped_column(Float)
    cost: Mapped[float | None] = mapped_column(Float, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class TransferTask(enum.StrEnum):
    """Which objective a transferred run's ``loss`` is (see :class:`TransferredRun`)."""

    target_objective = "target_objective"
    source_objective = "source_objective"
