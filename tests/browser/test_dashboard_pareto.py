"""The experiment page shows outcome constraints, the recommendation's constraint predictions and the
trade-off front, as the API holds them (headless Chromium)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.browser.conftest import Live, Tab

pytestmark = pytest.mark.browser

DOMAINS = ["web", "code", "papers", "math"]
#: Model fits on a busy 2-core machine: a bound against a hang only.
MODEL_WAIT_MS = 180_000


def test_constraints_and_the_front_are_drawn_with_the_observed_runs(tab: Tab, live: Live) -> None:
    exp = live.client.create_experiment({
        "name": "constrained-front",
        "domains": [{"name": d, "prior": p} for d, p in zip(DOMAINS, [0.5, 0.2, 0.2, 0.1], strict=True)],
        "objective": {"metrics": ["loss/code"], "aggregate": "single",
                      "constraints": [{"metric": "loss/web", "op": "<=", "relative_to": "prior", "slack": 0.01}]},
    })
    rng = np.random.default_rng(0)
    live.client.import_runs(exp["id"], [
        {"mixture": dict(zip(DOMAINS, w.tolist(), strict=True)),
         "metrics": {"loss/code": 3.5 - 1.5 * w[1] + 0.5 * w[1] ** 2, "loss/web": 3.0 + 0.8 * w[1] + 0.1 * w[3]}}
        for w in rng.dirichlet(np.ones(4), 30)])
    tab.goto(f"/dashboard/experiments/{exp['id']}", "[data-testid=constraints]")
    assert "loss/web ≤ prior + 1.0%" in tab.page.inner_text("[data-testid=constraints]")
    assert "subject to loss/web ≤ prior + 1.0%" in tab.page.inner_text(".meta")
    tab.page.click("[data-testid=compute-pareto]")
    tab.page.wait_for_selector("[data-testid=pareto-chart] svg", timeout=MODEL_WAIT_MS)
    api = live.client.request("GET", f"/v1/experiments/{exp['id']}/pareto").json()
    chart = "[data-testid=pareto-chart]"
    assert tab.page.locator(f"{chart} circle.predicted").count() == len(api["front"])
    assert tab.page.locator(f"{chart} circle.observed").count() == len(api["observed"]) == 30
    assert tab.page.locator(f"{chart} circle.on-front").count() == sum(o["on_front"] for o in api["observed"])
    assert tab.page.locator(f"{chart} line.bound").count() == 1  # the constrained metric's bound
    tab.page.click("[data-testid=compute-rec]")
    tab.page.wait_for_selector("[data-testid=rec-constraints]", timeout=MODEL_WAIT_MS)
    rec = live.client.request("GET", f"/v1/experiments/{exp['id']}/recommendation").json()
    (c,) = rec["constraints"]
    assert tab.page.inner_text("[data-testid=rec-constraints]").startswith("loss/web ≤")
    assert c["probability"] >= 0.9
