"""Faults under traffic: the database restarting, SQLite running out of disk, the job broker missing.

Each fault must give the client a clean, retryable answer in the API's error shape (never a 500 traceback
or a hang), and leave nothing half written. A killed worker and Redis going down while the API runs are
covered in tests/workers (test_celery.py, test_redis_down.py); here the broker is missing from the start.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from service.api.app import create_app
from service.settings import Settings
from tests.hardening.procs import ApiServer, PrivatePostgres
from tests.hardening.proxy import BlackHoleProxy
from tests.service.helpers import create, seed_runs, spec, state_of
from tests.workers.procs import free_port

GOOD = {
    "mixture": {"web": 0.4, "code": 0.3, "papers": 0.2, "math": 0.1},
    "fidelity": {"params": 1e6},
    "metrics": {"loss/web": 3.1, "loss/code": 3.3},
}
BATCH = 500


@dataclass
class Traffic:
    """Clients sending single reports and batch imports in a loop, noting every answer with the phase it
    arrived in; requests that failed are kept for the retry that must succeed once the database is back."""

    url: str
    experiment_id: str
    phase: str = "up"
    answers: list[tuple[str, int, str | None, str | None]] = field(default_factory=list)
    failed: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    sent_ids: list[str] = field(default_factory=list)
    batches: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def _send(self, client: httpx.Client, path: str, body: dict[str, Any]) -> None:
        phase = self.phase
        try:
            r = client.post(path, json=body)
        except httpx.TimeoutException:
            self.answers.append((phase, 0, "timeout", None))
            self.failed.append((path, body))
            return
        code = r.json().get("error", {}).get("code") if r.status_code >= 400 else None
        self.answers.append((phase, r.status_code, code, r.headers.get("retry-after")))
        if r.status_code >= 300:
            self.failed.append((path, body))
            time.sleep(0.05)  # a client backing off; keeps the retry list short

    def reporter(self, name: str) -> None:
        with httpx.Client(base_url=self.url, timeout=10) as client:
            i = 0
            while not self.stop.is_set():
                cid = f"{name}-{i}"
                self.sent_ids.append(cid)
                self._send(
                    client, f"/v1/experiments/{self.experiment_id}/runs", {**GOOD, "client_run_id": cid}
                )
                i += 1

    def importer(self) -> None:
        with httpx.Client(base_url=self.url, timeout=10) as client:
            i = 0
            while not self.stop.is_set():
                prefix = f"batch{i}-"
                self.batches.append(prefix)
                runs = [{**GOOD, "client_run_id": f"{prefix}{k}"} for k in range(BATCH)]
                self._send(client, f"/v1/experiments/{self.experiment_id}/runs:batch", {"runs": runs})
                i += 1


def _client_run_id_counts(url: str, experiment_id: str) -> dict[str, int]:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT client_run_id, count(*) FROM runs WHERE experiment_id = :e GROUP BY client_run_id"
            ),
            {"e": experiment_id},
        ).all()
    engine.dispose()
    return {cid: n for cid, n in rows}


@pytest.mark.postgres
def test_a_database_restart_mid_traffic_answers_503_and_retries_succeed(
    private_postgres: PrivatePostgres, api_server: Callable[..., ApiServer]
) -> None:
    db_url = private_postgres.create_database("mixopt")
    server = api_server(db_url)
    exp = create(httpx.Client(base_url=server.url, timeout=30), name="restart")  # type: ignore[arg-type]
    traffic = Traffic(server.url, exp["id"])
    threads = [threading.Thread(target=traffic.reporter, args=(f"r{i}",)) for i in range(2)]
    threads.append(threading.Thread(target=traffic.importer))
    for t in threads:
        t.start()
    try:
        time.sleep(1.5)
        traffic.phase = "stopping"
        private_postgres.stop("fast")
        traffic.phase = "down"
        time.sleep(1.5)
        assert httpx.get(f"{server.url}/readyz", timeout=10).status_code == 503
        traffic.phase = "starting"
        private_postgres.start()
        traffic.phase = "back"
        time.sleep(1.5)
    finally:
        traffic.stop.set()
        for t in threads:
            t.join(30)

    statuses = {(phase, status, code) for phase, status, code, _ in traffic.answers}
    assert not [a for a in traffic.answers if a[1] >= 500 and a[1] != 503 or a[1] == 0], statuses
    down = [a for a in traffic.answers if a[0] == "down" and a[1] >= 300]
    assert down and all(a[1:] == (503, "database_unavailable", "1") for a in down), statuses
    assert any(a[0] == "back" and a[1] in (200, 201) for a in traffic.answers), statuses

    # Nothing half written: every batch is stored whole or not at all, before any retry.
    counts = _client_run_id_counts(db_url, exp["id"])
    for prefix in traffic.batches:
        stored = sum(1 for cid in counts if cid.startswith(prefix))
        assert stored in (0, BATCH), (prefix, stored)

    with httpx.Client(base_url=server.url, timeout=30) as client:
        for path, body in traffic.failed:
            r = client.post(path, json=body)
            assert r.status_code in (200, 201), r.text
    counts = _client_run_id_counts(db_url, exp["id"])
    expected = set(traffic.sent_ids) | {f"{p}{k}" for p in traffic.batches for k in range(BATCH)}
    assert set(counts) == expected and set(counts.values()) == {1}


# ------------------------------------------------------------------------------------ black-holed database
#: More requests than the API's 40 request threads, so the pool is exhausted while they wait.
STUCK_REQUESTS = 48


def _wait_until(condition: Callable[[], bool], what: str, limit_s: float = 60.0) -> None:
    """Poll a state until it holds; ``limit_s`` only turns a hang into a failure."""
    deadline = time.monotonic() + limit_s
    while not condition():
        assert time.monotonic() < deadline, f"still waiting for {what}"
        time.sleep(0.05)


@pytest.mark.postgres
def test_a_black_holed_database_answers_503_and_probes_stay_prompt(
    postgres_db_factory: Callable[[], str], api_server: Callable[..., ApiServer]
) -> None:
    db_url = sa.make_url(postgres_db_factory())
    proxy = BlackHoleProxy((db_url.host or "127.0.0.1", db_url.port or 5432))
    try:
        proxied = db_url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
        server = api_server(proxied, MIXOPT_DB_CONNECT_TIMEOUT_S="4", MIXOPT_DB_STATEMENT_TIMEOUT_S="4",
                            MIXOPT_DB_POOL_TIMEOUT_S="4", MIXOPT_READINESS_TIMEOUT_S="2")
        client = httpx.Client(base_url=server.url, timeout=120)
        exp = create(client, name="black-hole")  # type: ignore[arg-type]
        path = f"/v1/experiments/{exp['id']}/runs"
        assert client.post(path, json={**GOOD, "client_run_id": "before"}).status_code == 201

        proxy.black_hole()
        answers: list[httpx.Response | Exception] = []

        def report(i: int) -> None:
            try:
                answers.append(client.post(path, json={**GOOD, "client_run_id": f"stuck-{i}"}))
            except httpx.HTTPError as exc:
                answers.append(exc)

        threads = [threading.Thread(target=report, args=(i,)) for i in range(STUCK_REQUESTS)]
        for t in threads:
            t.start()
        # Every request thread of the API now waits on the database (or on a connection to it).
        _wait_until(lambda: proxy.held >= 40, "the requests to reach the database")
        assert httpx.get(f"{server.url}/healthz", timeout=10).json() == {"status": "ok"}
        ready = httpx.get(f"{server.url}/readyz", timeout=10)
        assert ready.status_code == 503 and ready.json()["status"] == "unavailable", ready.text
        for t in threads:
            t.join()
        failed = [a for a in answers if isinstance(a, Exception) or a.status_code != 503]
        assert not failed, failed[:3]
        assert {(a.json()["error"]["code"], a.headers["retry-after"]) for a in answers  # type: ignore[union-attr]
                } == {("database_unavailable", "1")}

        proxy.resume()
        _wait_until(lambda: httpx.get(f"{server.url}/readyz", timeout=10).status_code == 200, "readiness")
        assert client.post(path, json={**GOOD, "client_run_id": "after"}).status_code == 201
        stored = _client_run_id_counts(db_url.render_as_string(hide_password=False), exp["id"])
        assert stored == {"before": 1, "after": 1}  # the 503s stored nothing
        client.close()
    finally:
        proxy.close()


# ----------------------------------------------------------------------------------------- disk full
def _limit_pages(api: TestClient, extra_pages: int | None) -> None:
    """Cap the SQLite file at its current size plus ``extra_pages`` on every connection (None lifts it)."""
    engine: sa.Engine = api.app.state.mixopt.store.engine  # type: ignore[attr-defined]
    with engine.connect() as conn:
        pages = conn.exec_driver_sql("PRAGMA page_count").scalar()
    limit = 2**31 - 2 if extra_pages is None else int(pages) + extra_pages

    @sa.event.listens_for(engine, "connect")
    def _cap(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.execute(f"PRAGMA max_page_count = {limit}")

    engine.dispose()  # pooled connections reconnect, and get the cap


def test_sqlite_out_of_disk_answers_507_and_keeps_what_was_stored(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path}/full.db", seed=1)
    with TestClient(create_app(settings)) as api:
        exp = create(api, name="full")
        seed_runs(api, exp["id"], 20)
        before = state_of(api, exp["id"])
        _limit_pages(api, 4)
        runs = [{**GOOD, "client_run_id": f"big-{i}"} for i in range(5000)]
        r = api.post(f"/v1/experiments/{exp['id']}/runs:batch", json={"runs": runs})
        assert r.status_code == 507, r.text
        assert r.json()["error"]["code"] == "storage_full" and "disk" in r.json()["error"]["message"]
        assert state_of(api, exp["id"]) == before  # reads still work, and nothing of the batch was kept
        _limit_pages(api, None)
        assert (
            api.post(f"/v1/experiments/{exp['id']}/runs:batch", json={"runs": runs}).json()["created"] == 5000
        )


# -------------------------------------------------------------------------------- broker missing at start
def test_an_api_started_while_the_broker_is_down_serves_reports_and_fails_suggestions_fast(
    tmp_path: Path,
) -> None:
    dead_broker = f"redis://127.0.0.1:{free_port()}/0"
    settings = Settings(database_url=f"sqlite:///{tmp_path}/nobroker.db", broker_url=dead_broker)
    with TestClient(create_app(settings)) as api:
        exp = api.post("/v1/experiments", json=spec(name="nobroker")).json()
        assert (
            api.post(f"/v1/experiments/{exp['id']}/runs", json={**GOOD, "client_run_id": "a"}).status_code
            == 201
        )
        r = api.post(f"/v1/experiments/{exp['id']}/suggestions", json={"count": 2})
        assert r.status_code == 503 and r.json()["error"]["code"] == "broker_unavailable", r.text
        assert state_of(api, exp["id"])[1]["suggested"] == 0
        assert api.get("/readyz").status_code == 200
