"""Without a broker, jobs run in child processes of the API (the embedded default), on SQLite and PostgreSQL."""

from __future__ import annotations

import fcntl
import multiprocessing
import os
from collections.abc import Iterator
from multiprocessing.synchronize import Event

import pytest
from fastapi.testclient import TestClient

from service.api.app import create_app
from service.api.deps import AppState
from service.db import make_engine
from service.locks import experiment_lock, lock_file
from service.operations.inprocess import InProcessDispatcher
from service.settings import Settings
from service.store import Store
from tests.service.helpers import create, seed_runs, wait_for_job
from tests.workers import job_probes
from tests.workers.conftest import FAST_LAWS


@pytest.fixture
def process_settings(database_url: str) -> Settings:
    return Settings(database_url=database_url, auto_migrate=True, seed=1234, sync_budget_s=60.0,
                    job_processes=True)


@pytest.fixture
def process_api(process_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(process_settings)) as client:
        yield client


def _store(api: TestClient) -> Store:
    state = api.app.state.mixopt  # type: ignore[attr-defined]
    assert isinstance(state, AppState)
    return state.store


def test_a_job_runs_in_a_child_process_and_a_killed_child_fails_only_its_job(process_api: TestClient,
                                                                             process_settings: Settings) -> None:
    store = _store(process_api)
    exp = create(process_api)
    tasks = {"refit": job_probes.record_pid, "reoptimize": job_probes.die}
    dispatcher = InProcessDispatcher(store, workers=1, tasks=tasks, processes=process_settings)
    try:
        first = store.create_job("refit", exp["id"], {})
        dispatcher.submit("refit", first.id, "default")
        assert dispatcher.wait(first.id, 600)
        ran = store.get_job(first.id)
        assert ran.state == "succeeded" and ran.result is not None
        assert ran.result["pid"] != os.getpid()

        killed = store.create_job("reoptimize", exp["id"], {})
        dispatcher.submit("reoptimize", killed.id, "default")
        assert dispatcher.wait(killed.id, 600)
        lost = store.get_job(killed.id)
        assert lost.state == "failed" and "died" in (lost.error or "")

        after = store.create_job("refit", exp["id"], {})
        dispatcher.submit("refit", after.id, "default")
        assert dispatcher.wait(after.id, 600)
        again = store.get_job(after.id)
        assert again.state == "succeeded" and again.result is not None
        assert again.result["pid"] not in (os.getpid(), ran.result["pid"])  # a new child replaced the dead one
    finally:
        dispatcher.close()


def test_refits_and_suggestions_through_the_api_run_in_child_processes(process_api: TestClient) -> None:
    exp = create(process_api)
    seed_runs(process_api, exp["id"], 30)
    refit = process_api.post(f"/v1/experiments/{exp['id']}/refits", json={"laws": FAST_LAWS.split(",")})
    job = wait_for_job(process_api, refit.json()["job"]["id"])
    assert job["state"] == "succeeded" and job["result"]["refit"]["status"] == "applied", job
    fits = process_api.get(f"/v1/experiments/{exp['id']}/fits").json()["fits"]
    assert {f["law"] for f in fits} == set(job["result"]["refit"]["laws"])
    asked = process_api.post(f"/v1/experiments/{exp['id']}/suggestions", json={"count": 3})
    if asked.status_code == 202:  # the child was still starting when the request's budget ran out
        assert wait_for_job(process_api, asked.json()["job"]["id"])["state"] == "succeeded"
        suggested = process_api.get(f"/v1/experiments/{exp['id']}/runs", params={"state": "suggested"})
        assert len(suggested.json()["runs"]) == 3
    else:
        assert asked.status_code == 201 and len(asked.json()["runs"]) == 3, asked.text


def _hold(database_url: str, experiment_id: str, held: Event, release: Event) -> None:
    engine = make_engine(database_url)
    with experiment_lock(engine, experiment_id):
        held.set()
        release.wait()


def test_the_experiment_lock_on_a_sqlite_file_excludes_other_processes(tmp_path: os.PathLike[str]) -> None:
    url = f"sqlite:///{tmp_path}/locks.db"
    engine = make_engine(url)
    path = lock_file(engine, "propose:exp_1")
    assert path is not None
    ctx = multiprocessing.get_context("spawn")
    held, release = ctx.Event(), ctx.Event()
    holder = ctx.Process(target=_hold, args=(url, "exp_1", held, release))
    holder.start()
    try:
        assert held.wait(600)
        with path.open("a") as probe:
            with pytest.raises(BlockingIOError):
                fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
            release.set()
            holder.join()
            fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)  # free once the other process let go
            fcntl.flock(probe, fcntl.LOCK_UN)
    finally:
        release.set()
        holder.join()
    with experiment_lock(engine, "exp_1"):  # and this process takes it as usual
        pass
