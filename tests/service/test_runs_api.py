"""Run reports: idempotency, state transitions, batch import, filters, and bad input changing nothing."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.service.helpers import create, seed_runs, state_of

GOOD: dict[str, Any] = {"mixture": {"web": 0.4, "code": 0.3, "papers": 0.2, "math": 0.1}, "fidelity": {"params": 1e6},
                        "metrics": {"loss/web": 3.1, "loss/code": 3.3, "loss/other": 4.0}, "cost": 2.5}


def test_report_then_retry_returns_the_same_run(api: TestClient) -> None:
    exp = create(api)
    url = f"/v1/experiments/{exp['id']}/runs"
    r1 = api.post(url, json={**GOOD, "client_run_id": "job-42"})
    assert r1.status_code == 201
    run = r1.json()
    assert run["objective"] == pytest.approx(3.2) and run["state"] == "completed" and run["cost"] == 2.5
    r2 = api.post(url, json={**GOOD, "client_run_id": "job-42"})
    assert r2.status_code == 200 and r2.json()["id"] == run["id"]
    assert state_of(api, exp["id"])[2] == 1
    assert api.get(f"{url}/{run['id']}").json()["metrics"]["loss/other"] == 4.0


def test_running_then_completed_with_same_client_run_id(api: TestClient) -> None:
    exp = create(api)
    url = f"/v1/experiments/{exp['id']}/runs"
    first = api.post(url, json={**GOOD, "metrics": {}, "state": "running", "client_run_id": "j1"})
    assert first.status_code == 201 and first.json()["state"] == "running"
    done = api.post(url, json={**GOOD, "client_run_id": "j1"})
    assert done.status_code == 200 and done.json()["state"] == "completed" and done.json()["id"] == first.json()["id"]
    again = api.post(url, json={**GOOD, "metrics": {"loss/web": 9, "loss/code": 9}, "client_run_id": "j1"})
    assert again.status_code == 409 and again.json()["error"]["code"] == "run_final"
    back = api.post(url, json={**GOOD, "state": "running", "metrics": {}, "client_run_id": "j1"})
    assert back.status_code == 409


def test_report_on_a_suggested_run(api: TestClient) -> None:
    exp = create(api)
    sugg = api.post(f"/v1/experiments/{exp['id']}/suggestions", json={"count": 2}).json()["runs"]
    url = f"/v1/experiments/{exp['id']}/runs"
    r = api.post(url, json={"id": sugg[0]["id"], "state": "running"})
    assert r.status_code == 200 and r.json()["state"] == "running"
    r = api.post(url, json={"id": sugg[0]["id"], "metrics": {"loss/web": 3, "loss/code": 3}, "cost": 1})
    assert r.status_code == 200 and r.json()["state"] == "completed" and r.json()["mixture"] == sugg[0]["mixture"]
    smallest = min(sugg[1]["mixture"], key=sugg[1]["mixture"].get)
    wrong = {k: (1.0 if k == smallest else 0.0) for k in sugg[1]["mixture"]}
    r = api.post(url, json={"id": sugg[1]["id"], "mixture": wrong, "metrics": {"loss/web": 3, "loss/code": 3}})
    assert r.status_code == 409 and r.json()["error"]["field"] == "mixture"
    r = api.post(url, json={"id": "run_missing", "state": "running"})
    assert r.status_code == 404


@pytest.mark.parametrize(("change", "field", "code"), [
    ({"mixture": {"web": 0.5, "code": 0.3, "papers": 0.2, "math": 0.1}}, "mixture", "invalid_mixture"),
    ({"mixture": {"web": 0.6, "code": -0.1, "papers": 0.4, "math": 0.1}}, "mixture.code", "invalid_mixture"),
    ({"mixture": {"web": 0.4, "code": 0.3, "papers": 0.2, "tea": 0.1}}, "mixture.tea", "invalid_mixture"),
    ({"mixture": {"web": 0.5, "code": 0.3, "papers": 0.2}}, "mixture.math", "invalid_mixture"),
    ({"fidelity": {"params": 1e12}}, "fidelity.params", "invalid_fidelity"),
    ({"fidelity": {"tokens": 1}}, "fidelity.tokens", "invalid_fidelity"),
    ({"fidelity": {}}, "fidelity.params", "invalid_fidelity"),
    ({"metrics": {"loss/web": 3.0}}, "metrics.loss/code", "missing_metric"),
    ({"cost": -1}, "cost", "invalid_input"),
    ({"state": "suggested"}, "state", "invalid_input"),
    ({"mixture": {"web": "a lot", "code": 0.3, "papers": 0.2, "math": 0.1}}, "mixture.web", "invalid_input"),
])
def test_bad_reports_are_rejected_and_store_nothing(api: TestClient, change: dict, field: str, code: str) -> None:
    exp = create(api)
    seed_runs(api, exp["id"], 3)
    before = state_of(api, exp["id"])
    r = api.post(f"/v1/experiments/{exp['id']}/runs", json={**GOOD, **change})
    assert r.status_code == 422, r.text
    assert r.json()["error"]["field"] == field and r.json()["error"]["code"] == code, r.json()
    assert state_of(api, exp["id"]) == before


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_metrics_are_rejected(api: TestClient, literal: str) -> None:
    exp = create(api)
    raw = json.dumps({**GOOD, "metrics": {"loss/web": 1.0, "loss/code": 1.0}}).replace("1.0}", f"{literal}}}")
    r = api.post(f"/v1/experiments/{exp['id']}/runs", content=raw, headers={"content-type": "application/json"})
    assert r.status_code == 422 and r.json()["error"]["field"] == "metrics.loss/code"
    assert state_of(api, exp["id"])[2] == 0


def test_batch_import_is_idempotent_and_all_or_nothing(api: TestClient) -> None:
    exp = create(api)
    ids = seed_runs(api, exp["id"], 50)
    assert len(set(ids)) == 50
    again = seed_runs(api, exp["id"], 50)
    assert again == ids and state_of(api, exp["id"])[1]["completed"] == 50
    url = f"/v1/experiments/{exp['id']}/runs:batch"
    bad = [{**GOOD, "client_run_id": f"new-{i}"} for i in range(5)]
    bad[3] = {**bad[3], "mixture": {"web": 2.0, "code": 0.3, "papers": 0.2, "math": 0.1}}
    before = state_of(api, exp["id"])
    r = api.post(url, json={"runs": bad})
    assert r.status_code == 422 and r.json()["error"]["field"] == "runs[3].mixture"
    assert state_of(api, exp["id"]) == before
    dup = [{**GOOD, "client_run_id": "x"}, {**GOOD, "client_run_id": "x"}]
    assert api.post(url, json={"runs": dup}).json()["error"]["code"] == "duplicate_in_batch"


def test_batch_limit(api: TestClient) -> None:
    exp = create(api)
    runs = [{**GOOD, "client_run_id": f"r{i}"} for i in range(10_001)]
    r = api.post(f"/v1/experiments/{exp['id']}/runs:batch", json={"runs": runs})
    assert r.status_code == 422 and r.json()["error"]["field"] == "runs"


def test_batch_of_ten_thousand(api: TestClient) -> None:
    exp = create(api)
    runs = [{**GOOD, "client_run_id": f"r{i}"} for i in range(10_000)]
    r = api.post(f"/v1/experiments/{exp['id']}/runs:batch", json={"runs": runs})
    assert r.status_code == 200 and r.json()["created"] == 10_000
    assert api.get(f"/v1/experiments/{exp['id']}").json()["run_counts"]["completed"] == 10_000


def test_list_filters_and_pages(api: TestClient) -> None:
    exp = create(api)
    seed_runs(api, exp["id"], 12, params=1e6, seed=1)
    seed_runs(api, exp["id"], 5, params=1e8, seed=2)
    api.post(f"/v1/experiments/{exp['id']}/suggestions", json={"count": 2})
    url = f"/v1/experiments/{exp['id']}/runs"
    assert len(api.get(url, params={"state": "suggested"}).json()["runs"]) == 2
    assert len(api.get(url, params={"state": ["suggested", "completed"], "page_size": 100}).json()["runs"]) == 19
    big = api.get(url, params={"fidelity": "params=1e8"}).json()["runs"]
    assert len(big) == 5 and all(r["fidelity"]["params"] == 1e8 for r in big)
    seen, token = [], None
    while True:
        page = api.get(url, params={"page_size": 4, "fidelity": "params=1e6",
                                    **({"page_token": token} if token else {})}).json()
        seen += [r["id"] for r in page["runs"]]
        token = page["next_page_token"]
        if not token:
            break
    assert len(seen) == len(set(seen)) == 14  # 12 seeded + 2 suggested at the default (cheapest) fidelity
    assert api.get(url, params={"fidelity": "params"}).status_code == 422
    assert api.get(url, params={"state": "bogus"}).status_code == 422
