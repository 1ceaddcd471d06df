"""Shared fixtures: databases (SQLite file, real PostgreSQL), apps and clients.

Services that a test needs but cannot reach make it skip locally and FAIL under CI=true, so CI never
passes by skipping the real-service tests.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from service.api.app import create_app
from service.settings import Settings

IN_CI = os.environ.get("CI", "").lower() == "true"
# Tests run jobs on the API's own threads unless they ask for child processes (tests/workers/
# test_job_processes.py does): a test can then patch what a job calls, and no test pays a child's start-up.
os.environ.setdefault("MIXOPT_JOB_PROCESSES", "false")
PG_ADMIN_URL = os.environ.get("MIXOPT_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
REGMIX_DATA = Path(os.environ.get("MIXOPT_REGMIX_DATA", Path(__file__).resolve().parents[2] / "shared/data/regmix"))


def require(condition: bool, reason: str) -> None:
    """Skip when a real service is missing locally; fail under CI=true."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"required service missing under CI: {reason}")
    pytest.skip(reason)


def _postgres_reachable() -> bool:
    try:
        with sa.create_engine(PG_ADMIN_URL).connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        return True
    except Exception:
        return False


class ScratchDatabases:
    """Creates scratch databases on the real PostgreSQL server (call it for a URL) and drops them.

    Each fixture that makes one drops it when its scope ends, so the drops are spread over the run: left
    to the end of the session, a few hundred ``DROP DATABASE`` on a busy machine outlasted the last test's
    timeout. Whatever is left is dropped when the session ends.
    """

    def __init__(self) -> None:
        self.admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        self.created: list[str] = []

    def __call__(self) -> str:
        require(_postgres_reachable(), f"PostgreSQL not reachable at {PG_ADMIN_URL}")
        name = f"mixopt_test_{uuid.uuid4().hex[:12]}"
        with self.admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        self.created.append(name)
        return PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"

    def drop(self, url: str) -> None:
        self._drop(url.rsplit("/", 1)[1])

    def close(self) -> None:
        for name in list(self.created):
            self._drop(name)
        self.admin.dispose()

    def _drop(self, name: str) -> None:
        with self.admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        self.created.remove(name)


@pytest.fixture(scope="session")
def postgres_db_factory() -> Iterator[ScratchDatabases]:
    scratch = ScratchDatabases()
    yield scratch
    scratch.close()


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/mixopt.db"
        return
    scratch: ScratchDatabases = request.getfixturevalue("postgres_db_factory")
    url = scratch()
    yield url
    scratch.drop(url)


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(database_url=database_url, auto_migrate=True, seed=1234, sync_budget_s=30.0)


@pytest.fixture
def api(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as client:
        yield client


@pytest.fixture
def regmix_dir() -> Path:
    require((REGMIX_DATA / "train_mixture_1m.csv").exists(), f"RegMix data not found at {REGMIX_DATA}")
    return REGMIX_DATA
