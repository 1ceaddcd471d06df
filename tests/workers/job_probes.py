"""Task functions for the job-process tests: module level, so a spawned child imports them by name."""

from __future__ import annotations

import os
import signal

from service.store import Store


def record_pid(store: Store, job_id: str) -> None:
    """Succeed with the id of the process that ran the job."""
    store.start_job(job_id)
    store.finish_job(job_id, {"pid": os.getpid()})


def die(store: Store, job_id: str) -> None:
    """Start the job, then kill the process running it, as the kernel's out-of-memory killer would."""
    store.start_job(job_id)
    os.kill(os.getpid(), signal.SIGKILL)
