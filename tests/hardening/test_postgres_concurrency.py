"""Many client processes on one experiment, through two live API processes on one PostgreSQL database.

Checks what a fleet of trainers relies on: a client_run_id reported by several processes at once is one run,
concurrent suggestions never hand out one point twice, concurrent updates of one run or one experiment are
all kept (no lost update), nothing answers 5xx (a deadlock or a serialization failure would be a 503), and a
report whose connection dies mid-request can be retried into exactly one run.
"""

from __future__ import annotations

import multiprocessing
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import numpy as np
import pytest
import sqlalchemy as sa

from migrations import upgrade
from tests.hardening.clients import Outcome, Script, patch_many, post_and_drop, run_script
from tests.hardening.procs import ApiServer
from tests.service.helpers import DOMAINS, spec, synthetic_losses

pytestmark = pytest.mark.postgres

PROCESSES = 6


def _report(i: int) -> dict[str, Any]:
    w = np.random.default_rng(i).dirichlet(np.ones(len(DOMAINS)))
    return {"mixture": dict(zip(DOMAINS, w.tolist(), strict=True)), "fidelity": {"params": 1e6},
            "metrics": synthetic_losses(w), "cost": 1.0, "client_run_id": f"trainer-{i}"}


@pytest.fixture(scope="module")
def servers(postgres_db_factory: Callable[[], str], api_server: Callable[..., ApiServer]) -> list[ApiServer]:
    url = postgres_db_factory()
    upgrade(url)  # here, so the two processes start at once without racing to migrate
    # A generous synchronous budget: a suggestion queued behind the others must answer 201, not 202.
    started = [api_server(url, wait=False, MIXOPT_AUTO_MIGRATE="false", MIXOPT_SYNC_BUDGET_S="120")
               for _ in range(2)]
    return [s.wait_ready() for s in started]


@pytest.fixture(scope="module")
def db(servers: list[ApiServer]) -> Iterator[sa.Engine]:
    engine = sa.create_engine(servers[0].database_url)
    yield engine
    engine.dispose()


def _in_processes(calls: list[tuple[Callable[..., Outcome], tuple[Any, ...]]]) -> list[Outcome]:
    """Run each call in its own spawned OS process (no state inherited from the test) and collect them."""
    with multiprocessing.get_context("spawn").Pool(len(calls)) as pool:
        pending = [pool.apply_async(fn, args) for fn, args in calls]
        outcomes = [p.get(timeout=120) for p in pending]
    errors = [e for o in outcomes for e in o.errors]
    assert not errors, errors[:5]
    return outcomes


def test_reports_and_suggestions_from_many_processes(servers: list[ApiServer], db: sa.Engine) -> None:
    body = spec(name="fleet", search={"initial_runs": 10**5})  # design only: model fits are not the subject
    exp = httpx.post(f"{servers[0].url}/v1/experiments", json=body, timeout=30).json()
    # 60 client_run_ids; process p reports ids 10p .. 10p+19, so each id comes from two processes at once.
    n_ids, start = 60, time.time() + 2
    scripts = [Script(servers[p % 2].url, exp["id"], start, suggestion_requests=4,
                      reports=[_report((10 * p + k) % n_ids) for k in range(20)]) for p in range(PROCESSES)]
    outcomes = _in_processes([(run_script, (s,)) for s in scripts])

    told: dict[str, set[str]] = {}
    for o in outcomes:
        for cid, rid in o.reported.items():
            told.setdefault(cid, set()).add(rid)
    assert len(told) == n_ids and all(len(rids) == 1 for rids in told.values())
    suggested = [rid for o in outcomes for rid, _ in o.suggested]
    assert len(suggested) == len(set(suggested)) == PROCESSES * 4 * 2

    with db.connect() as conn:
        rows = conn.execute(sa.text("SELECT client_run_id, state, mixture FROM runs WHERE experiment_id = :e"
                                    ), {"e": exp["id"]}).all()
        deadlocks = conn.execute(sa.text(
            "SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()")).scalar()
    assert Counter(r.state for r in rows) == {"completed": n_ids, "suggested": len(suggested)}
    assert max(Counter(r.client_run_id for r in rows if r.client_run_id).values()) == 1
    points = [tuple(np.round(r.mixture, 9)) for r in rows]
    assert len(set(points)) == len(points)  # no point suggested twice, none equal to an observed one
    assert deadlocks == 0
    # Each new run bumped the data version once; the 60 repeats changed nothing.
    assert httpx.get(f"{servers[1].url}/v1/experiments/{exp['id']}").json()["data_version"] == n_ids


def test_concurrent_updates_of_one_run_and_one_experiment_are_kept(servers: list[ApiServer],
                                                                    db: sa.Engine) -> None:
    base = f"{servers[0].url}/v1/experiments"
    exp = httpx.post(base, json=spec(name="updates"), timeout=30).json()
    runs = httpx.post(f"{base}/{exp['id']}/suggestions", json={"count": 12, "method": "design"},
                      timeout=60).json()["runs"]
    start = time.time() + 2
    # Every process marks every run running with its own metric; three more processes patch the experiment.
    running = [Script(servers[p % 2].url, exp["id"], start,
                      reports=[{"id": r["id"], "state": "running", "metrics": {f"progress/p{p}": float(p)}}
                               for r in runs]) for p in range(PROCESSES)]
    patches = [[{"budget": {"target_tokens": 1e10 + k}} for k in range(10)],
               [{"search": {"initial_runs": 1000 + k}} for k in range(10)],
               [{"metadata": {"k": str(k)}} for k in range(10)]]
    _in_processes([(run_script, (s,)) for s in running]
                  + [(patch_many, (servers[i % 2].url, exp["id"], start, p)) for i, p in enumerate(patches)])
    # Then two processes each complete every run with the same report (one of the two is a retry).
    done = {"state": "completed", "metrics": {"loss/web": 3.0, "loss/code": 3.1}, "cost": 2.0}
    completing = [Script(servers[p].url, exp["id"], time.time() + 2,
                         reports=[{"id": r["id"], **done} for r in runs]) for p in range(2)]
    _in_processes([(run_script, (s,)) for s in completing])

    got = httpx.get(f"{base}/{exp['id']}").json()
    assert got["budget"]["target_tokens"] == 1e10 + 9 and got["search"]["initial_runs"] == 1009
    assert got["metadata"] == {"k": "9"} and got["run_counts"]["completed"] == 12
    with db.connect() as conn:
        metrics = conn.execute(sa.text("SELECT metrics FROM runs WHERE experiment_id = :e"),
                               {"e": exp["id"]}).scalars().all()
    expected = {**{f"progress/p{p}": float(p) for p in range(PROCESSES)}, **done["metrics"]}
    assert metrics == [expected] * 12
    # 6 running reports and 1 completion per run, plus 10 budget changes; the repeated completion is a no-op.
    assert got["data_version"] == 12 * PROCESSES + 12 + 10


def test_a_report_retried_after_its_connection_died_is_stored_once(servers: list[ApiServer]) -> None:
    base = f"{servers[0].url}/v1/experiments"
    exp = httpx.post(base, json=spec(name="disconnects"), timeout=30).json()
    path = f"/v1/experiments/{exp['id']}/runs"
    with httpx.Client(base_url=servers[0].url, timeout=30) as client:
        for i in range(8):
            body = _report(1000 + i)
            post_and_drop(servers[0].url, path, body, send_whole_body=i % 2 == 0)
            retry = client.post(path, json=body)
            assert retry.status_code in (200, 201), retry.text
            again = client.post(path, json=body)
            assert again.status_code == 200 and again.json()["id"] == retry.json()["id"]
        time.sleep(1.0)  # let any dropped request still in flight finish before counting
        listed = client.get(path, params={"page_size": 100}).json()["runs"]
        assert client.get("/readyz").status_code == 200
    assert sorted(r["client_run_id"] for r in listed) == sorted(f"trainer-{1000 + i}" for i in range(8))
