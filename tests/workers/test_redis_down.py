"""Redis goes down and comes back: reports keep working, suggestions fail fast, refits run once it returns.

Uses a private ``redis-server`` (never the machine's), killed and restarted on the same port.
"""

from __future__ import annotations

import shutil
import time

import pytest

from tests.conftest import require
from tests.service.helpers import create, seed_runs
from tests.workers.conftest import StackFactory
from tests.workers.procs import RedisServer, start_beat, start_worker

pytestmark = [pytest.mark.redis, pytest.mark.postgres]


def test_reports_survive_a_redis_outage_and_jobs_run_when_it_returns(
        make_stack: StackFactory, tmp_path_factory: pytest.TempPathFactory) -> None:
    require(shutil.which("redis-server") is not None, "redis-server is not installed")
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    try:
        with make_stack(server.url, job_lease_s=1.0, beat_interval_s=1.0) as st:
            worker = start_worker(st.env, st.logs / "worker.log")
            beat = start_beat(st.env, st.logs / "beat.log")
            try:
                exp = create(st.client, name="outage")  # type: ignore[arg-type]
                seed_runs(st.client, exp["id"], 20)  # type: ignore[arg-type]

                server.stop()
                seed_runs(st.client, exp["id"], 5, seed=1)  # type: ignore[arg-type]
                got = st.client.get(f"/v1/experiments/{exp['id']}").json()
                assert got["run_counts"]["completed"] == 25
                assert len(st.client.get(f"/v1/experiments/{exp['id']}/runs").json()["runs"]) == 25

                t0 = time.monotonic()
                r = st.client.post(f"/v1/experiments/{exp['id']}/suggestions", json={"count": 2})
                assert r.status_code == 503 and r.json()["error"]["code"] == "broker_unavailable"
                assert time.monotonic() - t0 < 10
                assert st.client.get(f"/v1/experiments/{exp['id']}").json()["run_counts"]["suggested"] == 0

                r = st.client.post(f"/v1/experiments/{exp['id']}/refits", json={})
                assert r.status_code == 202 and r.json()["job"]["state"] == "queued"
                job_id = r.json()["job"]["id"]
                time.sleep(1.5)
                assert st.client.get(f"/v1/jobs/{job_id}").json()["state"] == "queued"

                server.start()
                done = st.wait_job(job_id, timeout=90)
                assert done["state"] == "succeeded" and done["result"]["refit"]["n_runs"] == 25, done
                r = st.client.post(f"/v1/experiments/{exp['id']}/suggestions", json={"count": 2})
                assert r.status_code == 201, r.text
            finally:
                beat.stop()
                worker.stop()
    finally:
        server.stop()
