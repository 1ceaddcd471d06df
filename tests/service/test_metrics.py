"""``/metrics``: Prometheus text with request latency by route template, run reports, queue depth, job
durations and fit fidelity read from the database (SQLite and PostgreSQL), public or behind a token."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from service.api.app import create_app
from service.api.metrics import DatabaseCollector
from service.db import make_engine
from service.settings import Settings
from service.store import Store
from service.store.models import Fit, Job, new_id, utcnow
from tests.service.helpers import DOMAINS, create, seed_runs


def scrape(api: TestClient, **headers: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    r = api.get("/metrics", headers=headers)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(r.text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append((sample.labels, sample.value))
    return out


def value(samples: dict[str, list[tuple[dict[str, str], float]]], name: str, **labels: str) -> float | None:
    for got, v in samples.get(name, []):
        if all(got.get(k) == want for k, want in labels.items()):
            return v
    return None


def _store(api: TestClient) -> Store:
    return api.app.state.mixopt.store  # type: ignore[attr-defined, no-any-return]


def test_request_latency_is_labelled_by_route_template_and_status(api: TestClient) -> None:
    exp = create(api)
    seed_runs(api, exp["id"], 5)
    mix = dict(zip(DOMAINS, [0.4, 0.3, 0.2, 0.1], strict=True))
    one = {"mixture": mix, "fidelity": {"params": 1e6}, "metrics": {"loss/web": 3.0, "loss/code": 3.1}}
    assert api.post(f"/v1/experiments/{exp['id']}/runs", json=one).status_code == 201
    api.get(f"/v1/experiments/{exp['id']}")
    api.get(f"/v1/experiments/{exp['id']}")
    api.get("/v1/experiments/exp_missing")
    api.get("/no/such/path")
    m = scrape(api)
    count = "mixopt_http_request_duration_seconds_count"
    assert value(m, count, method="GET", route="/v1/experiments/{experiment_id}", status="200") == 2
    assert value(m, count, method="GET", route="/v1/experiments/{experiment_id}", status="404") == 1
    batch = "/v1/experiments/{experiment_id}/runs:batch"
    assert value(m, count, method="POST", route=batch, status="200") == 1
    assert value(m, count, method="GET", route="unmatched", status="404") == 1
    text = api.get("/metrics").text
    assert exp["id"] not in text.split("mixopt_fit_cv_spearman")[0], "a raw path leaked into a label"
    assert value(m, "mixopt_runs_reported_total", endpoint="batch") == 5
    assert value(m, "mixopt_runs_reported_total", endpoint="report") == 1
    assert value(m, "mixopt_runs_created_total", endpoint="batch") == 5
    assert value(m, "mixopt_metrics_database_up") == 1


def test_queue_depth_and_job_durations_come_from_the_job_rows(api: TestClient) -> None:
    exp = create(api)
    store = _store(api)
    for _ in range(2):
        store.create_job("refit", exp["id"], {})
    store.create_job("propose", exp["id"], {})
    now = utcnow()
    with store.factory() as s, s.begin():
        for kind, state, seconds in (("refit", "succeeded", 0.3), ("refit", "succeeded", 42.0),
                                     ("refit", "failed", 7.0), ("propose", "succeeded", 2.0)):
            s.add(Job(id=new_id("job"), kind=kind, experiment_id=exp["id"], state=state, params={},
                      attempts=1, started_at=now - timedelta(seconds=seconds), finished_at=now))
        s.add(Job(id=new_id("job"), kind="refit", experiment_id=exp["id"], state="running", params={},
                  attempts=1, started_at=now))
    m = scrape(api)
    assert value(m, "mixopt_jobs_queued", kind="refit") == 2
    assert value(m, "mixopt_jobs_queued", kind="propose") == 1
    assert value(m, "mixopt_jobs_running", kind="refit") == 1
    hist = "mixopt_job_duration_seconds"
    assert value(m, f"{hist}_count", kind="refit", outcome="succeeded") == 2
    assert value(m, f"{hist}_sum", kind="refit", outcome="succeeded") == pytest.approx(42.3, abs=1e-3)
    assert value(m, f"{hist}_bucket", kind="refit", outcome="succeeded", le="0.1") == 0
    assert value(m, f"{hist}_bucket", kind="refit", outcome="succeeded", le="0.5") == 1
    assert value(m, f"{hist}_bucket", kind="refit", outcome="succeeded", le="30.0") == 1
    assert value(m, f"{hist}_bucket", kind="refit", outcome="succeeded", le="60.0") == 2
    assert value(m, f"{hist}_bucket", kind="refit", outcome="succeeded", le="+Inf") == 2
    assert value(m, f"{hist}_count", kind="refit", outcome="failed") == 1
    assert value(m, f"{hist}_count", kind="propose", outcome="succeeded") == 1


def test_jobs_run_in_process_are_observed(api: TestClient) -> None:
    exp = create(api)
    r = api.post(f"/v1/experiments/{exp['id']}/suggestions", json={"count": 2, "method": "design"})
    assert r.status_code == 201, r.text
    m = scrape(api)
    assert value(m, "mixopt_job_duration_seconds_count", kind="propose", outcome="succeeded") == 1
    assert value(m, "mixopt_jobs_queued", kind="propose") is None


def _fit(exp_id: str, law: str, selected: bool, spearman: float, version: int) -> Fit:
    return Fit(id=new_id("fit"), experiment_id=exp_id, job_id=None, law=law, selected=selected, n_runs=10,
               data_version=version, scores={"cv": {"from_metrics": {"spearman": spearman, "mae": 0.1},
                                                    "direct": {"spearman": spearman - 0.1}}},
               params={}, duration_s=0.1, device="cpu")


def test_fit_fidelity_is_the_latest_selected_law_per_active_experiment(api: TestClient) -> None:
    store = _store(api)
    a, b, gone = create(api, name="a"), create(api, name="b"), create(api, name="archived")
    store.apply_refit(a["id"], [_fit(a["id"], "regmix_linear", True, 0.41, 1),
                                _fit(a["id"], "bimix", False, 0.99, 1)], 1, {})
    store.apply_refit(a["id"], [_fit(a["id"], "data_mixing_law", True, 0.87, 2)], 2, {})
    store.apply_refit(b["id"], [_fit(b["id"], "bimix", True, 0.55, 1)], 1, {})
    store.apply_refit(gone["id"], [_fit(gone["id"], "bimix", True, 0.2, 1)], 1, {})
    assert api.patch(f"/v1/experiments/{gone['id']}", json={"state": "archived"}).status_code == 200
    m = scrape(api)
    rho = "mixopt_fit_cv_spearman"
    latest = {"experiment_id": a["id"], "law": "data_mixing_law"}
    assert value(m, rho, **latest, route="from_metrics") == pytest.approx(0.87)
    assert value(m, rho, **latest, route="direct") == pytest.approx(0.77)
    assert value(m, rho, experiment_id=a["id"], law="regmix_linear") is None, "an older refit is exported"
    assert value(m, rho, experiment_id=a["id"], law="bimix") is None, "an unselected law is exported"
    assert value(m, rho, experiment_id=b["id"], law="bimix", route="from_metrics", project="default") == 0.55
    assert value(m, rho, experiment_id=gone["id"]) is None, "an archived experiment is exported"


def test_metrics_token_guards_the_scrape(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path}/m.db", metrics_token="scrape-secret")
    with TestClient(create_app(settings)) as api:
        r = api.get("/metrics")
        assert r.status_code == 401 and r.json()["error"]["code"] == "unauthenticated"
        assert api.get("/metrics", headers={"authorization": "Bearer wrong"}).status_code == 401
        assert value(scrape(api, authorization="Bearer scrape-secret"), "mixopt_metrics_database_up") == 1


def test_each_app_has_its_own_registry(tmp_path: Path) -> None:
    one = TestClient(create_app(Settings(database_url=f"sqlite:///{tmp_path}/one.db")))
    two = TestClient(create_app(Settings(database_url=f"sqlite:///{tmp_path}/two.db")))
    with one, two:
        exp = create(one)
        seed_runs(one, exp["id"], 3)
        assert value(scrape(one), "mixopt_runs_reported_total", endpoint="batch") == 3
        assert value(scrape(two), "mixopt_runs_reported_total", endpoint="batch") is None


def test_a_scrape_answers_when_the_database_is_down(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/no/such/dir/x.db")
    families: list[Any] = list(DatabaseCollector(engine).collect())
    assert [(f.name, f.samples[0].value) for f in families] == [("mixopt_metrics_database_up", 0.0)]
