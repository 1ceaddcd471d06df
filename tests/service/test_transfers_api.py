"""Warm start through the API: runs of earlier experiments brought in, marked, never counted as this one's."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from service.schemas import ExperimentCreate
from service.store import Store
from service.store.models import Project
from service.store.session import transaction
from tests.service.helpers import create, seed_runs, spec, state_of, wait_for_job


def _transfer(api: TestClient, target: str, source: str, weight: float = 1.0) -> Any:
    return api.post(f"/v1/experiments/{target}/transfers", json={"experiment_id": source, "weight": weight})


def _transferred(api: TestClient, exp_id: str, **params: Any) -> list[dict[str, Any]]:
    r = api.get(f"/v1/experiments/{exp_id}/transferred-runs", params=params)
    assert r.status_code == 200, r.text
    return list(r.json()["runs"])


def test_warm_start_at_creation_brings_runs_marked_and_not_counted(api: TestClient) -> None:
    source = create(api, name="source")
    seed_runs(api, source["id"], 6)
    api.post(f"/v1/experiments/{source['id']}/runs", json={  # pending runs never come
        "mixture": {"web": 0.25, "code": 0.25, "papers": 0.25, "math": 0.25}, "fidelity": {"params": 1e6},
        "state": "running", "client_run_id": "pending"})
    r = api.post("/v1/experiments", json=spec(name="target", warm_start=[{"experiment_id": source["id"],
                                                                          "weight": 0.5}]))
    assert r.status_code == 201, r.text
    target = r.json()
    assert target["transferred_runs"] == 6 and target["run_counts"]["completed"] == 0
    assert target["warm_start"] == [{"source_experiment_id": source["id"], "weight": 0.5, "transferred": 6,
                                     "skipped": {"already_transferred": 0, "domain_not_in_target": 0,
                                                 "no_objective": 0}}]
    runs = _transferred(api, target["id"])
    assert len(runs) == 6 and {x["source_experiment_id"] for x in runs} == {source["id"]}
    assert all(x["task"] == "target_objective" and x["weight"] == 0.5 for x in runs)
    own = api.get(f"/v1/experiments/{target['id']}/runs").json()["runs"]
    assert own == []
    got = api.get(f"/v1/experiments/{target['id']}").json()
    assert got["transferred_runs"] == 6 and got["warm_start"] is None
    assert sum(got["run_counts"].values()) == 0


def test_transfer_is_idempotent_and_updates_the_weight(api: TestClient) -> None:
    source, target = create(api, name="s"), create(api, name="t")
    seed_runs(api, source["id"], 4)
    first = _transfer(api, target["id"], source["id"])
    assert first.status_code == 200 and first.json()["transferred"] == 4
    version = state_of(api, target["id"])[0]
    again = _transfer(api, target["id"], source["id"], weight=2.0)
    assert again.status_code == 200
    assert again.json()["transferred"] == 0 and again.json()["skipped"]["already_transferred"] == 4
    runs = _transferred(api, target["id"])
    assert len(runs) == 4 and {x["weight"] for x in runs} == {2.0}
    assert state_of(api, target["id"])[0] > version
    same = _transfer(api, target["id"], source["id"], weight=2.0)
    assert state_of(api, target["id"])[0] == state_of(api, target["id"])[0] and same.json()["transferred"] == 0


def test_domains_matched_by_name_and_foreign_weight_dropped(api: TestClient) -> None:
    source = create(api, name="wide", domains=[{"name": "math"}, {"name": "web"}, {"name": "books"}])
    rows: list[dict[str, Any]] = [{"mixture": {"math": 0.3, "web": 0.7, "books": 0.0}, "loss": 3.0},
            {"mixture": {"math": 0.2, "web": 0.3, "books": 0.5}, "loss": 3.5}]
    for i, row in enumerate(rows):
        r = api.post(f"/v1/experiments/{source['id']}/runs", json={
            "mixture": row["mixture"], "fidelity": {"params": 1e7}, "client_run_id": f"r{i}",
            "metrics": {"loss/web": row["loss"], "loss/code": row["loss"] + 1}})
        assert r.status_code == 201, r.text
    # a run without the target's metrics: its own experiment's objective is the related task
    src2 = create(api, name="other-metric", objective={"metrics": ["acc"], "goal": "maximize"})
    api.post(f"/v1/experiments/{src2['id']}/runs", json={
        "mixture": {"web": 0.5, "code": 0.5, "papers": 0.0, "math": 0.0}, "fidelity": {"params": 1e6},
        "metrics": {"acc": 0.7}})
    target = create(api, name="narrow")
    r = _transfer(api, target["id"], source["id"])
    assert r.json()["transferred"] == 1 and r.json()["skipped"]["domain_not_in_target"] == 1
    run, = _transferred(api, target["id"], source_experiment_id=source["id"])
    assert run["mixture"] == {"web": 0.7, "code": 0.0, "papers": 0.0, "math": 0.3}
    assert run["fidelity"] == {"params": 1e7} and run["loss"] == pytest.approx(3.5)
    assert _transfer(api, target["id"], src2["id"]).json()["transferred"] == 1
    other, = _transferred(api, target["id"], source_experiment_id=src2["id"])
    assert other["task"] == "source_objective" and other["loss"] == pytest.approx(-0.7)


def test_bad_sources_are_refused_and_store_nothing(api: TestClient) -> None:
    target = create(api, name="t")
    missing = api.post("/v1/experiments", json=spec(name="new", warm_start=[{"experiment_id": target["id"]},
                                                                            {"experiment_id": "exp_nope"}]))
    assert missing.status_code == 404 and missing.json()["error"]["field"] == "warm_start[1].experiment_id"
    assert api.get("/v1/experiments", params={"q": "new"}).json()["experiments"] == []
    assert _transfer(api, target["id"], "exp_nope").json()["error"]["field"] == "experiment_id"
    own = _transfer(api, target["id"], target["id"])
    assert own.status_code == 422 and own.json()["error"]["field"] == "experiment_id"
    for weight in (0, -1, "1", None):
        bad = _transfer(api, target["id"], target["id"], weight=weight)  # type: ignore[arg-type]
        assert bad.status_code == 422 and "weight" in bad.json()["error"]["field"], bad.text
    assert _transferred(api, target["id"]) == []


def test_a_source_in_another_project_is_not_found(api: TestClient) -> None:
    store: Store = api.app.state.mixopt.store  # type: ignore[attr-defined]
    with transaction(store.factory) as s:
        s.add(Project(name="elsewhere"))
    hidden = store.create_experiment(ExperimentCreate(**spec(name="hidden")), project="elsewhere")
    target = create(api, name="t")
    r = _transfer(api, target["id"], hidden.id)
    assert r.status_code == 404 and r.json()["error"]["field"] == "experiment_id"


def test_refit_reports_the_law_with_and_without_the_transferred_runs(api: TestClient) -> None:
    source = create(api, name="src")
    seed_runs(api, source["id"], 30, seed=5)
    target = create(api, name="tgt", warm_start=[{"experiment_id": source["id"]}])
    seed_runs(api, target["id"], 12, seed=3)
    job = api.post(f"/v1/experiments/{target['id']}/refits",
                   json={"laws": ["regmix_linear", "data_mixing_law"]}).json()["job"]
    assert wait_for_job(api, job["id"])["state"] == "succeeded"
    selected, = [f for f in api.get(f"/v1/experiments/{target['id']}/fits", params={"latest": True}).json()["fits"]
                 if f["selected"]]
    report = selected["scores"]["transfer"]
    assert report["law"] == selected["law"] and report["n_transferred"] == 30 and report["n_sources"] == 1
    assert report["with"]["n"] == report["without"]["n"] == 12
    assert report["helps"] == (report["mse_with"] < report["mse_without"])
    rec = api.get(f"/v1/experiments/{target['id']}/recommendation").json()
    assert rec["n_runs"] <= 12 and ("transfer" in rec["details"])
    assert state_of(api, target["id"])[1].get("completed") == 12


def test_concurrent_transfers_of_one_source_add_its_runs_once(api: TestClient) -> None:
    source, target = create(api, name="s"), create(api, name="t")
    seed_runs(api, source["id"], 8)
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda _: _transfer(api, target["id"], source["id"]), range(4)))
    assert all(a.status_code == 200 for a in answers), [a.text for a in answers]
    assert sorted(a.json()["transferred"] for a in answers) == [0, 0, 0, 8]
    assert len(_transferred(api, target["id"])) == 8


def test_the_fitting_snapshot_holds_one_task_per_source_fidelity_and_objective(api: TestClient) -> None:
    store: Store = api.app.state.mixopt.store  # type: ignore[attr-defined]
    first, second = create(api, name="a"), create(api, name="b", objective={"metrics": ["acc"], "goal": "maximize"})
    seed_runs(api, first["id"], 3, params=1e6)
    seed_runs(api, first["id"], 2, params=1e7, seed=1)
    api.post(f"/v1/experiments/{second['id']}/runs", json={
        "mixture": {"web": 0.5, "code": 0.5, "papers": 0.0, "math": 0.0}, "fidelity": {"params": 1e6},
        "metrics": {"acc": 0.7}})
    target = create(api, name="t", warm_start=[{"experiment_id": first["id"], "weight": 2.0},
                                               {"experiment_id": second["id"]}])
    snap = store.snapshot(store.get_experiment(target["id"]))
    assert snap.observations.n == 0 and snap.transfers is not None
    t = snap.transfers
    assert t.n == 6 and t.n_sources == 3 and sorted(np.bincount(t.sources).tolist()) == [1, 2, 3]
    assert t.losses[-1] == pytest.approx(-0.7) and t.weights.tolist() == [2.0] * 5 + [1.0]
    assert np.allclose(t.mixtures.sum(axis=1), 1.0)
