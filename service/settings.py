"""One settings object for the whole service, read from ``MIXOPT_*`` environment variables.

With nothing set, mixopt runs embedded: a SQLite file in the working directory and jobs in-process, so a
laptop needs no other server. Production points ``MIXOPT_DATABASE_URL`` at PostgreSQL and
``MIXOPT_BROKER_URL`` at Redis.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url

from mixing.compute import Compute, Device


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MIXOPT_", extra="ignore")

    database_url: str = Field(
        default="sqlite:///./mixopt.db",
        description="SQLAlchemy URL; sqlite:///path (embedded) or postgresql+psycopg://user@host/db",
    )
    broker_url: str | None = Field(default=None, description="Celery broker (Redis); unset = in-process jobs")
    #: PostgreSQL connections one process keeps open (opened on demand, never more than it uses at once).
    #: The API runs requests in up to 40 threads (anyio's default), each holding a connection while it
    #: talks to the database; a smaller pool overflows, and overflow connections are closed when handed
    #: back, so under load every request would pay a new connection. Size PostgreSQL's max_connections
    #: for (API processes + workers) x this.
    db_pool_size: int = Field(default=40, ge=1)
    # ---- PostgreSQL timeouts (README "Configuration"): past each, a request answers 503 database_unavailable
    #: Opening a PostgreSQL connection (whole seconds; libpq's minimum is 2).
    db_connect_timeout_s: int = Field(default=5, ge=2)
    #: The database's answer to one statement (or one step of it: a batch of rows, a commit). A server that
    #: stopped answering would otherwise hold each request's thread until TCP gives up, minutes later.
    db_statement_timeout_s: float = Field(default=10.0, gt=0)
    #: Waiting for a pooled connection when every one is in use.
    db_pool_timeout_s: float = Field(default=5.0, gt=0)
    #: ``/readyz`` answers 503 when the database has not answered its check within this long.
    readiness_timeout_s: float = Field(default=2.0, gt=0)
    host: str = "127.0.0.1"
    port: int = 8000
    log_level: str = "INFO"
    log_json: bool = Field(default=True, description="structured JSON logs (false: human-readable lines)")
    #: How long a suggestion request waits for its job before answering 202 with the job instead.
    sync_budget_s: float = 8.0
    #: Without a broker: threads for background jobs (refits, re-optimization), threads for suggestions a
    #: caller waits on (never queued behind background jobs), and how many of one project's jobs may run at
    #: once in each (projects are served in turn).
    inprocess_workers: int = Field(default=2, ge=1)
    inprocess_interactive_workers: int = Field(default=1, ge=1)
    inprocess_project_cap: int = Field(default=1, ge=1)
    #: Without a broker, each of those threads runs its jobs in a child process of its own, so a model fit
    #: competes with requests neither for the API's interpreter lock nor for its memory, and a fit killed
    #: for memory fails its job instead of the API. False: on the threads themselves (an in-memory SQLite
    #: database, which a child cannot open, always runs them there).
    job_processes: bool = True
    #: Apply migrations at start-up (always on for SQLite; opt-in for PostgreSQL, where ``mixopt migrate`` is
    #: the expected deploy step).
    auto_migrate: bool = False
    #: Largest ``page_size`` a list endpoint accepts (422 naming ``page_size`` beyond it).
    max_page_size: int = Field(default=1000, ge=1)
    max_batch_runs: int = 10_000
    # ---- request limits, CORS and metrics (README "Limits, rate limiting and CORS")
    #: Largest request body accepted (413 beyond it). A 10,000-run batch (17 domains, 13 metrics, two fidelity
    #: axes, client run ids) measures 12.7 MiB compact and 15.8 MiB indented, so 64 MiB leaves 4x margin.
    max_body_bytes: int = Field(default=64 * 1024 * 1024, gt=0)
    #: Largest body of a request with no authenticated caller (public routes take none; 413 beyond it).
    anonymous_max_body_bytes: int = Field(default=8 * 1024, gt=0)
    #: Sustained requests per second per caller (token id, else client IP), per API process; 0 = no limit.
    rate_limit_per_s: float = Field(default=1000.0, ge=0)
    #: Requests a caller may make at once above the sustained rate (the token bucket's size).
    rate_limit_burst: int = Field(default=2000, ge=1)
    #: Comma-separated origins allowed cross-origin (browser) access; empty = no CORS headers at all.
    cors_origins: str = ""
    #: When set, ``GET /metrics`` requires ``Authorization: Bearer <this>``; unset = public.
    metrics_token: SecretStr | None = None
    candidate_pool_size: int = 100_000
    #: Device for BO's tensors: ``auto`` (CUDA when torch sees a GPU), ``cpu``, or ``cuda`` (a job fails
    #: rather than fall back to the CPU when there is no GPU).
    device: Device = Device.AUTO
    #: Torch CPU threads per BO call (0 = torch's own setting); one by default (see ``mixing.compute``).
    bo_threads: int = Field(default=1, ge=0)
    regmix_data: Path = Field(default=Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "regmix")
    seed: int | None = Field(default=None, description="fixed seed for reproducible suggestions (tests)")
    # ---- background work with a broker (``mixopt worker`` / ``mixopt beat``; see docs/production.md)
    #: Hard limit of one background task; the soft limit, which fails the job cleanly, comes 10% earlier.
    task_time_limit_s: float = 1800.0
    #: A worker holds a job for this long and renews it every third of it; a lapsed lease means it died.
    job_lease_s: float = 60.0
    #: Starts of one job (crashed workers and transient errors included) before it is marked failed.
    job_max_attempts: int = 3
    #: With a broker: how many of one project's jobs may run at once in each lane (suggestions; background
    #: work), across every worker; a further delivery waits for a slot, so one project's flood cannot hold
    #: every worker. 0 = no cap.
    worker_project_cap: int = Field(default=2, ge=0)
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
    # ---- authentication (README "Authentication")
    #: ``auto``: open (no tokens; everyone acts as the default project's admin) when ``host`` is loopback,
    #: tokens required otherwise; ``required``: tokens always; ``off``: never, refused on a non-loopback host.
    auth: Literal["auto", "required", "off"] = "auto"
    #: Validated tokens are cached this long per API process, so a revoked token works at most this long.
    auth_cache_s: float = Field(default=5.0, ge=0)
    #: Failed authentications a client address may make per second, sustained (each costs a token lookup);
    #: beyond them it gets 429 without one.
    auth_failure_rate_per_s: float = Field(default=1.0, gt=0)
    #: Failed authentications a client address may make at once above that rate.
    auth_failure_burst: int = Field(default=30, ge=1)
    #: A token's ``last_used_at`` is written at most this often per process (run reports are a hot path).
    token_touch_interval_s: float = Field(default=60.0, ge=0)
    #: The token the Python client and the CLI commands send when none is given (``MIXOPT_TOKEN``).
    token: SecretStr | None = None

    @property
    def compute(self) -> Compute:
        """Where the search methods' numerical work runs."""
        return Compute(self.device, self.bo_threads)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def in_memory_sqlite(self) -> bool:
        """A private in-memory database, which only the process that opened it can see."""
        return self.is_sqlite and make_url(self.database_url).database in (None, "", ":memory:")

    @property
    def migrates_at_start(self) -> bool:
        """Whether the API (and ``mixopt token``) apply migrations themselves before using the database."""
        return self.is_sqlite or self.auto_migrate

    def auth_enabled(self) -> bool:
        """Whether requests need a token, for the bind address ``host``; refuses ``off`` off loopback."""
        loopback = is_loopback(self.host)
        if self.auth == "off" and not loopback:
            raise InsecureConfigError(
                f"MIXOPT_AUTH=off is only allowed on a loopback address, not {self.host!r}: anyone who can "
                "reach it could read and change every experiment. Bind 127.0.0.1, or create tokens "
                "(mixopt token create) and use MIXOPT_AUTH=auto or required.")
        return self.auth == "required" or (self.auth == "auto" and not loopback)

    @property
    def cors_origin_list(self) -> list[str]:
        return [o.strip() for o in self.cors_origins.split(",") if o.strip()]

    @property
    def gpu_kind_set(self) -> frozenset[str]:
        return frozenset(k.strip() for k in self.gpu_kinds.split(",") if k.strip())

    @property
    def refit_law_list(self) -> list[str] | None:
        return [k.strip() for k in self.refit_laws.split(",") if k.strip()] or None


class InsecureConfigError(ValueError):
    """A configuration that would expose the API without authentication."""


def is_loopback(host: str) -> bool:
    """``localhost``, 127.0.0.0/8 and ::1 (optionally bracketed); anything else, names included, is not."""
    name = host.strip().strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
