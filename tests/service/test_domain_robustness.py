"""Suggestions never hand out a run twice, and values beyond the request ranges -- stored by an import or
an older server -- neither break the models nor the experiment's objective.

Run on both backends: the guarantees hold for what each database stores and serves.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import sqlalchemy as sa
from fastapi.testclient import TestClient

from service.store.models import Experiment, Run
from tests.service.helpers import DOMAINS, create, seed_runs, spec


def _engine(api: TestClient) -> sa.Engine:
    return api.app.state.mixopt.store.engine  # type: ignore[attr-defined, no-any-return]


def _suggest(api: TestClient, exp_id: str, **body: Any) -> Any:
    return api.post(f"/v1/experiments/{exp_id}/suggestions", json=body)


def _finite(value: Any) -> bool:
    """Whether every number in a JSON document is finite (null is no number)."""
    if isinstance(value, dict):
        return all(_finite(v) for v in value.values())
    if isinstance(value, list):
        return all(_finite(v) for v in value)
    return not isinstance(value, float) or math.isfinite(value)


def test_two_clients_passing_the_same_seed_get_different_random_runs(api: TestClient) -> None:
    """Regression: ``method=random`` with the same ``seed`` handed both callers the same mixtures."""
    exp = create(api)
    got = [_suggest(api, exp["id"], count=3, method="random", seed=7, client_id=c) for c in ("a", "b", "c")]
    assert [r.status_code for r in got] == [201, 201, 201]
    mixtures = np.array([[run["mixture"][d] for d in DOMAINS] for r in got for run in r.json()["runs"]])
    distances = np.abs(mixtures[:, None] - mixtures[None]).sum(axis=2) + np.eye(9)
    assert distances.min() > 1e-6
    assert api.get(f"/v1/experiments/{exp['id']}").json()["run_counts"]["suggested"] == 9


def test_a_single_feasible_mixture_is_handed_to_one_client_only(api: TestClient) -> None:
    """Regression: with min weights summing to 1 there is one mixture, and three clients all got it."""
    exp = create(api, domains=[{"name": "a", "min_weight": 0.7}, {"name": "b", "min_weight": 0.3}],
                 objective={"metrics": ["loss"]}, fidelities=[])
    first = _suggest(api, exp["id"], count=3, client_id="x")
    assert first.status_code == 201, first.text
    assert [r["mixture"] for r in first.json()["runs"]] == [{"a": 0.7, "b": 0.3}]  # fewer runs than asked
    for body in ({"client_id": "y"}, {"client_id": "z", "method": "random", "seed": 1}, {"method": "design"}):
        r = _suggest(api, exp["id"], count=1, **body)
        assert r.status_code == 409 and r.json()["error"]["code"] == "search_space_exhausted", r.text
    run = first.json()["runs"][0]
    done = api.post(f"/v1/experiments/{exp['id']}/runs", json={"id": run["id"], "metrics": {"loss": 2.0}})
    assert done.status_code == 200, done.text
    again = _suggest(api, exp["id"], count=1, client_id="y")  # observed is as taken as pending
    assert again.status_code == 409 and again.json()["error"]["code"] == "search_space_exhausted"
    assert api.get(f"/v1/experiments/{exp['id']}").json()["run_counts"] == {
        "suggested": 0, "running": 0, "completed": 1, "failed": 0, "abandoned": 0}


def test_runs_with_metrics_beyond_the_range_are_left_out_of_every_model(api: TestClient) -> None:
    """Regression: 14 runs with losses alternating ±1e308 (accepted then, importable now) made
    GET /recommendation and POST /predict answer 500 for good; refits failed on infs and NaNs."""
    exp = create(api)
    url = f"/v1/experiments/{exp['id']}"
    seed_runs(api, exp["id"], 14)
    extreme = seed_runs(api, exp["id"], 14, seed=1)
    with _engine(api).begin() as conn:
        for i, run_id in enumerate(extreme):
            value = 1e308 if i % 2 else -1e308
            conn.execute(sa.update(Run).where(Run.id == run_id)
                         .values(metrics={"loss/web": value, "loss/code": value}))
    rec = api.get(f"{url}/recommendation", params={"refresh": True})
    assert rec.status_code == 200 and rec.json()["n_runs"] == 14, rec.text
    assert _finite(rec.json()) and rec.json()["predicted"]["value"] is not None
    pred = api.post(f"{url}/predict", json={"mixtures": [dict.fromkeys(DOMAINS, 0.25)]})
    assert pred.status_code == 200 and _finite(pred.json()), pred.text
    assert pred.json()["n_runs"] == 14
    sugg = _suggest(api, exp["id"], count=2, method="regmix")
    assert sugg.status_code == 201 and _finite(sugg.json()), sugg.text
    listed = api.get(f"{url}/runs", params={"page_size": 100, "state": "completed"}).json()["runs"]
    assert len(listed) == 28 and max(abs(r["metrics"]["loss/web"]) for r in listed) == 1e308  # kept, not fitted


def test_a_spec_stored_with_values_beyond_the_ranges_still_reads_and_weighs_its_metrics(api: TestClient) -> None:
    """Regression: weights ``[1e308, 1e308]`` made every objective 0.0 and priors of 1e308 a degenerate
    design; requests now refuse them, and a spec stored before (or imported) must still read back, weigh
    its metrics and design around its prior."""
    exp = create(api, objective={"metrics": ["loss/web", "loss/code"], "aggregate": "weighted_mean",
                                 "weights": [1, 3]})
    old = dict(spec(name=exp["name"]))
    old["objective"] = {"metrics": ["loss/web", "loss/code"], "aggregate": "weighted_mean", "weights": [1e308, 3e307]}
    old["domains"] = [{"name": d, "prior": p, "min_weight": 0.0, "max_weight": 1.0, "tokens_available": None}
                      for d, p in zip(DOMAINS, (1e308, 1e308, 5e307, 1e300), strict=True)]
    old["search"] = {"initial_runs": None, "default_method": "a-method-since-removed"}
    with _engine(api).begin() as conn:
        stored = conn.scalar(sa.select(Experiment.spec).where(Experiment.id == exp["id"]))
        conn.execute(sa.update(Experiment).where(Experiment.id == exp["id"])
                     .values(spec={**stored, **{k: old[k] for k in ("objective", "domains", "search")}}))
    read = api.get(f"/v1/experiments/{exp['id']}")
    assert read.status_code == 200 and read.json()["objective"]["weights"] == [1e308, 3e307], read.text
    assert api.get("/v1/experiments").status_code == 200
    r = api.post(f"/v1/experiments/{exp['id']}/runs", json={
        "mixture": dict.fromkeys(DOMAINS, 0.25), "fidelity": {"params": 1e6},
        "metrics": {"loss/web": 2.0, "loss/code": 4.0}})
    assert r.status_code == 201 and math.isclose(r.json()["objective"], (2.0 + 4.0 * 0.3) / 1.3), r.text
    sugg = _suggest(api, exp["id"], count=4, method="design")
    assert sugg.status_code == 201 and _finite(sugg.json()), sugg.text
    prior_baseline = sugg.json()["runs"][0]["mixture"]  # each level's design measures the prior first
    assert prior_baseline["web"] == prior_baseline["code"] > prior_baseline["papers"] > prior_baseline["math"]
