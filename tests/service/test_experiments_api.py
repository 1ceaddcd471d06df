"""Experiments: create, read, list with paging, update, and the validation of specs."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.service.helpers import create, spec


def test_create_and_get(api: TestClient) -> None:
    exp = create(api, name="pile-17")
    assert exp["id"].startswith("exp_") and exp["name"] == "pile-17" and exp["state"] == "active"
    got = api.get(f"/v1/experiments/{exp['id']}").json()
    assert got["domains"][0] == {"name": "web", "prior": 0.5, "tokens_available": None, "min_weight": 0.0,
                                 "max_weight": 1.0}
    assert got["run_counts"] == {"suggested": 0, "running": 0, "completed": 0, "failed": 0, "abandoned": 0}


def test_duplicate_name_is_conflict(api: TestClient) -> None:
    create(api, name="same")
    r = api.post("/v1/experiments", json=spec(name="same"))
    assert r.status_code == 409 and r.json()["error"]["field"] == "name"


def test_list_pages_through_everything(api: TestClient) -> None:
    ids = {create(api, name=f"e{i}")["id"] for i in range(7)}
    seen: list[str] = []
    token = None
    while True:
        params = {"page_size": 3, **({"page_token": token} if token else {})}
        page = api.get("/v1/experiments", params=params).json()
        assert len(page["experiments"]) <= 3
        seen += [e["id"] for e in page["experiments"]]
        token = page["next_page_token"]
        if not token:
            break
    assert len(seen) == len(ids) and set(seen) == ids
    assert api.get("/v1/experiments", params={"q": "e3"}).json()["experiments"][0]["name"] == "e3"


def test_bad_page_token(api: TestClient) -> None:
    r = api.get("/v1/experiments", params={"page_token": "garbage!"})
    assert r.status_code == 422 and r.json()["error"]["field"] == "page_token"


def test_patch_archive_blocks_new_runs(api: TestClient) -> None:
    exp = create(api)
    r = api.patch(f"/v1/experiments/{exp['id']}", json={"state": "archived", "metadata": {"team": "a"}})
    assert r.status_code == 200 and r.json()["state"] == "archived" and r.json()["metadata"] == {"team": "a"}
    r = api.post(f"/v1/experiments/{exp['id']}/runs", json={
        "mixture": {"web": 1, "code": 0, "papers": 0, "math": 0}, "fidelity": {"params": 1e6},
        "metrics": {"loss/web": 1, "loss/code": 1}})
    assert r.status_code == 409 and r.json()["error"]["code"] == "experiment_archived"
    assert api.get("/v1/experiments", params={"state": "archived"}).json()["experiments"][0]["id"] == exp["id"]


@pytest.mark.parametrize(("overrides", "field"), [
    ({"domains": [{"name": "a"}]}, "domains"),
    ({"domains": [{"name": "a"}, {"name": "a"}]}, "domains"),
    ({"domains": [{"name": "a", "min_weight": 0.7}, {"name": "b", "min_weight": 0.6}]}, "domains"),
    ({"domains": [{"name": "a", "max_weight": 0.3}, {"name": "b", "max_weight": 0.3}]}, "domains"),
    ({"domains": [{"name": "a", "min_weight": 0.5, "max_weight": 0.2}, {"name": "b"}]}, "domains[0]"),
    ({"domains": [{"name": "a", "prior": -1}, {"name": "b"}]}, "domains[0].prior"),
    ({"objective": {"metrics": ["x", "y"], "aggregate": "weighted_mean"}}, "objective"),
    ({"objective": {"metrics": ["x", "y"], "aggregate": "single"}}, "objective"),
    ({"objective": {"metrics": [], "aggregate": "mean"}}, "objective.metrics"),
    ({"objective": {"metrics": ["x"], "goal": "sideways"}}, "objective.goal"),
    ({"fidelities": [{"name": "params", "min": 10, "max": 1, "target": 5}]}, "fidelities[0]"),
    ({"fidelities": [{"name": "params", "min": 1, "max": 10, "target": 50}]}, "fidelities[0]"),
    ({"name": ""}, "name"),
    ({"unexpected": 1}, "unexpected"),
])
def test_invalid_specs_name_the_field(api: TestClient, overrides: dict, field: str) -> None:
    r = api.post("/v1/experiments", json=spec(**overrides))
    assert r.status_code == 422, r.text
    assert r.json()["error"]["field"].startswith(field), r.json()
    assert api.get("/v1/experiments").json()["experiments"] == []


def test_epoch_cap_that_leaves_no_mixture_is_rejected(api: TestClient) -> None:
    r = api.post("/v1/experiments", json=spec(
        domains=[{"name": "a", "tokens_available": 1e9}, {"name": "b", "tokens_available": 1e9}],
        budget={"target_tokens": 1e12, "max_epochs": 4}))
    assert r.status_code == 422 and r.json()["error"]["code"] == "infeasible_constraints"


def test_malformed_json(api: TestClient) -> None:
    r = api.post("/v1/experiments", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 422 and r.json()["error"]["code"] == "malformed_json"


def test_unknown_experiment_is_404(api: TestClient) -> None:
    r = api.get("/v1/experiments/exp_nope")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


def test_openapi_and_health(api: TestClient) -> None:
    paths = api.get("/openapi.json").json()["paths"]
    for p in ("/v1/experiments", "/v1/experiments/{experiment_id}/runs", "/v1/experiments/{experiment_id}/runs:batch",
              "/v1/experiments/{experiment_id}/suggestions", "/v1/experiments/{experiment_id}/recommendation",
              "/v1/experiments/{experiment_id}/predict", "/v1/jobs/{job_id}", "/healthz", "/readyz"):
        assert p in paths
    assert api.get("/healthz").json() == {"status": "ok"}
    ready = api.get("/readyz").json()
    assert ready["status"] == "ready" and ready["schema"]
