"""The client package's conveniences: typed errors, ``wait`` with progress, ``runs_frame``.

Error answers come from a live server where the server can be made to give them, and from a stand-in
transport for the ones it gives only under failure (503, 507, 500).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from mixopt_client import (
    ConflictError,
    JobFailedError,
    MixoptClient,
    MixoptError,
    NoFeasibleMixtureError,
    NotEnoughDataError,
    NotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    RateLimitedError,
    ServerError,
    StorageFullError,
    UnauthenticatedError,
    UnavailableError,
    ValidationError,
    stderr_progress,
)

from service.api.embedded import embedded_server
from service.db import make_engine, make_session_factory
from service.settings import Settings
from service.store.tokens import Tokens
from tests.service.helpers import DOMAINS, spec, synthetic_losses


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One live server for the module: the client's behaviour does not depend on the database kind."""
    url = f"sqlite:///{tmp_path_factory.mktemp('client') / 'client.db'}"
    with embedded_server(Settings(database_url=url, auto_migrate=True, seed=1234, sync_budget_s=30.0)) as base:
        yield base


@pytest.fixture
def mx(server: str) -> Iterator[MixoptClient]:
    with MixoptClient(server, retries=0) as client:
        yield client


def seed(mx: MixoptClient, exp_id: str, n: int, metrics: Callable[[np.ndarray], dict[str, float]] = synthetic_losses
         ) -> None:
    rng = np.random.default_rng(0)
    for w in rng.dirichlet(np.ones(len(DOMAINS)), size=n):
        mx.report(exp_id, mixture=dict(zip(DOMAINS, w.tolist(), strict=True)), fidelity={"params": 1e6},
                  metrics=metrics(w), cost=1.0)


# ------------------------------------------------------------------------------------------ typed errors
def test_live_error_answers_raise_typed_exceptions(mx: MixoptClient) -> None:
    with pytest.raises(NotFoundError) as missing:
        mx.get_experiment("exp_does_not_exist")
    assert missing.value.status == 404 and missing.value.code == "not_found"

    exp = mx.create_experiment(spec("typed-errors"))
    with pytest.raises(ConflictError) as duplicate:
        mx.create_experiment(spec("typed-errors"))
    assert duplicate.value.code == "duplicate_name" and duplicate.value.field == "name"

    with pytest.raises(ValidationError) as invalid:
        mx.report(exp["id"], mixture={"web": 0.7, "code": -0.1, "papers": 0.3, "math": 0.1},
                  fidelity={"params": 1e6}, metrics={"loss/web": 3.0, "loss/code": 3.1})
    assert invalid.value.status == 422 and invalid.value.field == "mixture.code"

    with pytest.raises(NotEnoughDataError) as early:
        mx.predict(exp["id"], [{"web": 0.4, "code": 0.3, "papers": 0.2, "math": 0.1}], method="regmix")
    assert isinstance(early.value, ConflictError) and early.value.code == "not_enough_data"


def test_no_feasible_mixture_raises_its_own_conflict_and_the_front_is_read(mx: MixoptClient) -> None:
    impossible = {"metrics": ["loss/code"], "aggregate": "single",
                  "constraints": [{"metric": "loss/web", "op": "<=", "bound": 1.0}]}
    exp = mx.create_experiment(spec("no-feasible", fidelities=[], objective=impossible))
    mx.import_runs(exp["id"], [{"mixture": dict(zip(DOMAINS, w.tolist(), strict=True)), "metrics": synthetic_losses(w)}
                               for w in np.random.default_rng(0).dirichlet(np.ones(4), 20)])
    with pytest.raises(NoFeasibleMixtureError) as none:
        mx.recommendation(exp["id"])
    assert isinstance(none.value, ConflictError) and none.value.field == "objective.constraints"
    front = mx.pareto(exp["id"], method="regmix", candidates=500, seed=0)
    assert [a["name"] for a in front["axes"]] == ["objective", "loss/web"] and front["axes"][1]["bound"] == 1.0
    assert front["front"] and all(p["feasibility"] < 0.5 for p in front["front"])


def test_auth_size_and_rate_limits_raise_typed_exceptions(tmp_path: Any) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path}/limits.db", auto_migrate=True, auth="required",
                        max_body_bytes=2_000, rate_limit_per_s=0.01, rate_limit_burst=1)
    with embedded_server(settings) as url:
        with MixoptClient(url, token="", retries=0) as anonymous, pytest.raises(UnauthenticatedError) as denied:
            anonymous.get_experiment("exp_x")
        assert denied.value.code == "unauthenticated"
        engine = make_engine(settings.database_url)
        token = Tokens(make_session_factory(engine)).create("default", ["write"]).token
        engine.dispose()
        with MixoptClient(url, token=token, retries=0) as client:
            with pytest.raises(PayloadTooLargeError) as big:
                client.create_experiment(spec("big", metadata={"notes": "x" * 5_000}))
            assert big.value.code == "payload_too_large"
            with pytest.raises(RateLimitedError) as limited:  # the burst of 1 went to the call above
                client.get_experiment("exp_x")
            assert limited.value.code == "rate_limited" and limited.value.retry_after is not None
            assert limited.value.retry_after >= 1


def answering(status: int, body: Any, headers: dict[str, str] | None = None) -> httpx.MockTransport:
    return httpx.MockTransport(lambda request: httpx.Response(status, json=body, headers=headers))


@pytest.mark.parametrize(("status", "code", "expected"), [
    (400, "malformed_body", ValidationError), (403, "insufficient_scope", PermissionDeniedError),
    (503, "database_unavailable", UnavailableError), (507, "storage_full", StorageFullError),
    (500, "internal_error", ServerError), (418, "teapot", MixoptError),
])
def test_each_status_maps_to_its_exception(status: int, code: str, expected: type[MixoptError]) -> None:
    body = {"error": {"code": code, "message": "m", "field": None, "request_id": "req-1"}}
    with MixoptClient("http://mixopt.test", transport=answering(status, body, {"retry-after": "7"}),
                      retries=0) as client, pytest.raises(MixoptError) as raised:
        client.get_experiment("exp_x")
    assert type(raised.value) is expected
    assert (raised.value.status, raised.value.code, raised.value.request_id) == (status, code, "req-1")
    if isinstance(raised.value, UnavailableError):
        assert raised.value.retry_after == 7.0


def test_an_answer_without_the_error_shape_still_raises_by_status() -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(502, text="<html>bad gateway</html>"))
    with MixoptClient("http://mixopt.test", transport=transport, retries=0) as client, \
            pytest.raises(ServerError) as raised:
        client.get_experiment("exp_x")
    assert raised.value.code == "http_error" and "bad gateway" in raised.value.message


def test_a_retryable_answer_is_sent_again_after_its_retry_after() -> None:
    answers = iter([httpx.Response(503, json={"error": {"code": "database_unavailable", "message": "m",
                                                        "field": None}}, headers={"retry-after": "0"}),
                    httpx.Response(200, json={"id": "exp_x"})])
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return next(answers)

    with MixoptClient("http://mixopt.test", transport=httpx.MockTransport(handler), retries=1) as client:
        assert client.get_experiment("exp_x") == {"id": "exp_x"}
    assert len(seen) == 2


# ------------------------------------------------------------------------------------------------- wait
def test_wait_reports_every_polled_state_until_the_job_succeeds(mx: MixoptClient,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    exp = mx.create_experiment(spec("wait"))
    seed(mx, exp["id"], 24)
    accepted = mx.request("POST", f"/v1/experiments/{exp['id']}/refits",
                          json={"method": "regmix", "laws": ["regmix_linear"]}).json()
    seen: list[dict[str, Any]] = []

    def progress(job: dict[str, Any]) -> None:
        seen.append(job)
        stderr_progress(job)

    final = mx.wait(accepted, poll_s=0.05, on_progress=progress)
    assert final["state"] == "succeeded" and final["progress"] == 1.0
    assert seen[-1] == final and all(s["id"] == accepted["job"]["id"] for s in seen)
    assert [s["progress"] for s in seen] == sorted(s["progress"] for s in seen)
    line = capsys.readouterr().err.rsplit("\r", 1)[-1]
    assert line == f"job {final['id']} (refit): succeeded 100%\n"


def test_wait_raises_job_failed_with_the_jobs_error() -> None:
    job = {"id": "job_1", "kind": "refit", "state": "failed", "progress": 0.3, "error": "law fit diverged"}
    with MixoptClient("http://mixopt.test", transport=answering(200, job)) as client, \
            pytest.raises(JobFailedError) as failed:
        client.wait("job_1")
    assert failed.value.message == "law fit diverged" and failed.value.job == job


# ------------------------------------------------------------------------------------------- runs_frame
def test_runs_frame_has_mixture_fidelity_and_metric_columns(mx: MixoptClient) -> None:
    exp = mx.create_experiment(spec("frame"))
    seed(mx, exp["id"], 3)
    extra = mx.report(exp["id"], mixture={"web": 0.25, "code": 0.25, "papers": 0.25, "math": 0.25},
                      fidelity={"params": 6e7}, metrics={"loss/web": 3.5, "loss/code": 3.4, "acc/arc": 0.3}, cost=60)
    pending = mx.suggest(exp["id"], 2)
    frame = mx.runs_frame(exp["id"])
    runs = mx.list_runs(exp["id"])
    assert list(frame.index) == [r["id"] for r in runs] and frame.index.name == "id"
    assert [c for c in frame.columns if c.startswith("mixture.")] == [f"mixture.{d}" for d in DOMAINS]
    assert [c for c in frame.columns if c.startswith(("fidelity.", "metrics."))] == [
        "fidelity.params", "metrics.acc/arc", "metrics.loss/code", "metrics.loss/web"]
    for r in runs:
        row = frame.loc[r["id"]]
        assert row["state"] == r["state"]
        assert [row[f"mixture.{d}"] for d in DOMAINS] == [r["mixture"][d] for d in DOMAINS]
        assert row["fidelity.params"] == r["fidelity"]["params"]
    assert frame.loc[extra["id"], "metrics.acc/arc"] == 0.3 and frame.loc[extra["id"], "cost"] == 60
    assert frame.loc[[s.id for s in pending], "metrics.loss/web"].isna().all()
    assert frame["metrics.loss/web"].dtype == np.float64
    assert isinstance(frame["created_at"].dtype, pd.DatetimeTZDtype)
    assert list(mx.runs_frame(exp["id"], state=["suggested"]).index) == [s.id for s in pending]


def test_runs_frame_without_pandas_says_how_to_install_it(mx: MixoptClient, monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(ImportError, match=r"pip install 'mixopt-client\[pandas\]'"):
        mx.runs_frame("exp_x")


def test_a_warm_start_transfer_is_idempotent_and_its_runs_are_listed_by_source(mx: MixoptClient) -> None:
    old = mx.create_experiment(spec("transfer-source", fidelities=[]))
    mx.import_runs(old["id"], [{"mixture": dict(zip(DOMAINS, w.tolist(), strict=True)), "metrics": synthetic_losses(w)}
                               for w in np.random.default_rng(1).dirichlet(np.ones(4), 3)])
    new = mx.create_experiment(spec("transfer-target", fidelities=[]))
    first = mx.transfer(new["id"], old["id"], weight=0.5)
    assert first["transferred"] == 3 and first["weight"] == 0.5
    again = mx.transfer(new["id"], old["id"])
    assert again["transferred"] == 0 and again["skipped"]["already_transferred"] == 3
    runs = mx.list_transferred_runs(new["id"], page_size=2)  # two pages
    assert len(runs) == 3 and {r["source_experiment_id"] for r in runs} == {old["id"]}
    assert mx.list_transferred_runs(new["id"], source_experiment_id=new["id"]) == []
    assert mx.get_experiment(new["id"])["run_counts"]["completed"] == 0
