"""Job kinds and the lane each runs in: the names a job row, a Celery task and a dispatcher share."""

from __future__ import annotations

from enum import StrEnum


class JobKind(StrEnum):
    """What a background job computes (``Job.kind``; Celery task ``mixopt.<kind>``)."""

    #: New suggestions for a caller of ``POST /suggestions``, who waits on it.
    propose = "propose"
    #: Suggestions that wait in the ready queue for any trainer (see :mod:`service.operations.refit`).
    propose_ready = "propose_ready"
    refit = "refit"
    #: A refit, then a top-up of the ready queue: what a re-optimization policy schedules.
    reoptimize = "reoptimize"


#: Kinds that refit an experiment; at most one of them is queued or running per experiment.
REFIT_KINDS: tuple[JobKind, ...] = (JobKind.refit, JobKind.reoptimize)


class Lane(StrEnum):
    """Which workers run a job kind: a caller waits on ``interactive`` jobs, nobody waits on the rest."""

    interactive = "interactive"
    background = "background"


LANES: dict[JobKind, Lane] = {JobKind.propose: Lane.interactive, JobKind.propose_ready: Lane.background,
                              JobKind.refit: Lane.background, JobKind.reoptimize: Lane.background}
#: The job kinds of each lane (a Celery worker's project cap counts the jobs of one lane).
LANE_KINDS: dict[Lane, tuple[JobKind, ...]] = {lane: tuple(k for k, of in LANES.items() if of is lane) for lane in Lane}
