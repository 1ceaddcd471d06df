"""Suggestions, recommendation and prediction over the API, including concurrency and the 202 path."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from scipy.stats import spearmanr

from service.api.app import create_app
from service.api.embedded import embedded_server
from service.settings import Settings
from service.store.models import CandidatePool, Job
from tests.service.helpers import DOMAINS, create, seed_runs, spec, synthetic_losses


def _vec(m: dict[str, float]) -> np.ndarray:
    return np.array([m[d] for d in DOMAINS])


def test_first_suggestions_are_a_design_within_bounds(api: TestClient) -> None:
    exp = create(api, domains=[{"name": "web", "prior": 0.5, "min_weight": 0.2},
                               {"name": "code", "prior": 0.2, "max_weight": 0.3},
                               {"name": "papers", "tokens_available": 1e9}, {"name": "math"}],
                 budget={"target_tokens": 1e10, "max_epochs": 2})
    r = api.post(f"/v1/experiments/{exp['id']}/suggestions", json={"count": 12})
    assert r.status_code == 201, r.text
    runs = r.json()["runs"]
    assert len(runs) == 12 and all(x["state"] == "suggested" and x["method"] == "design" for x in runs)
    w = np.array([_vec(x["mixture"]) for x in runs])
    assert np.allclose(w.sum(axis=1), 1, atol=1e-9)
    assert (w[:, 0] >= 0.2 - 1e-9).all() and (w[:, 1] <= 0.3 + 1e-9).all() and (w[:, 2] <= 0.2 + 1e-9).all()
    assert all(x["fidelity"] == {"params": 1e6} for x in runs)
    assert len({tuple(np.round(v, 9)) for v in w}) == 12


@pytest.mark.parametrize("method", ["bo", "single-fidelity-bo", "regmix", "law"])
def test_a_model_method_on_an_empty_experiment_starts_with_a_design(api: TestClient, method: str) -> None:
    """Naming a model before any run exists is not an error: the first runs are the space-filling design."""
    exp = create(api)
    r = api.post(f"/v1/experiments/{exp['id']}/suggestions", json={"count": 3, "method": method})
    assert r.status_code == 201, r.text
    assert [x["method"] for x in r.json()["runs"]] == ["design"] * 3


def test_models_take_over_and_never_repeat_pending(api: TestClient) -> None:
    exp = create(api, search={"initial_runs": 20})
    seed_runs(api, exp["id"], 40)
    first = api.post(f"/v1/experiments/{exp['id']}/suggestions", json={"count": 4}).json()["runs"]
    assert {r["method"] for r in first} <= {"regmix", "law", "bo"}
    assert all(r["predicted"] is not None and r["predicted"]["lower"] <= r["predicted"]["value"] for r in first)
    second = api.post(f"/v1/experiments/{exp['id']}/suggestions", json={"count": 4}).json()["runs"]
    a = np.array([_vec(r["mixture"]) for r in first])
    b = np.array([_vec(r["mixture"]) for r in second])
    assert np.abs(a[:, None, :] - b[None, :, :]).sum(axis=2).min() > 1e-6


def test_candidates_pool_is_respected(api: TestClient) -> None:
    exp = create(api)
    rng = np.random.default_rng(3)
    pool = rng.dirichlet(np.ones(4), size=10)
    cands = [{"mixture": dict(zip(DOMAINS, p.tolist(), strict=True))} for p in pool]
    got: list[np.ndarray] = []
    for _ in range(3):
        r = api.post(f"/v1/experiments/{exp['id']}/suggestions", json={"count": 3, "candidates": cands})
        got += [_vec(x["mixture"]) for x in r.json()["runs"]]
    assert len(got) == 9
    for g in got:
        assert np.abs(pool - g).sum(axis=1).min() < 1e-9
    assert len({tuple(np.round(g, 9)) for g in got}) == 9
    last = api.post(f"/v1/experiments/{exp['id']}/suggestions", json={"count": 3, "candidates": cands}).json()
    assert len(last["runs"]) == 1


def test_a_pool_is_stored_once_and_jobs_name_it_by_hash(api: TestClient) -> None:
    """Each job carried its pool in its parameters: ~18 MB per 200,000-candidate request."""
    exp = create(api)
    pool = np.random.default_rng(4).dirichlet(np.ones(4), size=200)
    cands = [{"mixture": dict(zip(DOMAINS, p.tolist(), strict=True))} for p in pool]
    cands[0]["fidelity"] = {"params": 1e7}
    for _ in range(2):
        r = api.post(f"/v1/experiments/{exp['id']}/suggestions", json={"count": 2, "candidates": cands})
        assert r.status_code == 201, r.text
        assert all(np.abs(pool - _vec(x["mixture"])).sum(axis=1).min() < 1e-9 for x in r.json()["runs"])
    store = api.app.state.mixopt.store
    with store.engine.connect() as conn:
        pools = conn.execute(sa.select(CandidatePool.sha256, CandidatePool.n_rows)).all()
        params = conn.scalars(sa.select(Job.params).where(Job.kind == "propose")).all()
    assert len(pools) == 1 and pools[0].n_rows == 200
    assert [p["pool"] for p in params] == [pools[0].sha256] * 2
    stored = store.load_pool(exp["id"], pools[0].sha256)
    assert np.abs(stored.mixtures - pool).max() < 1e-12
    assert stored.fidelities[0].tolist() == [1e7] and np.isnan(stored.fidelities[1:]).all()
    assert all("candidates" not in p and len(json.dumps(p)) < 1000 for p in params)


def test_candidate_breaking_a_bound_is_rejected(api: TestClient) -> None:
    exp = create(api, domains=[{"name": "web", "max_weight": 0.5}, {"name": "code"}, {"name": "papers"},
                               {"name": "math"}])
    r = api.post(f"/v1/experiments/{exp['id']}/suggestions", json={
        "count": 1, "candidates": [{"mixture": {"web": 0.9, "code": 0.1, "papers": 0, "math": 0}}]})
    assert r.status_code == 422 and r.json()["error"]["field"] == "candidates[0].mixture.web"
    assert r.json()["error"]["code"] == "constraint_violation"
    assert api.get(f"/v1/experiments/{exp['id']}").json()["run_counts"]["suggested"] == 0


@pytest.mark.parametrize(("body", "field"), [
    ({"count": 0}, "count"), ({"count": 5000}, "count"), ({"method": "magic"}, "method"),
    ({"fidelity": {"params": 1}}, "fidelity.params"), ({"candidates": []}, "candidates"),
])
def test_bad_suggestion_requests(api: TestClient, body: dict, field: str) -> None:
    exp = create(api)
    r = api.post(f"/v1/experiments/{exp['id']}/suggestions", json=body)
    assert r.status_code == 422 and r.json()["error"]["field"] == field


#: A trigger that makes storing a proposal fail inside the database, as a constraint or a server error would.
_FREEZE_PROPOSALS = {
    "sqlite": ["CREATE TRIGGER freeze_proposals BEFORE INSERT ON proposals "
               "BEGIN SELECT RAISE(ABORT, 'proposals are frozen'); END"],
    "postgresql": ["CREATE FUNCTION freeze_proposals() RETURNS trigger LANGUAGE plpgsql AS "
                   "$$ BEGIN RAISE EXCEPTION 'proposals are frozen'; END $$",
                   "CREATE TRIGGER freeze_proposals BEFORE INSERT ON proposals FOR EACH ROW "
                   "EXECUTE FUNCTION freeze_proposals()"],
}


def test_a_suggestion_failing_in_the_database_answers_409_without_sql(api: TestClient, database_url: str) -> None:
    exp = create(api, name="frozen")
    engine = sa.create_engine(database_url)
    try:
        with engine.begin() as conn:
            for statement in _FREEZE_PROPOSALS[engine.dialect.name]:
                conn.exec_driver_sql(statement)
    finally:
        engine.dispose()
    r = api.post(f"/v1/experiments/{exp['id']}/suggestions", json={"count": 2, "method": "design"})
    assert r.status_code == 409 and r.json()["error"]["code"] == "suggestion_failed", r.text
    job = api.get(f"/v1/jobs/{r.json()['error']['details']['job_id']}").json()
    for message in (r.json()["error"]["message"], job["error"]):
        assert "proposals are frozen" in message
        assert not any(leak in message for leak in ("INSERT", "proposals (", "[SQL", "parameters", exp["id"])), message


def test_slow_suggestions_answer_202_with_a_job(settings: Settings) -> None:
    with TestClient(create_app(settings.model_copy(update={"sync_budget_s": 0.0}))) as api:
        exp = create(api)
        seed_runs(api, exp["id"], 40)
        r = api.post(f"/v1/experiments/{exp['id']}/suggestions", json={"count": 2, "method": "regmix"})
        assert r.status_code == 202 and r.json()["job"]["state"] in ("queued", "running")
        job_id = r.json()["job"]["id"]
        deadline = time.monotonic() + 60
        while (job := api.get(f"/v1/jobs/{job_id}").json())["state"] not in ("succeeded", "failed"):
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert job["state"] == "succeeded" and len(job["result"]["run_ids"]) == 2
        run = api.get(f"/v1/experiments/{exp['id']}/runs/{job['result']['run_ids'][0]}").json()
        assert run["state"] == "suggested" and run["method"] == "regmix"
    assert api.get("/v1/jobs/job_nope").status_code == 404


def test_concurrent_suggestion_requests_never_share_a_point(database_url: str, tmp_path: Path) -> None:
    """Eight callers at once over real HTTP (threads against a live server): no mixture handed out twice."""
    with embedded_server(Settings(database_url=database_url, auto_migrate=True)) as url:
        exp = httpx.post(f"{url}/v1/experiments", json=spec()).json()
        pool = np.random.default_rng(0).dirichlet(np.ones(4), size=30)
        cands = [{"mixture": dict(zip(DOMAINS, p.tolist(), strict=True))} for p in pool]

        def ask(_: int) -> list[dict]:
            r = httpx.post(f"{url}/v1/experiments/{exp['id']}/suggestions", json={"count": 3, "candidates": cands},
                           timeout=60)
            assert r.status_code == 201, r.text
            return r.json()["runs"]

        with ThreadPoolExecutor(8) as ex:
            results = [run for batch in ex.map(ask, range(8)) for run in batch]
    keys = [tuple(np.round(_vec(r["mixture"]), 9)) for r in results]
    assert len(results) == 24 and len(set(keys)) == 24


def test_recommendation_and_predict(api: TestClient) -> None:
    exp = create(api)
    url = f"/v1/experiments/{exp['id']}"
    assert api.get(f"{url}/recommendation").json()["error"]["code"] == "not_enough_data"
    assert api.post(f"{url}/predict", json={"mixtures": [{"web": 1, "code": 0, "papers": 0, "math": 0}]}
                    ).status_code == 409
    seed_runs(api, exp["id"], 120)
    rec = api.get(f"{url}/recommendation").json()
    w = _vec(rec["mixture"])
    assert abs(w.sum() - 1) < 1e-9 and rec["n_runs"] == 120 and rec["fidelity"] == {"params": 1e9}
    assert rec["predicted"]["lower"] < rec["predicted"]["value"] < rec["predicted"]["upper"]
    # The synthetic law is minimised at web=0.45, code=0.35 with papers+math=0.2 (math costs more than papers).
    assert abs(w[0] - 0.45) < 0.12 and abs(w[1] - 0.35) < 0.12
    again = api.get(f"{url}/recommendation").json()
    assert again["created_at"] == rec["created_at"]  # cached: the data did not change
    pred = api.post(f"{url}/predict", json={"mixtures": [rec["mixture"], {"web": 0, "code": 0, "papers": 0,
                                                                            "math": 1}]}).json()
    good, bad = pred["predictions"]
    assert good["objective"] < bad["objective"] and set(good["metrics"]) == {"loss/web", "loss/code"}
    truth_bad = np.mean(list(synthetic_losses(np.array([0, 0, 0, 1.0])).values()))
    assert abs(bad["objective"] - truth_bad) < 1.0
    assert api.post(f"{url}/predict", json={"mixtures": [{"web": 2, "code": 0, "papers": 0, "math": 0}]}
                    ).json()["error"]["field"] == "mixtures[0]"


def test_predict_with_bo_answers_from_the_gp_at_the_requested_fidelity(api: TestClient) -> None:
    """BO's predictions come from its own posterior at the target fidelity, not from another model."""
    exp = create(api)
    seed_runs(api, exp["id"], 30, params=1e6)
    seed_runs(api, exp["id"], 8, params=1e9, seed=1)
    rng = np.random.default_rng(9)
    grid = rng.dirichlet(np.ones(len(DOMAINS)), 12)
    body = {"mixtures": [dict(zip(DOMAINS, w.tolist(), strict=True)) for w in grid], "method": "bo"}
    r = api.post(f"/v1/experiments/{exp['id']}/predict", json=body)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["method"] == "bo" and out["n_runs"] == 38
    preds = out["predictions"]
    assert all(p["metrics"] == {} and p["lower"] < p["objective"] < p["upper"] for p in preds)
    truth = [np.mean(list(synthetic_losses(w).values())) for w in grid]
    assert spearmanr([p["objective"] for p in preds], truth).statistic > 0.8
    off = api.post(f"/v1/experiments/{exp['id']}/predict",
                   json={**body, "method": "single-fidelity-bo", "fidelity": {"params": 1e6}})
    assert off.status_code == 422 and off.json()["error"]["field"] == "fidelity", off.text


def test_recommendation_among_candidates_picks_the_best_of_them_and_stores_nothing(api: TestClient) -> None:
    exp = create(api, domains=[{"name": "web", "max_weight": 0.8}, {"name": "code"}, {"name": "papers"},
                               {"name": "math"}])
    url = f"/v1/experiments/{exp['id']}/recommendation"
    pool = np.random.default_rng(4).dirichlet(np.ones(4), size=15) * np.array([0.8, 1, 1, 1])
    pool /= pool.sum(axis=1, keepdims=True)
    pool = pool[pool[:, 0] <= 0.8]
    cands = [dict(zip(DOMAINS, p.tolist(), strict=True)) for p in pool]
    assert api.post(url, json={"candidates": cands}).json()["error"]["code"] == "not_enough_data"
    seed_runs(api, exp["id"], 120)
    truth = np.array([np.mean(list(synthetic_losses(p).values())) for p in pool])
    for method in ("law", "regmix"):
        r = api.post(url, json={"candidates": cands, "method": method, "seed": 3})
        assert r.status_code == 200, r.text
        got = _vec(r.json()["mixture"])
        i = int(np.argmin(np.abs(pool - got).sum(axis=1)))
        assert np.abs(pool[i] - got).sum() < 1e-9, method  # one of the candidates itself ...
        assert truth[i] <= np.sort(truth)[2], method  # ... and among the truly best three
    # Model-free: the best run measured on a candidate mixture, and none has been measured yet.
    assert api.post(url, json={"candidates": cands, "method": "design"}).status_code == 409
    api.post(f"/v1/experiments/{exp['id']}/runs", json={
        "mixture": cands[0], "fidelity": {"params": 1e6}, "metrics": synthetic_losses(pool[0])})
    r = api.post(url, json={"candidates": cands, "method": "design"})
    assert r.status_code == 200 and np.allclose(_vec(r.json()["mixture"]), pool[0])
    # a query: the experiment's own recommendation is still computed over the whole simplex
    assert api.get(url).json()["details"].get("optimizer", {}).get("pool") is None


@pytest.mark.parametrize(("body", "field", "code"), [
    ({"candidates": []}, "candidates", "invalid_input"),
    ({"candidates": [{"web": 0.5, "code": 0.5, "papers": 0, "math": 0}], "method": "magic"}, "method",
     "unknown_method"),
    ({"candidates": [{"web": 0.9, "code": 0.1, "papers": 0, "math": 0}]}, "candidates[0].web",
     "constraint_violation"),
    ({"candidates": [{"web": 0.5, "code": 0.5, "papers": 0, "spam": 0}]}, "candidates[0].spam", "invalid_mixture"),
])
def test_bad_recommendation_requests_name_the_field(api: TestClient, body: dict, field: str, code: str) -> None:
    exp = create(api, domains=[{"name": "web", "max_weight": 0.8}, {"name": "code"}, {"name": "papers"},
                               {"name": "math"}])
    seed_runs(api, exp["id"], 5)
    r = api.post(f"/v1/experiments/{exp['id']}/recommendation", json=body)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["field"].startswith(field) and r.json()["error"]["code"] == code, r.json()
