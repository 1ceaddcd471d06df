"""Suggestions handed to a named client, and the ready queue served without a model.

A trainer that names itself (``client_id``) gets its pending suggestions back on a repeated request instead
of a second batch; a request that pins nothing takes runs from the ready queue a re-optimization policy
keeps full, atomically, so concurrent trainers never train the same queued run twice.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import numpy as np
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from service.api.app import create_app
from service.api.embedded import embedded_server
from service.operations.kinds import JobKind
from service.operations.refit import top_up_ready_queue
from service.settings import Settings
from service.store import Store
from service.store.models import Job
from tests.service.helpers import DOMAINS, create, seed_runs, spec, synthetic_losses, wait_for_job


def _store(api: TestClient) -> Store:
    return api.app.state.mixopt.store  # type: ignore[attr-defined, no-any-return]


def _propose_jobs(store: Store, exp_id: str) -> int:
    with store.factory() as s:
        return int(s.scalar(select(func.count()).select_from(Job)
                            .where(Job.experiment_id == exp_id, Job.kind == "propose")) or 0)


def _fill_queue(api: TestClient, exp_id: str, n: int) -> list[str]:
    store = _store(api)
    ids = top_up_ready_queue(store, store.get_experiment(exp_id), n, "design", 0, "job_test")
    assert len(ids) == n and store.ready_queue_size(exp_id, JobKind.propose_ready) == n
    return ids


def test_a_named_client_gets_its_pending_suggestions_back(api: TestClient) -> None:
    exp = create(api)
    url = f"/v1/experiments/{exp['id']}/suggestions"
    first = api.post(url, json={"count": 2, "client_id": "worker-1"})
    assert first.status_code == 201
    runs = first.json()["runs"]
    assert [r["client_id"] for r in runs] == ["worker-1"] * 2 and all(r["claimed_at"] for r in runs)
    again = api.post(url, json={"count": 2, "client_id": "worker-1"})
    assert again.status_code == 200 and [r["id"] for r in again.json()["runs"]] == [r["id"] for r in runs]
    other = api.post(url, json={"count": 1, "client_id": "worker-2"}).json()["runs"]
    assert other[0]["id"] not in {r["id"] for r in runs}
    # One run finished: the next request of count 2 returns the other pending run plus one new.
    done = {"id": runs[0]["id"], "metrics": {"loss/web": 3.0, "loss/code": 3.1}, "cost": 1.0}
    assert api.post(f"/v1/experiments/{exp['id']}/runs", json=done).status_code == 200
    more = api.post(url, json={"count": 2, "client_id": "worker-1"})
    assert more.status_code == 201
    ids = [r["id"] for r in more.json()["runs"]]
    assert ids[0] == runs[1]["id"] and ids[1] not in {r["id"] for r in runs + other}
    listed = api.get(f"/v1/experiments/{exp['id']}/runs", params={"state": "suggested"}).json()["runs"]
    assert len(listed) == 3  # worker-1's two pending and worker-2's one: nothing handed out twice


def test_an_unpinned_request_is_served_from_the_ready_queue(api: TestClient) -> None:
    exp = create(api)
    store = _store(api)
    queued = _fill_queue(api, exp["id"], 5)
    jobs_before = _propose_jobs(store, exp["id"])
    url = f"/v1/experiments/{exp['id']}/suggestions"
    taken = api.post(url, json={"count": 3, "client_id": "w"})
    assert taken.status_code == 201
    assert [r["id"] for r in taken.json()["runs"]] == queued[:3]  # oldest first
    assert store.ready_queue_size(exp["id"], JobKind.propose_ready) == 2
    assert _propose_jobs(store, exp["id"]) == jobs_before  # no model ran
    anonymous = api.post(url, json={"count": 2}).json()["runs"]
    assert [r["id"] for r in anonymous] == queued[3:] and anonymous[0]["client_id"] is None
    assert store.ready_queue_size(exp["id"], JobKind.propose_ready) == 0


def test_the_queue_serves_whole_requests_only_and_never_pinned_ones(api: TestClient) -> None:
    exp = create(api)
    store = _store(api)
    queued = _fill_queue(api, exp["id"], 2)
    url = f"/v1/experiments/{exp['id']}/suggestions"
    bigger = api.post(url, json={"count": 3}).json()["runs"]
    assert not {r["id"] for r in bigger} & set(queued)  # computed: the queue had too few
    pinned = api.post(url, json={"count": 1, "method": "design"}).json()["runs"]
    assert pinned[0]["id"] not in queued
    assert store.ready_queue_size(exp["id"], JobKind.propose_ready) == 2


def test_concurrent_claims_never_share_a_queued_run(api: TestClient) -> None:
    exp = create(api)
    seed_runs(api, exp["id"], 3)
    queued = set(_fill_queue(api, exp["id"], 6))
    store = _store(api)

    def claim(i: int) -> list[Any]:
        return [r.id for r in store.claim_ready(exp["id"], JobKind.propose_ready, 1, f"w{i}")]

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(claim, range(8)))
    claimed = [rid for ids in results for rid in ids]
    assert len(claimed) == len(set(claimed)) == 6 and set(claimed) == queued
    assert sorted(len(ids) for ids in results) == [0, 0, 1, 1, 1, 1, 1, 1]


def _seeded_server_experiment(url: str) -> str:
    exp = httpx.post(f"{url}/v1/experiments", json=spec()).json()
    runs = [{"mixture": dict(zip(DOMAINS, w.tolist(), strict=True)), "fidelity": {"params": 1e6},
             "metrics": synthetic_losses(w), "client_run_id": f"r{i}"}
            for i, w in enumerate(np.random.default_rng(0).dirichlet(np.ones(4), 40))]
    assert httpx.post(f"{url}/v1/experiments/{exp['id']}/runs:batch", json={"runs": runs}).status_code == 200
    return str(exp["id"])


def test_simultaneous_requests_of_one_client_share_one_batch(database_url: str) -> None:
    """A retry sent while the first request is still proposing joins its job: one batch, not one per request."""
    # A budget no busy machine exhausts: the answers must come from the jobs, never a 202 for being slow.
    with embedded_server(Settings(database_url=database_url, auto_migrate=True, sync_budget_s=600.0)) as url:
        exp_id = _seeded_server_experiment(url)
        body = {"count": 2, "client_id": "trainer-7", "method": "regmix"}  # a model fit: the request takes time

        def ask(_: int) -> httpx.Response:
            return httpx.post(f"{url}/v1/experiments/{exp_id}/suggestions", json=body, timeout=120)

        with ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(ask, range(4)))
        suggested = httpx.get(f"{url}/v1/experiments/{exp_id}/runs", params={"state": "suggested"}).json()
    assert all(a.status_code in (200, 201) for a in answers), [a.text for a in answers]
    ids = [sorted(r["id"] for r in a.json()["runs"]) for a in answers]
    assert all(i == ids[0] for i in ids) and len(ids[0]) == 2
    assert sorted(r["id"] for r in suggested["runs"]) == ids[0]
    assert sorted(a.status_code for a in answers) == [200, 200, 200, 201]


def test_a_retry_while_the_job_runs_gets_the_same_job_and_then_the_same_runs(settings: Settings) -> None:
    with TestClient(create_app(settings.model_copy(update={"sync_budget_s": 0.0}))) as api:
        exp = create(api)
        seed_runs(api, exp["id"], 40)
        url = f"/v1/experiments/{exp['id']}/suggestions"
        body = {"count": 2, "client_id": "trainer-9", "method": "regmix"}
        first = api.post(url, json=body)
        assert first.status_code == 202
        retry = api.post(url, json=body)
        if retry.status_code == 202:  # the job is still running: the retry was given the same one
            assert retry.json()["job"]["id"] == first.json()["job"]["id"]
        wait_for_job(api, first.json()["job"]["id"])
        final = api.post(url, json=body)
        assert final.status_code == 200 and len(final.json()["runs"]) == 2
        assert retry.status_code == 202 or retry.json()["runs"] == final.json()["runs"]
        assert _propose_jobs(_store(api), exp["id"]) == 1
        suggested = api.get(f"/v1/experiments/{exp['id']}/runs", params={"state": "suggested"}).json()["runs"]
        assert sorted(r["id"] for r in suggested) == sorted(r["id"] for r in final.json()["runs"])


def test_a_larger_request_joining_a_smaller_ones_job_also_gets_what_is_still_missing(database_url: str) -> None:
    # A budget no busy machine exhausts: the answers must come from the jobs, never a 202 for being slow.
    with embedded_server(Settings(database_url=database_url, auto_migrate=True, sync_budget_s=600.0)) as url:
        exp_id = _seeded_server_experiment(url)

        def ask(count: int) -> httpx.Response:
            return httpx.post(f"{url}/v1/experiments/{exp_id}/suggestions",
                              json={"count": count, "client_id": "t", "method": "regmix"}, timeout=120)

        with ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(ask, [2, 2, 3, 2]))
        suggested = httpx.get(f"{url}/v1/experiments/{exp_id}/runs", params={"state": "suggested"}).json()
    assert all(a.status_code in (200, 201) for a in answers), [a.text for a in answers]
    got = [[r["id"] for r in a.json()["runs"]] for a in answers]
    assert [len(ids) for ids in got] == [2, 2, 3, 2] and len(set(got[2])) == 3
    assert all(set(ids) <= set(got[2]) for ids in got)  # one pool of this client's runs, never a second batch
    assert {r["id"] for r in suggested["runs"]} == set(got[2])
