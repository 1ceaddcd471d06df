"""Background jobs and their queue: creation (exclusive per experiment), leases that let one worker run a
job however often it is delivered, and the sweep that recovers jobs whose worker or message was lost."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select, update

from service.locks import serialize
from service.store.errors import RecordNotFound
from service.store.models import Experiment, Job, JobState, ReoptPolicy, new_id, utcnow
from service.store.repository import Repository
from service.store.session import transaction

#: How long a delivery held back by its project's cap waits before asking for a slot again.
PROJECT_SLOT_WAIT_S = 1.0
#: The states of a job a worker may still pick up or is running.
ACTIVE_JOB_STATES = (JobState.queued.value, JobState.running.value)


class LeaseOutcome(enum.StrEnum):
    """What :meth:`Jobs.lease_job` found."""

    acquired = "acquired"
    held = "held"
    finished = "finished"


def _gave_up(job: Job) -> str:
    return f"gave up after {job.attempts} attempts: the worker running it was lost"


class Jobs(Repository):
    def create_job(self, kind: str, experiment_id: str | None, params: dict[str, Any]) -> Job:
        job = Job(id=new_id("job"), kind=kind, experiment_id=experiment_id, params=params,
                  state=JobState.queued.value, progress=0.0, attempts=0)
        with transaction(self.factory) as s:
            s.add(job)
        return job

    def get_job(self, job_id: str, project: str | None = None) -> Job:
        """A job by id; with ``project``, only a job of one of that project's experiments."""
        stmt = select(Job).where(Job.id == job_id)
        if project is not None:
            stmt = stmt.join(Experiment, Experiment.id == Job.experiment_id).where(Experiment.project == project)
        with self.factory() as s:
            job = s.scalar(stmt)
        if job is None:
            raise RecordNotFound(f"job {job_id!r} not found", field="job_id")
        return job

    def inflight_propose_job(self, exp_id: str, client_id: str) -> Job | None:
        """The oldest propose job still queued or running for ``client_id``, if any.

        Few propose jobs are in flight per experiment at once, so the ``client_id`` inside the JSON params
        is matched here rather than by an index.
        """
        with self.factory() as s:
            jobs = s.scalars(select(Job).where(Job.experiment_id == exp_id, Job.kind == "propose",
                                               Job.state.in_(ACTIVE_JOB_STATES))
                             .order_by(Job.pk))
            return next((j for j in jobs if (j.params or {}).get("client_id") == client_id), None)

    def start_job(self, job_id: str) -> Job | None:
        """Mark a queued (or retried) job running; None when it already finished (a duplicate delivery)."""
        with transaction(self.factory) as s:
            job = s.scalar(select(Job).where(Job.id == job_id).with_for_update())
            if job is None or job.state == JobState.succeeded:
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
                finished_at=utcnow()))

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
                                                Job.state.in_(ACTIVE_JOB_STATES))
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

    # ------------------------------------------------------------------------ leases, retries, sweeps
    def lease_job(self, job_id: str, owner: str, lease_s: float, max_attempts: int,
                  project_cap: int = 0, lane_kinds: Sequence[str] = ()) -> tuple[LeaseOutcome, float]:
        """Claim the right to run a job: ``(acquired, 0)``, ``(held, seconds to wait)`` or ``(finished, 0)``.

        Several deliveries of one job (broker redelivery, a sweep's republish, a retry) race here and only the
        lease holder runs it. A running job that already used ``max_attempts`` starts (its workers kept dying)
        is failed instead, so a task that kills its worker cannot cycle forever. With ``project_cap``, a job
        is also held while that many other jobs of its project with a kind in ``lane_kinds`` hold live
        leases, so one project's flood of jobs cannot occupy every worker.
        """
        now = utcnow()
        with transaction(self.factory) as s:
            job = s.scalar(select(Job).where(Job.id == job_id).with_for_update())
            if job is None or job.state in (JobState.succeeded, JobState.failed):
                return LeaseOutcome.finished, 0.0
            if job.lease_owner not in (None, owner) and job.lease_expires_at and job.lease_expires_at > now:
                return LeaseOutcome.held, (job.lease_expires_at - now).total_seconds()
            if project_cap and job.experiment_id and job.lease_owner != owner:
                project = s.scalar(select(Experiment.project).where(Experiment.id == job.experiment_id))
                serialize(s, f"project-jobs:{project}")
                leased = s.scalar(
                    select(func.count()).select_from(Job)
                    .join(Experiment, Experiment.id == Job.experiment_id)
                    .where(Experiment.project == project, Job.id != job_id, Job.kind.in_(lane_kinds),
                           Job.lease_owner.is_not(None), Job.lease_expires_at > now)) or 0
                if leased >= project_cap:
                    return LeaseOutcome.held, PROJECT_SLOT_WAIT_S
            if job.state == JobState.running and job.attempts >= max_attempts:
                job.state, job.finished_at, job.error = JobState.failed.value, now, _gave_up(job)
                job.lease_owner = job.lease_expires_at = None
                return LeaseOutcome.finished, 0.0
            job.lease_owner, job.lease_expires_at = owner, now + timedelta(seconds=lease_s)
            return LeaseOutcome.acquired, 0.0

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
        lapsed = Job.state.in_(ACTIVE_JOB_STATES) & Job.lease_owner.is_not(None) & (Job.lease_expires_at < now)
        unsent = (Job.state == JobState.queued.value) & Job.lease_owner.is_(None) & (
            (Job.published_at.is_(None) & (Job.created_at < now - timedelta(seconds=unpublished_grace_s)))
            | (Job.published_at < now - timedelta(seconds=republish_after_s)))
        to_publish: list[tuple[str, str]] = []
        failed: list[str] = []
        with transaction(self.factory) as s:
            jobs = s.scalars(select(Job).where(Job.kind.in_(list(kinds)), lapsed | unsent).order_by(Job.pk)
                             .limit(500).with_for_update(skip_locked=True))
            for job in jobs:
                if job.state == JobState.running and job.attempts >= max_attempts:
                    job.state, job.finished_at, job.error = JobState.failed.value, now, _gave_up(job)
                    failed.append(job.id)
                else:
                    job.state, job.published_at = JobState.queued.value, now
                    to_publish.append((job.kind, job.id))
                job.lease_owner = job.lease_expires_at = None
        return to_publish, failed
