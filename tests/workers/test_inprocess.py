"""Without a broker the API runs the same refit and re-optimize functions in-process (SQLite, PostgreSQL)."""

from __future__ import annotations

from fastapi.testclient import TestClient

from service.api.deps import AppState
from service.operations import refit
from tests.service.helpers import create, seed_runs, wait_for_job
from tests.workers.conftest import FAST_LAWS

LAWS = FAST_LAWS.split(",")


def test_refit_stores_fits_history_and_recommendation(api: TestClient) -> None:
    exp = create(api)
    seed_runs(api, exp["id"], 30)
    r = api.post(f"/v1/experiments/{exp['id']}/refits", json={"laws": LAWS})
    assert r.status_code == 202 and r.json()["job"]["kind"] == "refit"
    job = wait_for_job(api, r.json()["job"]["id"])
    assert job["state"] == "succeeded", job
    outcome = job["result"]["refit"]
    assert outcome["status"] == "applied" and outcome["n_runs"] == 30
    assert set(LAWS) <= set(outcome["laws"])

    fits = api.get(f"/v1/experiments/{exp['id']}/fits").json()["fits"]
    assert {f["law"] for f in fits} == set(outcome["laws"])
    chosen = [f for f in fits if f["selected"]]
    assert len(chosen) == 1 and chosen[0]["law"] == outcome["selected_law"]
    scored = [f for f in fits if not f["scores"].get("skipped")]
    assert scored and all("spearman" in f["scores"]["cv"]["from_metrics"] for f in scored)
    assert all(f["n_runs"] == 30 and f["data_version"] == outcome["data_version"] for f in fits)

    history = api.get(f"/v1/experiments/{exp['id']}/history").json()
    assert len(history["refits"]) == 1 and history["refits"][0]["selected_law"] == outcome["selected_law"]
    rec = history["refits"][0]["recommendation"]
    assert rec is not None and set(rec["mixture"]) == {"web", "code", "papers", "math"}
    served = api.get(f"/v1/experiments/{exp['id']}/recommendation").json()
    assert served["data_version"] == rec["data_version"] and served["mixture"] == rec["mixture"]

    seed_runs(api, exp["id"], 5, seed=3)
    posted = api.post(f"/v1/experiments/{exp['id']}/refits", json={"laws": LAWS})
    second = wait_for_job(api, posted.json()["job"]["id"])
    assert second["result"]["refit"]["n_runs"] == 35
    history = api.get(f"/v1/experiments/{exp['id']}/history").json()
    assert [h["n_runs"] for h in history["refits"]] == [30, 35]
    assert [p["n_runs"] for p in history["recommendations"]][-2:] == [30, 35]
    latest = api.get(f"/v1/experiments/{exp['id']}/fits", params={"latest": True}).json()["fits"]
    assert {f["n_runs"] for f in latest} == {35}


def test_refit_with_too_few_runs_reports_it(api: TestClient) -> None:
    exp = create(api)
    seed_runs(api, exp["id"], 2)
    job = wait_for_job(api, api.post(f"/v1/experiments/{exp['id']}/refits", json={"laws": LAWS}).json()["job"]["id"])
    assert job["state"] == "succeeded" and job["result"]["refit"]["status"] == "not_enough_data"
    assert api.get(f"/v1/experiments/{exp['id']}/fits").json()["fits"] == []


def test_reoptimize_keeps_the_ready_queue_full(api: TestClient) -> None:
    exp = create(api, search={"initial_runs": 10})
    seed_runs(api, exp["id"], 25)
    store = api.app.state.mixopt.store  # type: ignore[attr-defined]
    assert isinstance(api.app.state.mixopt, AppState)  # type: ignore[attr-defined]
    params = {"ready_suggestions": 3, "laws": LAWS, "project": "default"}
    first = store.create_job("reoptimize", exp["id"], params)
    result = refit.reoptimize(store, first.id)
    assert result is not None and len(result["ready_run_ids"]) == 3
    waiting = api.get(f"/v1/experiments/{exp['id']}/runs", params={"state": "suggested"}).json()["runs"]
    assert {r["id"] for r in waiting} == set(result["ready_run_ids"])
    # A trainer takes one; the next re-optimization proposes exactly one more.
    api.post(f"/v1/experiments/{exp['id']}/runs", json={"id": waiting[0]["id"], "state": "running"})
    again = refit.reoptimize(store, store.create_job("reoptimize", exp["id"], params).id)
    assert again is not None and len(again["ready_run_ids"]) == 1
    assert again["refit"]["status"] == "up_to_date"
    assert refit.reoptimize(store, first.id) is None  # a redelivered finished job does nothing


def test_policy_endpoints_validate_and_store(api: TestClient) -> None:
    exp = create(api)
    url = f"/v1/experiments/{exp['id']}/reoptimization"
    assert api.get(url).status_code == 404
    bad = api.put(url, json={"ready_suggestions": 2})
    assert bad.status_code == 422 and "every_runs" in bad.text
    assert api.put(url, json={"every_runs": 0}).status_code == 422
    unknown = api.put(url, json={"every_runs": 5, "method": "nope"})
    assert unknown.status_code == 422 and unknown.json()["error"]["code"] == "unknown_method"
    ok = api.put(url, json={"every_runs": 5, "every_minutes": 30, "ready_suggestions": 2})
    assert ok.status_code == 200
    body = api.get(url).json()
    assert body["every_runs"] == 5 and body["every_minutes"] == 30 and body["last_job_id"] is None
    assert api.put(url, json={"enabled": False}).json()["enabled"] is False
    r = api.post(f"/v1/experiments/{exp['id']}/refits", json={"laws": ["no_such_law"]})
    assert r.status_code == 422 and r.json()["error"]["field"] == "laws[0]"
    assert api.get("/v1/experiments/exp_missing/history").status_code == 404


def test_with_two_fidelities_laws_are_scored_at_the_level_nearest_the_target(api: TestClient) -> None:
    exp = create(api)
    seed_runs(api, exp["id"], 30, params=1e6)
    seed_runs(api, exp["id"], 12, params=1e8, seed=1)  # nearer the 1e9 target: where laws are scored
    job = wait_for_job(api, api.post(f"/v1/experiments/{exp['id']}/refits", json={"laws": LAWS}).json()["job"]["id"])
    assert job["state"] == "succeeded" and job["result"]["refit"]["n_runs"] == 42
    scored = [f for f in api.get(f"/v1/experiments/{exp['id']}/fits").json()["fits"] if not f["scores"]["skipped"]]
    assert scored and {f["scores"]["cv"]["from_metrics"]["n"] for f in scored} == {12}
