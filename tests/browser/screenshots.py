"""Screenshots of the dashboard for the README: ``python -m tests.browser.screenshots [out_dir]``.

Builds a realistic state on an embedded server (the RegMix runs arriving in batches with a recommendation
stored after each, pending suggestions, an online session, a few other experiments), then saves
``experiments.png``, ``experiment.png`` and ``compare.png`` (default ``docs/screenshots``).
"""

from __future__ import annotations

import contextlib
import sys
import tempfile
from pathlib import Path

from mixopt_client import JobFailedError, MixoptClient
from playwright.sync_api import sync_playwright

from service.api.embedded import embedded_server
from service.settings import Settings
from tests.browser.conftest import CHROMIUM, VIEWPORT, launch_chromium
from tests.browser.seed import experiment_spec, regmix_runs, start_online_session, store_recommendation
from tests.conftest import REGMIX_DATA

#: Completed 1M runs after which a recommendation is stored; then the 60M runs arrive.
CHECKPOINTS = (32, 64, 128, 256, 512)


def build(client: MixoptClient, database_url: str) -> str:
    """Fill the server; returns the id of the experiment the detail screenshots show."""
    small = regmix_runs(REGMIX_DATA, ("train_1m",))
    large = regmix_runs(REGMIX_DATA, ("test_60m",))
    exp = client.create_experiment(experiment_spec("regmix-pile", REGMIX_DATA))
    done = 0
    for upto in CHECKPOINTS:
        client.import_runs(exp["id"], small[done:upto])
        done = upto
        store_recommendation(database_url, exp["id"])
    client.import_runs(exp["id"], large)
    with contextlib.suppress(JobFailedError):  # law fits appear where the server can compute them
        job = client.request("POST", f"/v1/experiments/{exp['id']}/refits", json={"method": "regmix"}).json()
        client.wait(job, timeout_s=300)
    store_recommendation(database_url, exp["id"])
    client.suggest(exp["id"], 4, method="regmix")
    start_online_session(client, exp, observations=40)

    other = client.create_experiment(experiment_spec("regmix-pile-1m-only", REGMIX_DATA))
    client.import_runs(other["id"], small)
    store_recommendation(database_url, other["id"])
    client.create_experiment(experiment_spec("pile-next-scale", REGMIX_DATA))
    return str(exp["id"])


def main(out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        database_url = f"sqlite:///{tmp}/screens.db"
        with embedded_server(Settings(database_url=database_url, seed=0, sync_budget_s=120.0)) as url, \
                MixoptClient(url) as client, sync_playwright() as p:
            exp_id = build(client, database_url)
            browser = launch_chromium(p)
            page = browser.new_page(viewport=VIEWPORT)
            shots = [
                ("experiments", "/dashboard", "[data-testid=experiments-table] tbody tr"),
                ("experiment", f"/dashboard/experiments/{exp_id}", "[data-testid=history] g.col"),
                ("compare", f"/dashboard/compare?experiment={exp_id}&m=rec&m=prior&m=best",
                 "[data-testid=predictions][data-state=ready]"),
            ]
            for name, path, ready in shots:
                page.goto(url + path)
                page.wait_for_selector(ready)
                page.wait_for_load_state("networkidle")
                page.screenshot(path=str(out_dir / f"{name}.png"), full_page=True)
                print(out_dir / f"{name}.png")
            browser.close()


if __name__ == "__main__":
    if not CHROMIUM.exists():
        sys.exit(f"Chromium not found at {CHROMIUM}")
    default = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else default)
