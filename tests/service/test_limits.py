"""Operational limits: body size, page size, per-caller rate limits, CORS, 500s without tracebacks, and
logs that never carry secrets."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from service.api.app import create_app
from service.api.limits import BodySizeLimitMiddleware
from service.api.throttle import TokenBuckets
from service.logs import JsonFormatter, RedactingFormatter, redact
from service.settings import Settings
from tests.service.helpers import create, seed_runs, spec, state_of

TOKEN = "mxo_0123456789ab_" + "S" * 43


def _app(tmp_path: Path, **overrides: Any) -> TestClient:
    settings = Settings(database_url=f"sqlite:///{tmp_path}/limits.db", seed=1, **overrides)
    return TestClient(create_app(settings))


def _assert_error(r: Any, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["code"] == code and err["message"] and "field" in err
    return err  # type: ignore[no-any-return]


# ------------------------------------------------------------------------------------------- body size
def test_body_over_the_limit_is_refused_by_content_length_and_when_streamed(tmp_path: Path) -> None:
    with _app(tmp_path, max_body_bytes=4096) as api:
        exp = create(api)
        before = state_of(api, exp["id"])
        mix = {"web": 0.25, "code": 0.25, "papers": 0.25, "math": 0.25}
        runs = [{"mixture": mix, "fidelity": {"params": 1e6},
                 "metrics": {"loss/web": 3.0, "loss/code": 3.0}, "client_run_id": f"r{i}"} for i in range(60)]
        payload = json.dumps({"runs": runs}).encode()
        assert len(payload) > 4096
        url = f"/v1/experiments/{exp['id']}/runs:batch"
        r = api.post(url, content=payload, headers={"content-type": "application/json"})
        err = _assert_error(r, 413, "payload_too_large")
        assert "4096" in err["message"] and r.headers["x-request-id"]

        def chunks() -> Iterator[bytes]:  # no Content-Length: chunked transfer encoding
            for i in range(0, len(payload), 1000):
                yield payload[i : i + 1000]

        r = api.post(url, content=chunks(), headers={"content-type": "application/json"})
        assert "content-length" not in r.request.headers
        _assert_error(r, 413, "payload_too_large")
        assert state_of(api, exp["id"]) == before, "a refused body stored something"

        small = json.dumps({"runs": runs[:10]}).encode()
        assert len(small) <= 4096
        assert api.post(url, content=small, headers={"content-type": "application/json"}).status_code == 200
        streamed = api.post(url, content=iter([small[:500], small[500:]]),
                            headers={"content-type": "application/json"})
        assert streamed.status_code == 200 and streamed.json()["existing"] == 10


def _batch_payload(n: int, domains: list[str], metrics: list[str]) -> bytes:
    """A realistic import: 17 domains, 13 metrics, two fidelity axes, cost and a client run id per run."""
    rng = np.random.default_rng(0)
    runs = [{"client_run_id": f"train_mixture_1m:{i:08d}-{rng.integers(1 << 62):x}",
             "mixture": dict(zip(domains, rng.dirichlet(np.ones(len(domains))).tolist(), strict=True)),
             "fidelity": {"params": 1e6, "tokens": 1e9},
             "metrics": {m: float(rng.uniform(2, 6)) for m in metrics}, "cost": float(rng.uniform(0.1, 10)),
             "state": "completed"} for i in range(n)]
    return json.dumps({"runs": runs}).encode()


@pytest.mark.slow
def test_the_default_limit_takes_a_full_batch_of_ten_thousand_runs_with_margin(tmp_path: Path) -> None:
    domains = [f"domain_{i:02d}" for i in range(17)]
    metrics = [f"loss/{d}" for d in domains[:12]] + ["loss/mean"]
    payload = _batch_payload(10_000, domains, metrics)
    default = Settings().max_body_bytes
    assert 4 * len(payload) <= default, f"default {default}: under 4x a {len(payload)}-byte batch"
    body = spec(name="big", domains=[{"name": d} for d in domains],
                objective={"metrics": metrics, "aggregate": "mean", "goal": "minimize"},
                fidelities=[{"name": "params", "min": 1e6, "max": 1e9, "target": 1e9},
                            {"name": "tokens", "min": 1e8, "max": 1e11, "target": 1e11}])
    with _app(tmp_path) as api:
        exp = api.post("/v1/experiments", json=body).json()
        r = api.post(f"/v1/experiments/{exp['id']}/runs:batch", content=payload,
                     headers={"content-type": "application/json"})
        assert r.status_code == 200, r.text[:500]
        assert r.json()["created"] == 10_000


def test_the_middleware_counts_every_chunk_of_a_body() -> None:
    """Unit level: a body split across ``http.request`` messages is summed; the limit is inclusive."""

    async def echo(scope: Any, receive: Any, send: Any) -> None:
        total = 0
        while True:
            msg = await receive()
            total += len(msg.get("body", b""))
            if not msg.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": str(total).encode()})

    def call(chunks: list[bytes]) -> tuple[int, bytes]:
        messages = [{"type": "http.request", "body": c, "more_body": i < len(chunks) - 1}
                    for i, c in enumerate(chunks)]
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return messages.pop(0)

        async def send(m: dict[str, Any]) -> None:
            sent.append(m)

        scope = {"type": "http", "method": "POST", "path": "/", "headers": []}
        # A thread of its own: the session's browser fixture may hold a running loop in this one.
        with ThreadPoolExecutor(1) as pool:
            pool.submit(asyncio.run, BodySizeLimitMiddleware(echo, max_bytes=100, anonymous_max_bytes=100)(
                scope, receive, send)).result()
        return sent[0]["status"], sent[1]["body"]

    assert call([b"x" * 50, b"x" * 50]) == (200, b"100")
    status, body = call([b"x" * 50, b"x" * 50, b"x"])
    assert status == 413 and json.loads(body)["error"]["code"] == "payload_too_large"


# ------------------------------------------------------------------------------------------- page size
def test_every_list_endpoint_caps_page_size_by_the_setting(tmp_path: Path) -> None:
    with _app(tmp_path, max_page_size=5) as api:
        exp = create(api)
        seed_runs(api, exp["id"], 7)
        base = f"/v1/experiments/{exp['id']}"
        for i in range(3):
            assert api.post(f"{base}/online-sessions", json={"method": "stratified",
                                                             "client_session_id": f"s{i}"}).status_code == 201
        lists = {"/v1/experiments": "experiments", f"{base}/runs": "runs", f"{base}/fits": "fits",
                 f"{base}/online-sessions": "sessions"}
        for path, key in lists.items():
            err = _assert_error(api.get(path, params={"page_size": 6}), 422, "page_size_too_large")
            assert err["field"] == "page_size" and "5" in err["message"], path
            full = api.get(path, params={"page_size": 5})
            assert full.status_code == 200 and len(full.json()[key]) <= 5, path
            assert api.get(path).status_code == 200, f"{path}: the default page must fit under a low cap"
            assert _assert_error(api.get(path, params={"page_size": 0}), 422, "invalid_input")["field"]
        runs = api.get(f"{base}/runs").json()
        assert len(runs["runs"]) == 5 and runs["next_page_token"]
        first = api.get(f"{base}/online-sessions", params={"page_size": 2}).json()
        rest = api.get(f"{base}/online-sessions", params={"page_token": first["next_page_token"]}).json()
        assert [s["id"] for s in first["sessions"] + rest["sessions"]] == \
            [s["id"] for s in api.get(f"{base}/online-sessions").json()["sessions"]]
        assert len(first["sessions"]) == 2 and rest["next_page_token"] is None


def test_the_default_cap_is_a_thousand(tmp_path: Path) -> None:
    with _app(tmp_path) as api:
        r = api.get("/v1/experiments", params={"page_size": 1001})
        err = _assert_error(r, 422, "page_size_too_large")
        assert err["field"] == "page_size"
        assert api.get("/v1/experiments", params={"page_size": 1000}).status_code == 200


# ------------------------------------------------------------------------------------------ rate limits
def test_token_bucket_refills_at_the_rate_and_bounds_its_memory() -> None:
    now = [0.0]
    buckets = TokenBuckets(rate=2.0, burst=3, max_keys=4, clock=lambda: now[0])
    assert [buckets.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert buckets.take("a") == pytest.approx(0.5)  # one token comes back every 0.5 s
    now[0] = 0.5
    assert buckets.take("a") == 0.0 and buckets.take("a") > 0
    assert buckets.take("b") == 0.0, "callers have separate buckets"
    for i in range(20):
        buckets.take(f"flood-{i}")
        now[0] += 0.01
        assert len(buckets.buckets) <= 4


def test_zero_rate_disables_the_limit(tmp_path: Path) -> None:
    with _app(tmp_path, rate_limit_per_s=0, rate_limit_burst=1) as api:
        assert all(api.get("/v1/experiments").status_code == 200 for _ in range(20))


def test_the_default_rate_limit_leaves_a_fast_orchestrator_alone(tmp_path: Path) -> None:
    with _app(tmp_path) as api:
        assert Settings().rate_limit_per_s >= 1000 and Settings().rate_limit_burst >= 2000
        assert all(api.get("/healthz").status_code == 200 for _ in range(50))
        assert all(api.get("/v1/experiments").status_code == 200 for _ in range(300))


# ------------------------------------------------------------------------------------------------- CORS
def test_no_cors_headers_by_default(tmp_path: Path) -> None:
    with _app(tmp_path) as api:
        r = api.get("/v1/experiments", headers={"origin": "https://evil.example"})
        assert r.status_code == 200
        assert not [h for h in r.headers if h.lower().startswith("access-control-")]
        pre = api.options("/v1/experiments", headers={"origin": "https://evil.example",
                                                      "access-control-request-method": "POST"})
        assert "access-control-allow-origin" not in pre.headers


def test_cors_allows_exactly_the_configured_origins(tmp_path: Path) -> None:
    with _app(tmp_path, cors_origins="https://dash.example, https://ops.example") as api:
        ok = api.get("/v1/experiments", headers={"origin": "https://dash.example"})
        assert ok.headers["access-control-allow-origin"] == "https://dash.example"
        assert "x-request-id" in ok.headers["access-control-expose-headers"]
        other = api.get("/v1/experiments", headers={"origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers
        pre = api.options("/v1/experiments", headers={"origin": "https://ops.example",
                                                      "access-control-request-method": "POST",
                                                      "access-control-request-headers": "authorization"})
        assert pre.status_code == 200 and pre.headers["access-control-allow-origin"] == "https://ops.example"
        bad = api.options("/v1/experiments", headers={"origin": "https://evil.example",
                                                      "access-control-request-method": "POST"})
        assert bad.status_code == 400


# ------------------------------------------------------------------------------- errors and secret logs
@pytest.fixture
def log_lines() -> Iterator[Callable[[], str]]:
    """Everything logged while the test runs, formatted (and redacted) as production formats it."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(RedactingFormatter(JsonFormatter()))
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield stream.getvalue
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)


def test_an_unexpected_error_is_a_500_without_traceback_logged_with_the_request_id(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, log_lines: Callable[[], str]) -> None:
    with _app(tmp_path) as api:
        store = api.app.state.mixopt.store  # type: ignore[attr-defined]

        def broken(*_: Any, **__: Any) -> Any:
            raise RuntimeError("kaboom: internal detail /srv/mixopt/secret_path.py")

        monkeypatch.setattr(store, "list_experiments", broken)
        r = api.get("/v1/experiments", headers={"x-request-id": "req-12345"})
        assert r.status_code == 500
        assert r.json() == {"error": {"code": "internal_error", "message": "internal server error",
                                      "field": None, "request_id": "req-12345"}}
        assert r.headers["x-request-id"] == "req-12345"
        assert "Traceback" not in r.text and "kaboom" not in r.text
        generated = api.get("/v1/experiments")
        assert generated.json()["error"]["request_id"] == generated.headers["x-request-id"] != "req-12345"
    records = [json.loads(line) for line in log_lines().splitlines()]
    failure = next(rec for rec in records
                   if rec["msg"] == "unhandled error" and rec.get("request_id") == "req-12345")
    assert "Traceback" in failure["exc"] and "kaboom" in failure["exc"]
    assert failure["path"] == "/v1/experiments"


def test_tokens_and_database_passwords_never_reach_the_log(
        postgres_db_factory: Callable[[], str], monkeypatch: pytest.MonkeyPatch,
        log_lines: Callable[[], str]) -> None:
    password = "-".join(("hunter2", "pw"))  # never literal: tracebacks quote source lines
    url = postgres_db_factory().replace("postgres@", f"postgres:{password}@", 1)  # trust auth ignores it
    with TestClient(create_app(Settings(database_url=url, auto_migrate=True, seed=1))) as api:
        auth = {"authorization": f"Bearer {TOKEN}"}
        assert api.get("/v1/experiments", headers=auth).status_code == 200
        store = api.app.state.mixopt.store  # type: ignore[attr-defined]

        def leaky(*_: Any, **__: Any) -> Any:
            raise RuntimeError(f"could not reach {url} with Authorization: Bearer {TOKEN}")

        monkeypatch.setattr(store, "list_experiments", leaky)
        assert api.get("/v1/experiments", headers=auth).status_code == 500
        logging.getLogger("mixopt.test").warning("settings %s token %s", url, TOKEN,
                                                 extra={"database_url": url, "headers": auth})
    text = log_lines()
    assert "mixopt api ready" in text and "unhandled error" in text, "the start-up and failure were logged"
    assert password not in text, "a database password reached the log"
    assert "S" * 43 not in text, "a token secret reached the log"
    assert "postgres:***@127.0.0.1" in text and "mxo_0123456789ab_***" in text


def test_redaction_covers_urls_auth_schemes_and_tokens() -> None:
    assert redact("redis://:pw@redis:6379/0") == "redis://:***@redis:6379/0"
    assert redact("postgresql+psycopg://u:p%40ss@db/x") == "postgresql+psycopg://u:***@db/x"
    assert redact('{"authorization": "Basic dXNlcjpwYXNz"}') == '{"authorization": "Basic ***"}'
    assert redact(f"token {TOKEN} issued") == "token mxo_0123456789ab_*** issued"
    assert redact("sqlite:///./mixopt.db and http://127.0.0.1:8000/v1") == \
        "sqlite:///./mixopt.db and http://127.0.0.1:8000/v1"
