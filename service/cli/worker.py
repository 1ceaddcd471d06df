"""``mixopt worker`` and ``mixopt beat``: the Celery worker and scheduler, without Docker."""

from __future__ import annotations

import os

import click

from service.settings import get_settings


def _require_broker() -> None:
    if not get_settings().broker_url:
        raise click.ClickException("MIXOPT_BROKER_URL is not set (e.g. redis://127.0.0.1:6379/0); without a "
                                   "broker, `mixopt serve` runs jobs in-process and needs no worker")


@click.command()
@click.option("--queues", "-Q", default="interactive,default", show_default=True,
              help="comma-separated queues to serve: interactive (suggestions callers wait on), default, gpu "
                   "(GPU jobs are routed by MIXOPT_GPU_KINDS)")
@click.option("--concurrency", "-c", type=int, default=None, help="worker processes (default: CPU count)")
@click.option("--pool", type=click.Choice(["prefork", "solo", "threads"]), default="prefork",
              show_default=True, help="execution pool; time limits need prefork")
@click.option("--hostname", "-n", default=None, help="node name (default: mixopt-<pid>@<host>)")
@click.option("--loglevel", "-l", default=None, help="log level (default: MIXOPT_LOG_LEVEL)")
def worker(queues: str, concurrency: int | None, pool: str, hostname: str | None,
           loglevel: str | None) -> None:
    """Run a worker for background jobs: refits, re-optimization, suggestions (needs MIXOPT_BROKER_URL).

    Run one per machine (or several); a GPU machine runs `mixopt worker --queues gpu`.
    """
    _require_broker()
    from service.composition import job_backend

    argv = ["--queues", queues, "--pool", pool, "--loglevel", loglevel or get_settings().log_level,
            "--hostname", hostname or f"mixopt-{os.getpid()}@%h", "--without-gossip", "--without-mingle"]
    if concurrency:
        argv += ["--concurrency", str(concurrency)]
    job_backend().worker(argv)


@click.command()
@click.option("--loglevel", "-l", default=None, help="log level (default: MIXOPT_LOG_LEVEL)")
def beat(loglevel: str | None) -> None:
    """Run the scheduler: re-optimization policies and the stale-work sweep every MIXOPT_BEAT_INTERVAL_S.

    Run exactly one; a second one is harmless (the database deduplicates) but useless. It keeps no state
    on disk: the schedule is fixed and the policies live in the database.
    """
    _require_broker()
    from service.composition import job_backend

    job_backend().beat(["--loglevel", loglevel or get_settings().log_level, "--scheduler", "celery.beat:Scheduler"])
