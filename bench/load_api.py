"""Load figures for one API process on PostgreSQL: run reports, batch imports and suggestions per second.

One ``mixopt serve`` process (one uvicorn worker) on a scratch PostgreSQL database, on loopback; the load
generator is a separate process (asyncio on bare streams, ``bench/rawhttp.py``: httpx would cost the shared
two cores more CPU per request than the API itself), so the API has its own interpreter and GIL. Every phase
sends a fixed number of requests under a time bound and stops by itself; afterwards the runs stored in the
database are counted against the runs sent. The experiment is RegMix-shaped: 17 domains, 3 loss metrics.

    python bench/load_api.py [--reports 4000] [--levels 1,8,32] [--batches 5] [--suggestions 200]

Phases:
  reports      single ``POST /runs`` with client_run_ids, at several concurrency levels: runs/s, p50/p99;
               then at concurrency 8 spread over 8 experiments
  batch        ``POST /runs:batch`` of 10,000 runs, one at a time: runs/s
  suggest      ``POST /suggestions`` (count 1, ``design``): computed per request, one lock per experiment
  cached       ``POST /suggestions`` (count 1, a client_id each) served from a ready queue filled beforehand
               (the cached path: one claiming UPDATE, no model); every answer is checked to be a queued run;
               then each trainer reports its run's result by id

Rate limiting is switched off (``MIXOPT_RATE_LIMIT_PER_S=0``): the default per-caller limit (1000/s) would
otherwise be what the single-client generator measures. Prints a table, writes bench/results/load_api.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import sqlalchemy as sa

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.rawhttp import HTTPConnection  # noqa: E402
from migrations import upgrade  # noqa: E402

PG_ADMIN = os.environ.get("MIXOPT_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
DOMAINS = [
    f"pile_{n}"
    for n in (
        "cc",
        "github",
        "arxiv",
        "books3",
        "pubmed_central",
        "freelaw",
        "uspto",
        "stackexchange",
        "wikipedia",
        "openwebtext2",
        "dm_mathematics",
        "hackernews",
        "enron",
        "europarl",
        "philpapers",
        "nih_exporter",
        "gutenberg",
    )
]
METRICS = ["loss/pile_cc", "loss/github", "loss/arxiv"]
BATCH = 10_000


def experiment_body(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "domains": [{"name": d} for d in DOMAINS],
        "objective": {"metrics": METRICS, "aggregate": "mean"},
        "fidelities": [{"name": "params", "min": 1e6, "max": 1e9, "target": 1e9}],
        "search": {"initial_runs": 10**5},
    }  # design stays the method: the bench measures the API, not fits


def report(i: int, prefix: str, rng: np.random.Generator) -> dict[str, Any]:
    w = rng.dirichlet(np.ones(len(DOMAINS)))
    return {
        "mixture": dict(zip(DOMAINS, w.tolist(), strict=True)),
        "fidelity": {"params": 1e6},
        "metrics": {m: float(3 + rng.random()) for m in METRICS},
        "cost": 1.0,
        "client_run_id": f"{prefix}-{i}",
    }


# ------------------------------------------------------------------------------------- load generator
Send = Callable[[HTTPConnection, int], Awaitable[int]]


async def _closed_loop(
    address: tuple[str, int], n: int, concurrency: int, time_bound_s: float, send: Send
) -> tuple[list[float], list[int], float]:
    """``concurrency`` workers, each on its own keep-alive connection, send requests ``0..n-1`` back to
    back; latencies in ms, statuses (0: transport error), wall s."""
    latencies: list[float] = []
    statuses: list[int] = []
    counter = iter(range(n))
    conns = [await HTTPConnection.open(*address) for _ in range(concurrency)]
    t0 = time.perf_counter()
    deadline = t0 + time_bound_s

    async def worker(conn: HTTPConnection) -> None:
        for i in counter:
            if time.perf_counter() > deadline:
                return
            t = time.perf_counter()
            try:
                status = await send(conn, i)
            except (OSError, asyncio.IncompleteReadError, ValueError):
                status = 0
                conn = await HTTPConnection.open(*address)
            latencies.append(1000 * (time.perf_counter() - t))
            statuses.append(status)

    await asyncio.gather(*(worker(c) for c in conns))
    wall = time.perf_counter() - t0
    for c in conns:
        await c.close()
    return latencies, statuses, wall


def _summary(
    phase: str,
    concurrency: int,
    unit: str,
    per_request: int,
    lat: list[float],
    statuses: list[int],
    wall: float,
) -> dict[str, Any]:
    ok = sum(1 for s in statuses if 200 <= s < 300)
    arr = np.array(lat) if lat else np.zeros(1)
    return {
        "phase": phase,
        "concurrency": concurrency,
        "requests": len(statuses),
        "errors": len(statuses) - ok,
        "statuses": {str(k): v for k, v in sorted(Counter(statuses).items())},
        "unit": unit,
        "per_s": ok * per_request / wall,
        "requests_per_s": len(statuses) / wall,
        "p50_ms": float(np.percentile(arr, 50)),
        "p99_ms": float(np.percentile(arr, 99)),
        "max_ms": float(arr.max()),
        "wall_s": wall,
        "load_avg_1m": os.getloadavg()[0],
    }


async def _generate(address: tuple[str, int], plan: dict[str, Any]) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    sent: dict[str, int] = {}
    async def call(method: str, path: str, payload: Any) -> tuple[int, Any]:
        # A connection per set-up call: one kept across phases would outlive the server's keep-alive.
        conn = await HTTPConnection.open(*address)
        try:
            return await conn.request_json(method, path, payload)
        finally:
            await conn.close()

    async def create(name: str) -> str:
        status, body = await call("POST", "/v1/experiments", experiment_body(name))
        assert status == 201, body
        return str(body["id"])

    def encoded(prefix: str, n: int) -> list[bytes]:
        # Bodies are encoded before the clock starts: the generator's JSON work is not the server's.
        return [json.dumps(report(i, prefix, rng)).encode() for i in range(n)]

    def poster(exp_ids: list[str], bodies: list[bytes]) -> Send:
        async def send(conn: HTTPConnection, i: int) -> int:
            exp_id = exp_ids[i % len(exp_ids)]
            sent[exp_id] = sent.get(exp_id, 0) + 1
            return (await conn.request("POST", f"/v1/experiments/{exp_id}/runs", bodies[i]))[0]
        return send

    rng = np.random.default_rng(0)
    warm = await create("warm-up")
    await _closed_loop(address, 300, 8, 30, poster([warm], encoded("warm", 300)))  # first-request costs
    sent.pop(warm)
    for level in plan["levels"]:
        exp = await create(f"reports-c{level}")
        lat, st, wall = await _closed_loop(address, plan["reports"], level, plan["time_bound_s"],
                                           poster([exp], encoded(f"c{level}", plan["reports"])))
        rows.append(_summary("reports", level, "runs", 1, lat, st, wall))

    # The same load spread over 8 experiments: reports of one experiment share its row lock (data_version).
    spread = [await create(f"spread-{k}") for k in range(8)]
    lat, st, wall = await _closed_loop(address, plan["reports"], 8, plan["time_bound_s"],
                                       poster(spread, encoded("spread", plan["reports"])))
    rows.append(_summary("reports, 8 experiments", 8, "runs", 1, lat, st, wall))

    exp = await create("batch")
    batches = [json.dumps({"runs": [report(i, f"b{k}", rng) for i in range(BATCH)]}).encode()
               for k in range(plan["batches"])]

    async def send_batch(conn: HTTPConnection, k: int) -> int:
        return (await conn.request("POST", f"/v1/experiments/{exp}/runs:batch", batches[k]))[0]

    lat, st, wall = await _closed_loop(address, plan["batches"], 1, plan["time_bound_s"], send_batch)
    rows.append(_summary("batch of 10,000", 1, "runs", BATCH, lat, st, wall))
    sent[exp] = sum(BATCH for s in st if 200 <= s < 300)

    suggest_exp = await create("suggest")
    suggest_body = json.dumps({"count": 1, "method": "design"}).encode()

    async def send_suggest(conn: HTTPConnection, _: int) -> int:
        return (await conn.request("POST", f"/v1/experiments/{suggest_exp}/suggestions", suggest_body))[0]

    lat, st, wall = await _closed_loop(address, plan["suggestions"], 4, plan["time_bound_s"], send_suggest)
    rows.append(_summary("suggest (design, computed)", 4, "suggestions", 1, lat, st, wall))

    # Cached suggestions: a ready queue filled beforehand (as a re-optimization policy keeps it), then
    # trainers take one run each with POST /suggestions; every answer must come from the queue.
    ready_exp = await create("ready-queue")
    queued = set(await asyncio.to_thread(_fill_ready_queue, plan["database_url"], ready_exp, plan["claims"]))
    claimed: list[str] = []

    async def claim(conn: HTTPConnection, i: int) -> int:
        status, raw = await conn.request("POST", f"/v1/experiments/{ready_exp}/suggestions",
                                         b'{"count": 1, "client_id": "trainer-%d"}' % i)
        if status == 201:
            claimed.append(json.loads(raw)["runs"][0]["id"])
        return status

    lat, st, wall = await _closed_loop(address, plan["claims"], 8, plan["time_bound_s"], claim)
    rows.append({**_summary("suggest (ready queue, cached)", 8, "suggestions", 1, lat, st, wall),
                 "served_from_queue": len(queued.intersection(claimed))})

    # The trainers report their results on the runs they took, by id: the usual end of the loop.
    results = [json.dumps({"id": rid, "metrics": {m: float(3 + rng.random()) for m in METRICS}, "cost": 1.0}
                          ).encode() for rid in claimed]

    async def report_result(conn: HTTPConnection, i: int) -> int:
        status = (await conn.request("POST", f"/v1/experiments/{ready_exp}/runs", results[i]))[0]
        sent[ready_exp] = sent.get(ready_exp, 0) + (status == 200)
        return status

    lat, st, wall = await _closed_loop(address, len(results), 8, plan["time_bound_s"], report_result)
    rows.append(_summary("reports on suggested runs", 8, "runs", 1, lat, st, wall))
    return {"rows": rows, "sent": sent}


def _fill_ready_queue(database_url: str, exp_id: str, n: int) -> list[str]:
    """``n`` waiting ready-queue runs, proposed the way a re-optimization policy's top-up does."""
    from service.db import make_engine, make_session_factory
    from service.operations.refit import top_up_ready_queue
    from service.store import Store

    engine = make_engine(database_url)
    store = Store(engine, make_session_factory(engine))
    try:
        return top_up_ready_queue(store, store.get_experiment(exp_id), n, "design", 0, "bench")
    finally:
        engine.dispose()


def generate(address: tuple[str, int], plan: dict[str, Any]) -> dict[str, Any]:
    """Entry point of the generator process."""
    return asyncio.run(_generate(address, plan))


# ------------------------------------------------------------------------------------------ the run
def start_api(database_url: str, port: int, log: Path, workers: int = 1) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "MIXOPT_DATABASE_URL": database_url,
        "MIXOPT_LOG_LEVEL": "WARNING",
        "MIXOPT_LOG_JSON": "false",
        "MIXOPT_RATE_LIMIT_PER_S": "0",
        "PYTHONPATH": str(REPO),
    }
    proc = subprocess.Popen(
        [sys.executable, "-c", "from service.cli import main; main()", "serve", "--port", str(port),
         "--workers", str(workers)],
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.TransportError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"API did not start: {log.read_text()[-2000:]}")


def stored_runs(database_url: str, experiment_ids: list[str]) -> dict[str, int]:
    engine = sa.create_engine(database_url)
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT experiment_id, count(*) FROM runs WHERE state = 'completed' GROUP BY experiment_id")
        ).all()
    engine.dispose()
    counts = dict(rows)
    return {e: int(counts.get(e, 0)) for e in experiment_ids}


def machine() -> dict[str, Any]:
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    return {"cpus": os.cpu_count(), "cpu_model": model, "python": platform.python_version()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reports", type=int, default=4000, help="single reports per concurrency level")
    ap.add_argument("--levels", default="1,8,32", help="concurrency levels of the single-report phase")
    ap.add_argument("--batches", type=int, default=5, help="10,000-run batches to import")
    ap.add_argument("--suggestions", type=int, default=200)
    ap.add_argument("--claims", type=int, default=3000, help="suggestions taken from the ready queue")
    ap.add_argument("--time-bound", type=float, default=60.0, help="seconds per phase at most")
    ap.add_argument("--api-workers", type=int, default=1,
                    help="uvicorn worker processes of the API (the issue's target is for one)")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "load_api.json")
    args = ap.parse_args()
    plan = {
        "reports": args.reports,
        "levels": [int(x) for x in args.levels.split(",")],
        "batches": args.batches,
        "suggestions": args.suggestions,
        "claims": args.claims,
        "time_bound_s": args.time_bound,
        "api_workers": args.api_workers,
    }

    admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    name = f"mixopt_bench_{uuid.uuid4().hex[:8]}"
    with admin.connect() as c:
        c.execute(sa.text(f'CREATE DATABASE "{name}"'))
    database_url = PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"
    plan["database_url"] = database_url
    proc = None
    try:
        upgrade(database_url)
        with tempfile.TemporaryDirectory() as tmp:
            port = _free_port()
            proc = start_api(database_url, port, Path(tmp) / "api.log", args.api_workers)
            load_before = os.getloadavg()
            with multiprocessing.get_context("spawn").Pool(1) as pool:
                result = pool.apply(generate, (("127.0.0.1", port), plan))
            load_after = os.getloadavg()
            if any(r["errors"] for r in result["rows"]):
                print((Path(tmp) / "api.log").read_text()[-4000:], file=sys.stderr)
        stored = stored_runs(database_url, list(result["sent"]))
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(30)
        with admin.connect() as c:
            c.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    rows = result["rows"]
    lost = {e: result["sent"][e] - stored[e] for e in stored}
    print(
        f"{'phase':<28}{'conc':>5}{'requests':>9}{'errors':>7}{'per s':>10}  {'unit':<12}{'p50 ms':>8}"
        f"{'p99 ms':>8}{'load':>6}"
    )
    for r in rows:
        print(
            f"{r['phase']:<28}{r['concurrency']:>5}{r['requests']:>9}{r['errors']:>7}{r['per_s']:>10.0f}  "
            f"{r['unit']:<12}{r['p50_ms']:>8.1f}{r['p99_ms']:>8.1f}{r['load_avg_1m']:>6.1f}"
        )
    print(f"runs sent vs stored: {sum(result['sent'].values())} vs {sum(stored.values())} (lost: {sum(lost.values())})")
    out = args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "machine": machine(),
                "load_avg_before": load_before,
                "load_avg_after": load_after,
                "plan": plan,
                "rows": rows,
                "sent": result["sent"],
                "stored": stored,
                "lost": lost,
            },
            indent=2,
        )
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


if __name__ == "__main__":
    main()
