"""A real stack per test module: scratch PostgreSQL database, a Redis database, ``mixopt worker`` processes
and the API served on a loopback port with the Celery dispatcher.

Redis and PostgreSQL must be reachable; locally a missing one skips, under CI=true it fails.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from migrations import upgrade
from service.api.embedded import embedded_server
from service.db import make_engine, make_session_factory
from service.settings import Settings
from service.store import Store
from tests.conftest import require

REDIS_BASE = os.environ.get("MIXOPT_TEST_REDIS_URL", "redis://127.0.0.1:6379").rstrip("/")
FINAL = ("succeeded", "failed")
#: Laws the test stacks score on refit: cheap ones, so a refit takes about a second on 2 cores.
FAST_LAWS = "regmix_linear,data_mixing_law,bimix"
#: Laws for tests that need a refit to last a few seconds (to act while it runs); those tests recommend
#: with the model-free ``design`` method so that only the refit itself is slow.
SLOW_LAWS = ["regmix_linear", "regmix_lightgbm"]


def redis_db(db: int) -> str:
    """A flushed Redis database on the machine's server (tests own databases 12-15)."""
    url = f"{REDIS_BASE}/{db}"
    try:
        redis.Redis.from_url(url, socket_connect_timeout=2).flushdb()
    except redis.exceptions.ConnectionError:
        require(False, f"Redis not reachable at {REDIS_BASE}")
    return url


@dataclass
class Stack:
    settings: Settings
    env: dict[str, str]
    client: httpx.Client
    store: Store
    logs: Path

    def wait_job(self, job_id: str, timeout: float = 90.0, states: tuple[str, ...] = FINAL) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            job = self.client.get(f"/v1/jobs/{job_id}").json()
            if job["state"] in states:
                return job
            if time.monotonic() > deadline:
                raise TimeoutError(f"job still {job['state']} after {timeout} s: {job}")
            time.sleep(0.05)


def env_for(settings: Settings) -> dict[str, str]:
    """The ``MIXOPT_*`` variables that make worker and beat processes use the test's settings."""
    keys = ("database_url", "broker_url", "job_lease_s", "job_max_attempts", "job_republish_after_s",
            "beat_interval_s", "broker_visibility_timeout_s", "run_heartbeat_timeout_s", "task_time_limit_s",
            "refit_laws")
    env = {f"MIXOPT_{k.upper()}": str(getattr(settings, k)) for k in keys if getattr(settings, k) is not None}
    return {**env, "MIXOPT_LOG_JSON": "false", "MIXOPT_LOG_LEVEL": "INFO"}


StackFactory = Callable[..., AbstractContextManager[Stack]]


@pytest.fixture(scope="module")
def make_stack(postgres_db_factory: Callable[[], str], tmp_path_factory: pytest.TempPathFactory
               ) -> StackFactory:
    @contextmanager
    def make(broker_url: str, **overrides: Any) -> Iterator[Stack]:
        database_url = postgres_db_factory()
        upgrade(database_url)
        settings = Settings(database_url=database_url, broker_url=broker_url, seed=1234, sync_budget_s=30.0,
                            refit_laws=FAST_LAWS, **overrides)
        engine = make_engine(database_url)
        with embedded_server(settings) as url, httpx.Client(base_url=url, timeout=30) as client:
            yield Stack(settings, env_for(settings), client, Store(engine, make_session_factory(engine)),
                        tmp_path_factory.mktemp("stack"))
        engine.dispose()

    return make
