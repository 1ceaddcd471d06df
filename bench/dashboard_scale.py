"""Dashboard at scale: endpoint latencies and page readiness with 1,000 and 10,000 runs.

``python bench/dashboard_scale.py`` prints a table and writes ``bench/results/dashboard_scale.json``.
"cold" times drop the dashboard's per-data-version cache first; "cached" ones are what polling and other
viewers see until the data changes. Runs are synthetic (17 domains, 13 metrics, 3/4 at 1M and 1/4 at 60M)
so any count can be made: the dashboard's work depends on the count and shape, not on the values.
Browser timings need Chromium.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from mixopt_client import MixoptClient

from runtables.regmix import PILE_TOKEN_SHARE, domain_specs
from service.api.dashboard.overview import OBSERVED
from service.api.embedded import embedded_server
from service.settings import Settings

DOMAINS = list(PILE_TOKEN_SHARE)
METRICS = [f"loss/{d}" for d in DOMAINS[:13]]
SIZES = (1_000, 10_000)
REPEATS = 5
OUT = Path(__file__).resolve().parent / "results" / "dashboard_scale.json"


def synthetic_runs(n: int, seed: int = 0) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    w = rng.dirichlet(np.ones(len(DOMAINS)), n)
    effect = rng.normal(0, 0.5, (len(DOMAINS), len(METRICS)))
    params = np.where(rng.random(n) < 0.75, 1e6, 6e7)
    losses = 4.0 + w @ effect - 0.3 * np.log10(params / 1e6)[:, None] + rng.normal(0, 0.02, (n, len(METRICS)))
    rows = zip(w, params, losses, strict=True)
    return [{"mixture": dict(zip(DOMAINS, wi.tolist(), strict=True)), "fidelity": {"params": float(p)},
             "metrics": dict(zip(METRICS, li.tolist(), strict=True)), "cost": float(p / 1e6),
             "client_run_id": f"s{seed}-{i}"} for i, (wi, p, li) in enumerate(rows)]


def timed(fn: Callable[[], Any]) -> float:
    """Median wall time of REPEATS calls, in milliseconds (after one warm-up call)."""
    fn()
    times = []
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        fn()
        times.append(1000 * (time.perf_counter() - t0))
    return statistics.median(times)


def browser_timings(url: str, exp_id: str) -> dict[str, float]:
    """Milliseconds from navigation until the experiment page's progress chart and runs table are drawn."""
    from playwright.sync_api import sync_playwright

    from tests.browser.conftest import CHROMIUM, launch_chromium

    if not CHROMIUM.exists():
        return {}
    out: dict[str, float] = {}
    with sync_playwright() as p:
        browser = launch_chromium(p)
        page = browser.new_page()
        for name, path, ready in (
            ("experiment_page_ms", f"/dashboard/experiments/{exp_id}",
             "[data-testid=progress-chart] circle.pt >> nth=0"),
            ("experiments_page_ms", "/dashboard", "[data-testid=experiments-table] td.num >> nth=0"),
        ):
            times = []
            for _ in range(3):
                t0 = time.perf_counter()
                page.goto(url + path)
                page.wait_for_selector(ready)
                if name == "experiment_page_ms":
                    page.wait_for_selector("[data-testid=runs-table] tbody tr")
                times.append(1000 * (time.perf_counter() - t0))
            out[name] = statistics.median(times)
        browser.close()
    return out


def measure(client: MixoptClient, url: str, n: int) -> dict[str, Any]:
    exp = client.create_experiment({
        "name": f"scale-{n}", "domains": domain_specs(DOMAINS),
        "objective": {"metrics": METRICS, "aggregate": "mean"},
        "fidelities": [{"name": "params", "min": 1e6, "max": 1e9, "target": 1e9}]})
    client.import_runs(exp["id"], synthetic_runs(n))
    base = f"/dashboard/api/experiments/{exp['id']}"

    def get(path: str, **params: Any) -> Any:
        return client.request("GET", path, params=params)

    def cold_overview() -> Any:
        OBSERVED.items.clear()  # the server runs in this process: drop its cache to time a real load
        return get(f"{base}/overview")

    overview = get(f"{base}/overview").json()
    row: dict[str, Any] = {
        "runs": n,
        "overview_cold_ms": timed(cold_overview),
        "overview_cached_ms": timed(lambda: get(f"{base}/overview")),
        "overview_kb": len(json.dumps(overview)) / 1024,
        "curve_points": sum(len(c["points"]) for c in overview["progress"]["curves"]),
        "summaries_cached_ms": timed(lambda: get("/dashboard/api/summaries", id=exp["id"])),
        "runs_page_25_ms": timed(lambda: get(f"/v1/experiments/{exp['id']}/runs", page_size=25)),
        "csv_export_ms": timed(lambda: get(f"{base}/runs.csv")),
    }
    row.update(browser_timings(url, exp["id"]))
    return row


def main() -> None:
    rows: list[dict[str, Any]] = []
    for n in SIZES:
        with tempfile.TemporaryDirectory() as tmp, \
                embedded_server(Settings(database_url=f"sqlite:///{tmp}/b.db", seed=0)) as url, \
                MixoptClient(url) as client:
            rows.append(measure(client, url, n))
    cols = list(rows[0])
    print(" | ".join(f"{c:>19}" for c in cols))
    for r in rows:
        print(" | ".join(f"{r[c]:>19.1f}" if isinstance(r[c], float) else f"{r[c]:>19}" for c in cols))
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({"machine": f"{platform.machine()}, {os.cpu_count()} CPUs", "repeats": REPEATS,
                               "rows": rows}, indent=2))
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
