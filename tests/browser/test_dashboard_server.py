"""The dashboard's server side without a browser: chart thinning, summaries and file serving."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st

from mixing.problem import Observations
from service.api.app import create_app
from service.api.dashboard.progress import best_observed, improvement_points, progress, thin_steps
from service.operations.recommend import recommend
from service.settings import Settings
from service.validation import problem_from_spec
from tests.service.helpers import create, seed_runs, stored_spec, wait_for_job


def observations(losses: np.ndarray, levels: np.ndarray, costs: np.ndarray) -> Observations:
    n = len(losses)
    return Observations(mixtures=np.full((n, 4), 0.25), fidelities=levels.reshape(n, 1),
                        metrics=np.c_[losses, losses], costs=costs.astype(np.float64),
                        pending_mixtures=np.zeros((0, 4)), pending_fidelities=np.zeros((0, 1)))


PROBLEM = problem_from_spec(stored_spec())  # objective: mean of two metrics; fidelity params 1e6..1e9


@given(st.lists(st.floats(-1e3, 1e3), min_size=1, max_size=300), st.integers(2, 50))
def test_thinned_curve_keeps_the_ends_and_the_final_best(values: list[float], max_points: int) -> None:
    loss = np.asarray(values)
    x = np.cumsum(np.ones(len(loss)))
    idx = improvement_points(loss)
    kept = thin_steps(x, idx, max_points)
    best = np.minimum.accumulate(loss)
    assert len(kept) <= max_points
    assert kept[0] == 0 and kept[-1] == len(loss) - 1
    assert np.all(np.diff(kept) > 0) and set(kept) <= set(idx)
    assert best[kept[-1]] == loss.min()
    # every improvement is a kept point, unless thinning had to drop some
    if len(idx) <= max_points:
        assert list(kept) == list(idx)


def test_improvements_are_exactly_the_strict_new_minima() -> None:
    loss = np.array([5.0, 6.0, 4.0, 4.0, 3.0, 7.0])
    assert improvement_points(loss).tolist() == [0, 2, 4, 5]
    assert improvement_points(np.array([3.0, 2.0])).tolist() == [0, 1]


def test_progress_at_10000_runs_is_bounded_per_level_and_exact_at_the_end() -> None:
    rng = np.random.default_rng(0)
    n = 10_000
    # sorted losses: every run improves, the worst case for the number of points
    losses = np.sort(rng.normal(4.0, 0.3, n))[::-1]
    levels = np.where(np.arange(n) % 4 == 0, 6e7, 1e6)
    costs = np.where(levels == 6e7, 60.0, 1.0)
    p = progress(PROBLEM, observations(losses, levels, costs), max_points=300)
    assert p.x_unit == "cost" and p.total == pytest.approx(costs.sum())
    assert [c.fidelity for c in p.curves] == [[1e6], [6e7]]
    for c, level in zip(p.curves, (1e6, 6e7), strict=True):
        rows = levels == level
        assert c.n_runs == rows.sum() and len(c.points) <= 300
        assert c.best == pytest.approx(losses[rows].min())
        last_x = np.cumsum(costs)[np.flatnonzero(rows)[-1]]
        assert c.points[-1] == (pytest.approx(last_x), pytest.approx(c.best))
        xs = [pt[0] for pt in c.points]
        assert xs == sorted(xs)


def test_progress_counts_runs_when_a_cost_is_missing_and_respects_maximize() -> None:
    problem = problem_from_spec(stored_spec(objective={"metrics": ["acc/a", "acc/b"], "goal": "maximize"}))
    losses = np.array([0.1, 0.3, 0.2, 0.5])
    obs = observations(losses, np.full(4, 1e6), np.array([1.0, np.nan, 1.0, 1.0]))
    p = progress(problem, obs)
    assert p.x_unit == "runs" and p.total == 4.0
    assert p.curves[0].points == [(1.0, 0.1), (2.0, 0.3), (4.0, 0.5)]
    best = best_observed(problem, obs)
    assert best is not None and best.index == 3 and best.value == pytest.approx(0.5)


def test_best_observed_uses_the_level_nearest_the_target() -> None:
    losses = np.array([1.0, 3.0, 2.5])  # the 1M run is best in absolute terms, but 60M is nearer 1e9
    best = best_observed(PROBLEM, observations(losses, np.array([1e6, 6e7, 6e7]), np.ones(3)))
    assert best is not None and best.index == 2 and best.fidelity == [6e7]
    assert best_observed(PROBLEM, Observations.empty(4, 1, 2)) is None


@pytest.fixture
def api(tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(create_app(Settings(database_url=f"sqlite:///{tmp_path}/d.db", seed=1))) as client:
        yield client


@pytest.fixture
def stored_api(settings: Settings) -> Iterator[TestClient]:
    """An app on each backend (``settings`` is parametrized over SQLite and PostgreSQL)."""
    with TestClient(create_app(settings)) as client:
        yield client


def test_pages_and_files_are_served_with_a_strict_policy(api: TestClient) -> None:
    for path in ("/dashboard", "/dashboard/compare", "/dashboard/experiments/exp_x"):
        r = api.get(path)
        assert r.status_code == 200 and "default-src 'self'" in r.headers["content-security-policy"]
        assert 'src="/dashboard/static/' in r.text and "http" not in r.text.split("<body")[1]
    assert api.get("/dashboard/static/charts.js").headers["content-type"].startswith("text/javascript")
    assert api.get("/dashboard/static/..%2Froutes.py").status_code == 404
    assert api.get("/dashboard/static/nope.js").status_code == 404
    assert "/dashboard" not in str(api.get("/openapi.json").json()["paths"])


def test_summary_reads_stored_state_without_fitting(api: TestClient) -> None:
    exp = create(api)
    seed_runs(api, exp["id"], 12, params=1e6)
    out = api.get("/dashboard/api/summaries", params={"id": [exp["id"], "exp_unknown"]}).json()["summaries"]
    assert list(out) == [exp["id"]]
    s = out[exp["id"]]
    assert s["recommendation"] is None and s["last_refit_at"] is None and not s["stale"]
    runs = api.get(f"/v1/experiments/{exp['id']}/runs").json()["runs"]
    assert s["best_observed"]["value"] == min(r["objective"] for r in runs)

    recommend(api.app.state.mixopt.store, exp["id"], method_name="design", seed=0)  # as a refit does
    rec = api.get(f"/v1/experiments/{exp['id']}/recommendation").json()  # the stored one: data unchanged
    assert rec["method"] == "design"
    s = api.get("/dashboard/api/summaries", params={"id": exp["id"]}).json()["summaries"][exp["id"]]
    assert s["recommendation"]["predicted"] == rec["predicted"]
    assert s["last_refit_at"] is None  # a recommendation is not a refit: no fits were stored
    seed_runs(api, exp["id"], 1, seed=7)
    overview = api.get(f"/dashboard/api/experiments/{exp['id']}/overview").json()
    assert overview["summary"]["stale"] and overview["progress"]["curves"][0]["n_runs"] == 13


def test_last_refit_is_when_the_fits_were_stored(api: TestClient) -> None:
    """The list's "Last refit" and the law card read the same fits, so they cannot disagree."""
    exp = create(api)
    seed_runs(api, exp["id"], 40, params=1e6)
    recommend(api.app.state.mixopt.store, exp["id"], method_name="regmix", seed=0)
    summary = f"/dashboard/api/experiments/{exp['id']}/overview"
    assert api.get(summary).json()["summary"]["last_refit_at"] is None
    job = api.post(f"/v1/experiments/{exp['id']}/refits",
                   json={"laws": ["regmix_linear", "data_mixing_law"], "method": "regmix"}).json()["job"]
    assert wait_for_job(api, job["id"])["state"] == "succeeded"
    fits = api.get(f"/v1/experiments/{exp['id']}/fits", params={"latest": True}).json()["fits"]
    last = datetime.fromisoformat(api.get(summary).json()["summary"]["last_refit_at"])
    assert fits and last == max(datetime.fromisoformat(f["created_at"]) for f in fits)


def test_csv_of_an_empty_selection_has_only_the_header(api: TestClient) -> None:
    exp = create(api)
    r = api.get(f"/dashboard/api/experiments/{exp['id']}/runs.csv", params={"state": "failed"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    header, *rows = r.text.splitlines()
    assert rows == [] and header.startswith("id,state,method,fidelity.params,mixture.web")
    assert api.get(f"/dashboard/api/experiments/{exp['id']}/runs.csv",
                   params={"fidelity": "params"}).json()["error"]["field"] == "fidelity"


def test_overview_loads_the_runs_once_per_data_version(api: TestClient,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    exp = create(api)
    seed_runs(api, exp["id"], 5)
    store = api.app.state.mixopt.store
    loads: list[str] = []
    real = store.snapshot
    monkeypatch.setattr(store, "snapshot", lambda e: loads.append(e.id) or real(e))
    url = f"/dashboard/api/experiments/{exp['id']}/overview"
    first = [api.get(url).json() for _ in range(3)]
    assert loads == [exp["id"]] and first[0] == first[2]
    seed_runs(api, exp["id"], 1, seed=3)
    after = api.get(url).json()
    assert len(loads) == 2 and after["progress"]["curves"][0]["n_runs"] == 6


def test_csv_size_is_linear_in_the_runs_when_each_run_has_its_own_metric_names(stored_api: TestClient) -> None:
    """A column per distinct metric name made every row as wide as all runs' names together; a metric
    every run reports keeps its own column."""
    api = stored_api
    exp = create(api)
    n, own = 300, 5
    runs = [{"mixture": {"web": 0.4, "code": 0.3, "papers": 0.2, "math": 0.1}, "fidelity": {"params": 1e6},
             "metrics": {"loss/web": 3.0 + i / 1000, "loss/code": 3.5, "shared": i / 7,
                         **{f"eval/run{i}/task{k}": i + k / 10 for k in range(own)}},
             "cost": 1.5, "client_run_id": f"own-{i}"} for i in range(n)]
    body = json.dumps({"runs": runs})
    assert api.post(f"/v1/experiments/{exp['id']}/runs:batch", content=body,
                    headers={"content-type": "application/json"}).status_code == 200

    r = api.get(f"/dashboard/api/experiments/{exp['id']}/runs.csv")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert len(r.content) < 2 * len(body)
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert list(rows[0])[:10] == ["id", "state", "method", "fidelity.params", "mixture.web", "mixture.code",
                                  "mixture.papers", "mixture.math", "objective", "metric.loss/web"]
    assert list(rows[0])[10:13] == ["metric.loss/code", "metric.shared", "other_metrics"]
    assert [r["client_run_id"] for r in rows] == [f"own-{i}" for i in range(n)]
    for i, row in enumerate(rows):
        assert float(row["metric.loss/web"]) == 3.0 + i / 1000 and float(row["cost"]) == 1.5
        assert float(row["objective"]) == (3.0 + i / 1000 + 3.5) / 2 and float(row["metric.shared"]) == i / 7
        assert json.loads(row["other_metrics"]) == {f"eval/run{i}/task{k}": i + k / 10 for k in range(own)}
