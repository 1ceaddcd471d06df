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

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
