"""One settings object for the whole service, read from ``MIXOPT_*`` environment variables.

With nothing set, mixopt runs embedded: a SQLite file in the working directory and jobs in-process, so a
laptop needs no other server. Production points ``MIXOPT_DATABASE_URL`` at PostgreSQL and
``MIXOPT_BROKER_URL`` at Redis.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MIXOPT_", extra="ignore")

    database_url: str = Field(
        default="sqlite:///./mixopt.db",
        description="SQLAlchemy URL; sqlite:///path (embedded) or postgresql+psycopg://user@host/db",
    )
    broker_url: str | None = Field(default=None, description="Celery broker (Redis); unset = in-process jobs")
    host: str = "127.0.0.1"
    port: int = 8000
    log_level: str = "INFO"
    log_json: bool = Field(default=True, description="structured JSON logs (false: human-readable lines)")
    #: How long a suggestion request waits for its job before answering 202 with the job instead.
    sync_budget_s: float = 8.0
    #: Worker threads for in-process jobs (the embedded default).
    inprocess_workers: int = 2
    #: Apply migrations at start-up (always on for SQLite; opt-in for PostgreSQL, where ``mixopt migrate`` is
    #: the expected deploy step).
    auto_migrate: bool = False
    max_page_size: int = 1000
    max_batch_runs: int = 10_000
    candidate_pool_size: int = 100_000
    regmix_data: Path = Field(default=Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "regmix")
    seed: int | None = Field(default=None, description="fixed seed for reproducible suggestions (tests)")
    # ---- background work with a broker (``mixopt worker`` / ``mixopt beat``; see docs/production.md)
    #: Hard limit of one background task; the soft limit, which fails the job cleanly, comes 10% earlier.
    task_time_limit_s: float = 1800.0
    #: A worker holds a job for this long and renews it every third of it; a lapsed lease means it died.
    job_lease_s: float = 60.0
    #: Starts of one job (crashed workers and transient errors included) before it is marked failed.
    job_max_attempts: int = 3
    #: A queued job not started this long after it was published is published again (its message was lost).
    job_republish_after_s: float = 900.0
    #: A ``running`` run with no report for this long becomes ``abandoned``, so its point is free again.
    run_heartbeat_timeout_s: float = 7200.0
    #: How often ``mixopt beat`` evaluates re-optimization policies and sweeps stale work.
    beat_interval_s: float = 30.0
    #: Job kinds sent to the ``gpu`` queue (comma-separated, e.g. ``propose,refit,reoptimize``); empty means
    #: every job goes to the ``default`` queue, so a deployment without a GPU worker never strands one.
    gpu_kinds: str = ""
    #: Laws a refit scores (comma-separated registry names); empty = every registered law. Fewer laws make
    #: refits faster, at the cost of never considering the others.
    refit_laws: str = ""
    #: Redis redelivers an unacknowledged task after this long; unset = task time limit plus 5 minutes.
    broker_visibility_timeout_s: float | None = None

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def gpu_kind_set(self) -> frozenset[str]:
        return frozenset(k.strip() for k in self.gpu_kinds.split(",") if k.strip())

    @property
    def refit_law_list(self) -> list[str] | None:
        return [k.strip() for k in self.refit_laws.split(",") if k.strip()] or None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
