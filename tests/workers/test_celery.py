"""End to end with real ``mixopt worker`` / ``mixopt beat`` processes, Redis and PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest
from sqlalchemy import func, select

from service.store.models import Fit, Job, Proposal
from tests.service.helpers import DOMAINS, create, seed_runs, synthetic_losses
from tests.workers.conftest import FINAL, SLOW_LAWS, Stack, StackFactory, redis_db
from tests.workers.procs import start_beat, start_worker

pytestmark = [pytest.mark.redis, pytest.mark.postgres]


@pytest.fixture(scope="module")
def stack(make_stack: StackFactory) -> Iterator[Stack]:
    with make_stack(redis_db(15), job_lease_s=3.0, beat_interval_s=1.0) as st:
        worker = start_worker(st.env, st.logs / "worker.log")
        try:
            yield st
        finally:
            worker.stop()


def _refit(st: Stack, exp_id: str, **body: Any) -> dict[str, Any]:
    r = st.client.post(f"/v1/experiments/{exp_id}/refits", json=body)
    assert r.status_code == 202, r.text
    return r.json()["job"]  # type: ignore[no-any-return]


def _count(st: Stack, stmt: Any) -> int:
    with st.store.factory() as s:
        return int(s.scalar(stmt) or 0)


def test_suggestions_and_refits_run_on_the_worker(stack: Stack) -> None:
    st = stack
    exp = create(st.client, name="to-completion")  # type: ignore[arg-type]
    r = st.client.post(f"/v1/experiments/{exp['id']}/suggestions", json={"count": 3})
    assert r.status_code == 201, r.text
    assert len(r.json()["runs"]) == 3
    seed_runs(st.client, exp["id"], 40)  # type: ignore[arg-type]

    job = st.wait_job(_refit(st, exp["id"])["id"])
    assert job["state"] == "succeeded", job
    assert job["progress"] == 1.0 and job["result"]["refit"]["status"] == "applied"
    fits = st.client.get(f"/v1/experiments/{exp['id']}/fits", params={"latest": True}).json()["fits"]
    assert len(fits) >= 1 and sum(f["selected"] for f in fits) == 1
    assert all(f["n_runs"] == 40 and f["job_id"] == job["id"] for f in fits)

    again = st.wait_job(_refit(st, exp["id"])["id"])
    assert again["result"]["refit"]["status"] == "up_to_date"
    forced = st.wait_job(_refit(st, exp["id"], force=True)["id"])
    assert forced["result"]["refit"]["status"] == "applied"

    history = st.client.get(f"/v1/experiments/{exp['id']}/history").json()
    assert [h["job_id"] for h in history["refits"]] == [job["id"], forced["id"]]
    first = history["refits"][0]
    assert first["selected_law"] == next(f["law"] for f in fits if f["selected"])
    assert first["recommendation"] is not None and first["recommendation"]["n_runs"] == 40
    version = st.client.get(f"/v1/experiments/{exp['id']}").json()["data_version"]
    assert history["recommendations"][-1]["data_version"] == version


def test_reports_during_a_refit_are_all_kept(stack: Stack) -> None:
    st = stack
    exp = create(st.client, name="busy")  # type: ignore[arg-type]
    seed_runs(st.client, exp["id"], 200)  # type: ignore[arg-type]
    before = st.client.get(f"/v1/experiments/{exp['id']}").json()
    slow = _refit(st, exp["id"], laws=SLOW_LAWS, method="design")
    job = st.wait_job(slow["id"], states=("running", *FINAL))
    assert job["state"] == "running", "the refit must still be running when the reports start"

    rng = np.random.default_rng(11)
    weights = rng.dirichlet(np.ones(len(DOMAINS)), size=50)

    def report(i: int) -> int:
        body = {"mixture": dict(zip(DOMAINS, weights[i].tolist(), strict=True)), "fidelity": {"params": 1e6},
                "metrics": synthetic_losses(weights[i]), "client_run_id": f"during-{i}"}
        return st.client.post(f"/v1/experiments/{exp['id']}/runs", json=body).status_code

    with ThreadPoolExecutor(50) as pool:
        codes = list(pool.map(report, range(50)))
    assert codes == [201] * 50
    after = st.client.get(f"/v1/experiments/{exp['id']}").json()
    assert after["run_counts"]["completed"] == 250
    assert after["data_version"] == before["data_version"] + 50
    listed = st.client.get(f"/v1/experiments/{exp['id']}/runs", params={"page_size": 1000}).json()["runs"]
    assert {r["client_run_id"] for r in listed} >= {f"during-{i}" for i in range(50)}

    assert st.wait_job(job["id"])["state"] == "succeeded"
    follow_up = st.wait_job(_refit(st, exp["id"])["id"])
    assert follow_up["result"]["refit"]["status"] == "applied"
    assert follow_up["result"]["refit"]["n_runs"] == 250


def test_beat_refits_on_policy_once_per_trigger(stack: Stack) -> None:
    st = stack
    exp = create(st.client, name="scheduled")  # type: ignore[arg-type]
    r = st.client.put(f"/v1/experiments/{exp['id']}/reoptimization",
                      json={"every_runs": 10, "ready_suggestions": 2})
    assert r.status_code == 200, r.text
    jobs_of_exp = select(func.count()).select_from(Job).where(Job.experiment_id == exp["id"],
                                                              Job.kind == "reoptimize")
    beat = start_beat(st.env, st.logs / "beat.log")
    try:
        seed_runs(st.client, exp["id"], 12)  # type: ignore[arg-type]
        first = _policy_job(st, exp["id"], None)
        assert st.wait_job(first)["state"] == "succeeded"
        time.sleep(3.5)  # several more ticks, no new runs
        assert _count(st, jobs_of_exp) == 1
        suggested = st.client.get(f"/v1/experiments/{exp['id']}/runs", params={"state": "suggested"}).json()
        assert len(suggested["runs"]) == 2

        seed_runs(st.client, exp["id"], 10, seed=1)  # type: ignore[arg-type]
        second = _policy_job(st, exp["id"], first)
        result = st.wait_job(second)
        assert result["state"] == "succeeded" and result["result"]["ready_run_ids"] == []
        time.sleep(2.5)
        assert _count(st, jobs_of_exp) == 2
        refits = select(func.count(func.distinct(Fit.job_id))).where(Fit.experiment_id == exp["id"])
        assert _count(st, refits) == 2
    finally:
        beat.stop()


def _policy_job(st: Stack, exp_id: str, previous: str | None, timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job_id = st.client.get(f"/v1/experiments/{exp_id}/reoptimization").json()["last_job_id"]
        if job_id not in (None, previous):
            return str(job_id)
        time.sleep(0.1)
    raise TimeoutError("beat did not schedule a refit")


def test_a_job_whose_worker_is_killed_completes_exactly_once(make_stack: StackFactory) -> None:
    with make_stack(redis_db(14), job_lease_s=2.0, beat_interval_s=1.0) as st:
        exp = create(st.client, name="crash")  # type: ignore[arg-type]
        seed_runs(st.client, exp["id"], 300)  # type: ignore[arg-type]
        first = start_worker(st.env, st.logs / "first.log")
        job_id = _refit(st, exp["id"], laws=SLOW_LAWS, method="design")["id"]
        job = st.wait_job(job_id, states=("running", *FINAL), timeout=60)
        first.kill()
        assert job["state"] == "running"
        fits_of_job = select(func.count()).select_from(Fit).where(Fit.job_id == job_id)
        time.sleep(0.5)
        assert st.client.get(f"/v1/jobs/{job_id}").json()["state"] == "running"
        assert _count(st, fits_of_job) == 0

        second = start_worker(st.env, st.logs / "second.log")
        beat = start_beat(st.env, st.logs / "beat.log")
        try:
            done = st.wait_job(job_id, timeout=120)
        finally:
            beat.stop()
            second.stop()
        assert done["state"] == "succeeded", done
        assert st.store.get_job(job_id).attempts == 2
        laws = done["result"]["refit"]["laws"]
        assert _count(st, fits_of_job) == len(laws) == len(set(laws))
        recs = select(func.count()).select_from(Proposal).where(Proposal.job_id == job_id)
        assert _count(st, recs) == 1
