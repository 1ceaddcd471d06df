"""Fixtures of the hardening tests: one API per backend shared by a module, API processes on loopback and
private PostgreSQL servers, each torn down even when its test fails."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from fastapi.testclient import TestClient

from service.api.app import create_app
from service.settings import Settings
from tests.conftest import ScratchDatabases, require
from tests.hardening.procs import ApiServer, PrivatePostgres, postgres_bin


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def module_db_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
                  postgres_db_factory: ScratchDatabases) -> Iterator[str]:
    """A database for a whole module: creating an app per test would dominate the run time."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('db')}/mixopt.db"
        return
    url = postgres_db_factory()
    yield url
    postgres_db_factory.drop(url)


@pytest.fixture(scope="module")
def shared_api(module_db_url: str) -> Iterator[TestClient]:
    """One in-process API per backend for the module; tests isolate themselves with their own experiments."""
    with TestClient(create_app(Settings(database_url=module_db_url, auto_migrate=True, seed=1234,
                                        sync_budget_s=30.0))) as client:
        yield client


@pytest.fixture(scope="module")
def api_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., ApiServer]]:
    """Starts ``mixopt serve`` processes on demand; every one is stopped when the module ends."""
    servers: list[ApiServer] = []
    logs = tmp_path_factory.mktemp("api")

    def start(database_url: str, wait: bool = True, **env: str) -> ApiServer:
        """With ``wait=False`` the caller starts several at once and calls ``wait_ready`` on each."""
        server = ApiServer(database_url, logs / f"api-{len(servers)}.log", **env)
        servers.append(server)
        return server.wait_ready() if wait else server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    """A running private PostgreSQL server, destroyed after the test."""
    bindir = postgres_bin()
    require(bindir is not None, "PostgreSQL server binaries (initdb, pg_ctl) are not installed")
    assert bindir is not None
    server = PrivatePostgres(bindir)
    try:
        server.start()
        yield server
    finally:
        server.destroy()
