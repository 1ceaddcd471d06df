"""The Celery beat schedule: every ``beat_interval_s``, the policy tick and the stale-work sweep.

``mixopt beat`` is only a clock: it sends the two tasks, and whichever worker takes them does the
database work (:func:`service.operations.reoptimize.tick`, :func:`workers.stale.sweep`).
"""

from __future__ import annotations

from typing import Any

from service.settings import Settings

#: Celery task names of the two periodic tasks (registered in ``workers.celery_app``).
POLICIES_TASK = "mixopt.policies"
SWEEP_TASK = "mixopt.sweep"


def schedule(settings: Settings) -> dict[str, dict[str, Any]]:
    """Celery's ``beat_schedule``: both tasks every ``beat_interval_s``, dropped if not run by the next tick
    (a backlog of ticks while workers are down would only repeat the same work)."""
    every = float(settings.beat_interval_s)
    return {name: {"task": name, "schedule": every, "options": {"expires": every}}
            for name in (POLICIES_TASK, SWEEP_TASK)}
