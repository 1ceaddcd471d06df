"""How the app gets its job backend: handed a dispatcher factory, or the registered one for a broker."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from service.api.app import create_app
from service.composition import DECLARED, GROUP, default_dispatcher, in_process, job_backend
from service.operations.kinds import JobKind
from service.settings import Settings
from service.store import Store

ROOT = Path(__file__).resolve().parents[2]


class Recorder:
    """A dispatcher that runs nothing and says every job is still running."""

    def __init__(self) -> None:
        self.submitted: list[tuple[JobKind, str, str]] = []
        self.closed = False

    def submit(self, kind: JobKind, job_id: str, project: str) -> None:
        self.submitted.append((kind, job_id, project))

    def wait(self, job_id: str, timeout_s: float) -> bool:
        return False

    def close(self) -> None:
        self.closed = True


def test_the_app_runs_jobs_on_the_dispatcher_it_is_handed(tmp_path: Path) -> None:
    recorder = Recorder()
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'db.sqlite'}", auto_migrate=True)
    with TestClient(create_app(settings, lambda store, _: recorder)) as api:
        exp = api.post("/v1/experiments", json={"name": "e", "domains": [{"name": "a"}, {"name": "b"}],
                                                "objective": {"metrics": ["loss"]}}).json()
        answer = api.post(f"/v1/experiments/{exp['id']}/refits")
        assert answer.status_code == 202
    assert recorder.submitted == [(JobKind.refit, answer.json()["job"]["id"], "default")]
    assert recorder.closed


def test_without_a_broker_jobs_run_in_process() -> None:
    assert default_dispatcher(Settings(broker_url=None)) is in_process


def test_the_celery_backend_is_found_without_service_importing_workers() -> None:
    backend = job_backend("celery")
    assert type(backend).__module__ == "workers.backend"
    assert callable(backend.dispatcher) and callable(backend.worker) and callable(backend.beat)


def test_an_unregistered_backend_is_refused() -> None:
    with pytest.raises(ValueError, match="no job backend 'nope'"):
        job_backend("nope")


def test_the_fallback_declares_what_pyproject_registers() -> None:
    """A source tree without installed metadata resolves the same targets an installed one does."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["entry-points"][GROUP] == DECLARED


def test_store_is_what_a_factory_receives(tmp_path: Path) -> None:
    seen: list[object] = []

    def factory(store: Store, settings: Settings) -> Recorder:
        seen.append(store)
        return Recorder()

    app = create_app(Settings(database_url=f"sqlite:///{tmp_path / 'db.sqlite'}", auto_migrate=True), factory)
    assert seen == [app.state.mixopt.store]
