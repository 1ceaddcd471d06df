"""The dashboard in headless Chromium against a live server seeded with the RegMix runs.

Every expectation is read from the public API at test time, so the checks say "the page shows what the
API holds", whatever the seeded data or the method behind the recommendation.
"""

from __future__ import annotations

import contextlib
import csv
import io
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from mixopt_client import JobFailedError, MixoptClient

import service.operations.refit
from tests.browser.conftest import Live, Tab
from tests.browser.seed import experiment_spec, regmix_runs, start_online_session
from tests.conftest import REGMIX_DATA
from tests.mixing.laws.synthetic import cmr_runs
from tests.service.helpers import continual_runs, continual_spec

pytestmark = pytest.mark.browser

REC_BARS = "[data-testid=rec-chart] rect.bar"
EXPERIMENT_ROWS = "[data-testid=experiments-table] tbody tr"
POLL_WAIT_MS = 12_000
PREDICTIONS = "[data-testid=predictions]"
#: A bound on the wait for the compare page to report its predictions, against a hang only: the wait ends
#: as soon as the page reports, and a first prediction may fit a model (seconds on a busy 2-core machine).
MODEL_WAIT_MS = 180_000
#: Laws a test refit scores: quick to cross-validate on a few dozen runs.
FAST_LAWS = ("regmix_linear", "regmix_lightgbm")


def wait_until(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + POLL_WAIT_MS / 1000
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def scratch_experiment(client: MixoptClient, name: str, n_runs: int) -> dict[str, Any]:
    """A small experiment of its own for tests that add runs (the shared one must stay as seeded)."""
    exp = client.create_experiment(experiment_spec(name, REGMIX_DATA))
    if n_runs:
        client.import_runs(exp["id"], regmix_runs(REGMIX_DATA, ("train_1m",))[:n_runs])
    return client.get_experiment(exp["id"])


def expected_curve_sizes(runs: list[dict[str, Any]]) -> list[int]:
    """Points of each best-so-far curve (fidelity levels ascending): every strict improvement, plus the
    last run of the level when it was no improvement."""
    count: dict[float, int] = {}
    best: dict[float, float] = {}
    improved_last: dict[float, bool] = {}
    for r in runs:
        level = r["fidelity"]["params"]
        improved = level not in best or r["objective"] < best[level]
        if improved:
            best[level] = r["objective"]
            count[level] = count.get(level, 0) + 1
        improved_last[level] = improved
    return [count[k] + (0 if improved_last[k] else 1) for k in sorted(count)]


def curve_sizes(tab: Tab) -> list[int]:
    return tab.page.evaluate("""() => {
        const pts = [...document.querySelectorAll('[data-testid=progress-chart] circle.pt')];
        const out = [];
        for (const p of pts) { const i = +p.dataset.series; out[i] = (out[i] || 0) + 1; }
        return out;
    }""")


def row_ids(tab: Tab, table: str) -> list[str]:
    return texts(tab, f"[data-testid={table}] tbody tr", "dataset.id")


def texts(tab: Tab, selector: str, prop: str = "innerText") -> list[str]:
    return tab.page.eval_on_selector_all(selector, f"els => els.map(e => e.{prop})")


def wait_for_predictions(tab: Tab, count: int) -> None:
    """Wait until the compare page reports predictions drawn for ``count`` mixtures, or a failure."""
    tab.page.wait_for_selector(f"{PREDICTIONS}[data-state=ready][data-count='{count}'], "
                               f"{PREDICTIONS}[data-state=error]", timeout=MODEL_WAIT_MS)
    assert tab.page.get_attribute(PREDICTIONS, "data-state") == "ready", tab.page.inner_text(PREDICTIONS)


def assert_fits_its_card(tab: Tab, table: str) -> None:
    """No column of ``table`` is hidden behind a horizontal scroll bar or drawn outside its card."""
    scroll, visible, right, card_right = tab.page.evaluate("""(sel) => {
        const t = document.querySelector(sel);
        const card = t.closest('.card').getBoundingClientRect();
        return [t.scrollWidth, t.parentElement.clientWidth, t.getBoundingClientRect().right, card.right];
    }""", f"[data-testid={table}]")
    assert scroll <= visible and right <= card_right, (table, scroll, visible, right, card_right)


def completed_at(live: Live, exp_id: str, params: float) -> list[dict[str, Any]]:
    """Completed runs at one ``params`` level, in the API's order."""
    runs = live.client.list_runs(exp_id, state=["completed"])
    return [r for r in runs if r["fidelity"]["params"] == params]


def first_number(text: str) -> float:
    return float(text.split()[0])


# ----------------------------------------------------------------------------------------------- loading
@pytest.mark.parametrize("page", ["experiments", "experiment", "compare", "compare-picker"])
def test_pages_load_without_console_errors_and_only_local_requests(tab: Tab, live: Live, page: str) -> None:
    exp_id = live.exp["id"]
    path, ready = {
        "experiments": ("/dashboard", EXPERIMENT_ROWS),
        "experiment": (f"/dashboard/experiments/{exp_id}", REC_BARS),
        "compare": (f"/dashboard/compare?experiment={exp_id}&m=rec&m=prior", PREDICTIONS),
        "compare-picker": ("/dashboard/compare", "[data-testid=pick-experiment]"),
    }[page]
    tab.goto(path, ready)
    if page == "compare":
        wait_for_predictions(tab, 2)
    tab.page.wait_for_load_state("networkidle")
    assert tab.errors == []
    elsewhere = [u for u in tab.requests if not u.startswith((live.url, "blob:", "data:"))]
    assert tab.requests and elsewhere == []


def test_unknown_experiment_says_so(tab: Tab) -> None:
    tab.page.goto(tab.base + "/dashboard/experiments/exp_missing")
    tab.page.wait_for_selector("text=Experiment not found.")
    tab.errors.clear()  # the 404 of the experiment itself is the point of this test


# ------------------------------------------------------------------------------------------- experiments
def test_experiments_table_rows_search_and_sort(tab: Tab, live: Live) -> None:
    tab.goto("/dashboard", EXPERIMENT_ROWS)
    active = list(live.client.iter_experiments(state="active"))
    wait_until(lambda: len(row_ids(tab, "experiments-table")) == len(active), "one row per active experiment")
    assert set(row_ids(tab, "experiments-table")) == {e["id"] for e in active}

    row = f"[data-testid=experiments-table] tr[data-id={live.exp['id']}]"
    best_60m = min(r["objective"] for r in completed_at(live, live.exp["id"], 6e7))
    rec = live.client.recommendation(live.exp["id"])
    tab.page.wait_for_function(f"() => !document.querySelector('{row}').textContent.includes('…')")
    cells = texts(tab, f"{row} td")
    assert first_number(cells[3]) == pytest.approx(best_60m, abs=5e-5)
    assert first_number(cells[4]) == pytest.approx(rec["predicted"]["value"], abs=5e-5)
    assert "768 completed" in cells[2]

    tab.page.fill("[data-testid=search]", "regmix-pile")
    wait_until(lambda: row_ids(tab, "experiments-table") == [live.exp["id"]], "search to narrow the table")

    tab.page.fill("[data-testid=search]", "")
    wait_until(lambda: len(row_ids(tab, "experiments-table")) == len(active), "search cleared")
    tab.page.click("button[data-sort=name]")
    names = texts(tab, "[data-testid=experiments-table] a.name")
    assert names == sorted(names, key=str.lower)
    tab.page.click("button[data-sort=name]")
    names = texts(tab, "[data-testid=experiments-table] a.name")
    assert names == sorted(names, key=str.lower, reverse=True)


def test_new_experiment_appears_in_list_without_reload(tab: Tab, live: Live) -> None:
    tab.goto("/dashboard", EXPERIMENT_ROWS)
    tab.page.evaluate("window.__noReload = true")
    exp = scratch_experiment(live.client, "appears-in-list", 0)
    tab.page.wait_for_selector(f"{EXPERIMENT_ROWS}[data-id={exp['id']}]", timeout=POLL_WAIT_MS)
    assert tab.page.evaluate("window.__noReload") is True


# -------------------------------------------------------------------------------------------- experiment
def test_recommendation_chart_has_one_bar_per_domain_and_series(tab: Tab, live: Live) -> None:
    tab.goto(f"/dashboard/experiments/{live.exp['id']}", REC_BARS)
    rec = live.client.recommendation(live.exp["id"])
    n = len(live.exp["domains"])
    assert tab.page.locator(f"{REC_BARS}[data-series='0']").count() == n  # recommended weights
    assert tab.page.locator(f"{REC_BARS}[data-series='1']").count() == n  # natural distribution
    shown = tab.page.inner_text("[data-testid=rec-value] .value")
    assert float(shown) == pytest.approx(rec["predicted"]["value"], abs=5e-5)
    top = max(rec["mixture"], key=rec["mixture"].get)
    assert tab.page.text_content("[data-testid=rec-chart] text.cat >> nth=0") == top


def test_progress_chart_has_one_point_per_improvement(tab: Tab, live: Live) -> None:
    tab.goto(f"/dashboard/experiments/{live.exp['id']}", "[data-testid=progress-chart] circle.pt")
    runs = live.client.list_runs(live.exp["id"], state=["completed"])
    assert curve_sizes(tab) == expected_curve_sizes(runs)
    was_log = tab.page.is_checked("[data-testid=log-x]")
    tab.page.click("[data-testid=log-x]")  # the other x scale draws the same points
    assert tab.page.is_checked("[data-testid=log-x]") != was_log
    assert curve_sizes(tab) == expected_curve_sizes(runs)


def test_runs_table_filters_and_pages_like_the_api(tab: Tab, live: Live) -> None:
    exp_id = live.exp["id"]
    tab.goto(f"/dashboard/experiments/{exp_id}", "[data-testid=runs-table] tbody tr")
    api_page = live.client.request("GET", f"/v1/experiments/{exp_id}/runs", params={"page_size": 25}).json()
    assert row_ids(tab, "runs-table") == [r["id"] for r in api_page["runs"]]

    tab.page.select_option("[data-testid=runs-fidelity]", label="params 60M")
    params = {"page_size": 25, "fidelity": "params=60000000"}
    first = live.client.request("GET", f"/v1/experiments/{exp_id}/runs", params=params).json()
    wait_until(lambda: row_ids(tab, "runs-table") == [r["id"] for r in first["runs"]], "fidelity filter")
    assert set(texts(tab, "[data-testid=runs-table] tbody tr td:nth-child(4)")) == {"params 60M"}

    tab.page.click("[data-testid=runs-next]")
    second = live.client.request("GET", f"/v1/experiments/{exp_id}/runs",
                                 params={**params, "page_token": first["next_page_token"]}).json()
    wait_until(lambda: row_ids(tab, "runs-table") == [r["id"] for r in second["runs"]], "next page")
    tab.page.click("[data-testid=runs-prev]")
    wait_until(lambda: row_ids(tab, "runs-table") == [r["id"] for r in first["runs"]], "previous page")

    tab.page.select_option("[data-testid=runs-state]", "failed")
    tab.page.wait_for_selector("[data-testid=runs] >> text=No runs match these filters.")


def test_csv_export_matches_the_api(tab: Tab, live: Live) -> None:
    exp_id = live.exp["id"]
    tab.goto(f"/dashboard/experiments/{exp_id}", "[data-testid=runs-table] tbody tr")
    tab.page.select_option("[data-testid=runs-fidelity]", label="params 60M")
    tab.page.select_option("[data-testid=runs-state]", "completed")
    with tab.page.expect_download() as download:
        tab.page.click("[data-testid=export-csv]")
    assert download.value.suggested_filename == "regmix-pile-runs.csv"
    rows = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text(encoding="utf-8"))))

    expected = completed_at(live, exp_id, 6e7)
    assert [r["id"] for r in rows] == [r["id"] for r in expected]
    for got, want in zip(rows, expected, strict=True):
        assert got["state"] == want["state"] and got["method"] == want["method"]
        assert float(got["objective"]) == want["objective"] and float(got["cost"]) == want["cost"]
        assert float(got["fidelity.params"]) == want["fidelity"]["params"]
        assert {d: float(got[f"mixture.{d}"]) for d in want["mixture"]} == want["mixture"]
        assert {m: float(got[f"metric.{m}"]) for m in want["metrics"]} == want["metrics"]


def test_new_runs_appear_without_reload(tab: Tab, live: Live) -> None:
    exp = scratch_experiment(live.client, "live-updates", 40)
    tab.goto(f"/dashboard/experiments/{exp['id']}", "[data-testid=progress-chart] circle.pt")
    tab.page.select_option("[data-testid=runs-state]", "failed")
    tab.page.wait_for_selector("[data-testid=runs] >> text=No runs match these filters.")
    tab.page.evaluate("window.__noReload = true")

    spare = regmix_runs(REGMIX_DATA, ("train_1m",))[40]
    failed = live.client.report(exp["id"], metrics={}, mixture=spare["mixture"], fidelity=spare["fidelity"],
                                state="failed")
    tab.page.wait_for_selector(f"[data-testid=runs-table] tr[data-id={failed['id']}]", timeout=POLL_WAIT_MS)

    new_best = min(r["objective"] for r in completed_at(live, exp["id"], 1e6)) - 0.5
    live.client.report(exp["id"], metrics={**spare["metrics"], "loss/pile_cc": new_best},
                       mixture=spare["mixture"], fidelity=spare["fidelity"], cost=1.0)
    wait_until(lambda: "41 completed" in tab.page.inner_text("[data-testid=run-counts]"), "run counts")
    wait_until(lambda: tab.page.inner_text("[data-testid=progress] .stat .value") == f"{new_best:.4f}",
               "the new best in the progress card")
    runs = live.client.list_runs(exp["id"], state=["completed"])
    assert curve_sizes(tab) == expected_curve_sizes(runs)
    assert tab.page.evaluate("window.__noReload") is True


def test_new_experiment_shows_empty_state_until_runs_arrive(tab: Tab, live: Live) -> None:
    exp = live.client.create_experiment({**experiment_spec("brand-new", REGMIX_DATA), "search": {
        "level_costs": [{"fidelity": {"params": 1e9}, "cost": 250.0}]}})
    tab.goto(f"/dashboard/experiments/{exp['id']}", "[data-testid=empty-state]")
    assert tab.page.inner_text("[data-testid=level-costs]") == "declared: params 1B costs 250 · "
    # The banner is drawn from the experiment alone; each card fills in once its own data has loaded.
    for section in ("recommendation", "progress", "runs", "pending"):
        tab.page.wait_for_selector(f"[data-testid={section}] [data-testid=empty]", timeout=POLL_WAIT_MS)
        assert tab.page.locator(f"[data-testid={section}] [data-testid=empty]").count() == 1, section
    live.client.import_runs(exp["id"], regmix_runs(REGMIX_DATA, ("train_1m",))[:3])
    tab.page.wait_for_selector("[data-testid=empty-state]", state="detached", timeout=POLL_WAIT_MS)
    tab.page.wait_for_selector("[data-testid=progress-chart] circle.pt")
    assert len(row_ids(tab, "runs-table")) == 3


def test_transferred_runs_are_listed_apart_and_marked(tab: Tab, live: Live) -> None:
    source = scratch_experiment(live.client, "warm-source", 5)
    exp = live.client.create_experiment({**experiment_spec("warm-target", REGMIX_DATA),
                                         "warm_start": [{"experiment_id": source["id"], "weight": 0.5}]})
    tab.goto(f"/dashboard/experiments/{exp['id']}", "[data-testid=transferred-table] tbody tr")
    rows = texts(tab, "[data-testid=transferred-table] tbody tr")
    assert len(rows) == 5 and all("transferred" in row and "0.5" in row for row in rows)
    assert "+5 transferred" in tab.page.inner_text("[data-testid=run-counts]")
    # never the experiment's own: the runs card stays empty
    tab.page.wait_for_selector("[data-testid=runs] [data-testid=empty]", timeout=POLL_WAIT_MS)
    tab.goto("/dashboard", EXPERIMENT_ROWS)
    assert any("+5 transferred" in row for row in texts(tab, EXPERIMENT_ROWS))


def test_pending_proposals_are_listed(tab: Tab, live: Live) -> None:
    exp = scratch_experiment(live.client, "with-pending", 12)
    suggested = live.client.suggest(exp["id"], 3, method="design")
    tab.goto(f"/dashboard/experiments/{exp['id']}", "[data-testid=pending-table] tbody tr")
    assert sorted(row_ids(tab, "pending-table")) == sorted(s.id for s in suggested)


def test_model_sections_follow_the_server(tab: Tab, live: Live, monkeypatch: pytest.MonkeyPatch) -> None:
    """Law fits, refit history and online sessions: drawn where the server has them, explained where not.

    The refit goes through the API and the job runner; only the laws it scores are cut to two fast ones
    (the embedded server runs in this process), since the law engine's speed is its own bench's business.
    """
    scored = service.operations.refit.evaluate_laws  # where the refit operation looks it up
    monkeypatch.setattr(service.operations.refit, "evaluate_laws",
                        lambda _, *a, **kw: scored(list(FAST_LAWS), *a, **kw))
    exp = scratch_experiment(live.client, "with-models", 40)
    exp_id = exp["id"]
    schema = live.client.request("GET", "/openapi.json").json()
    paths = {re.sub(r"\{[^}]*\}", "{}", p) for p in schema["paths"]}
    base = "/v1/experiments/{}"
    if f"{base}/refits" in paths:
        refit = {"method": "regmix"}  # the recommendation a refit refreshes; regmix keeps it to seconds
        job = live.client.request("POST", f"/v1/experiments/{exp_id}/refits", json=refit).json()["job"]
        with contextlib.suppress(JobFailedError):  # a failed refit stores no fits: the page must then say so
            live.client.wait(job, poll_s=0.2, timeout_s=1800)
    session = None
    if f"{base}/online-sessions" in paths:
        session = start_online_session(live.client, exp)
    tab.goto(f"/dashboard/experiments/{exp_id}", "[data-testid=progress-chart] circle.pt")

    def get(tail: str, **params: Any) -> dict[str, Any]:
        return live.client.request("GET", f"/v1/experiments/{exp_id}/{tail}", params=params).json()

    if f"{base}/fits" in paths:
        fits = get("fits", latest="true")["fits"]
        if fits:
            tab.page.wait_for_selector("[data-testid=fits-table] tbody tr")
            assert sorted(row_ids(tab, "fits-table")) == sorted(f["id"] for f in fits)
            selected = tab.page.locator("[data-testid=fits-table] tr.selected").count()
            assert selected == sum(f["selected"] for f in fits)
            for f in fits:
                spearman = ((f["scores"].get("cv") or {}).get("from_metrics") or {}).get("spearman")
                cell = tab.page.inner_text(f"[data-testid=fits-table] tr[data-id={f['id']}] td:nth-child(2)")
                assert cell == ("—" if spearman is None else f"{spearman:.3f}")
            assert_fits_its_card(tab, "fits-table")
            assert_fits_its_card(tab, "runs-table")
            oof = next(f for f in fits if f["selected"])["scores"]["oof"]
            drawn = sum(o is not None and p is not None for o, p in zip(oof["observed"], oof["predicted"],
                                                                         strict=True))
            tab.page.wait_for_selector("[data-testid=oof] circle.pt")
            assert tab.page.locator("[data-testid=oof] circle.pt").count() == min(drawn, 2000) > 0
        else:
            tab.page.wait_for_selector("[data-testid=fits] >> text=No refit has scored the laws yet.")
    else:
        tab.page.wait_for_selector("[data-testid=fits] >> text=not available on this server")

    if f"{base}/history" in paths:
        recs = get("history")["recommendations"]
        if recs:
            tab.page.wait_for_selector("[data-testid=history] g.col")
            assert tab.page.locator("[data-testid=history] g.col").count() == min(len(recs), 60)
        else:
            tab.page.wait_for_selector("[data-testid=history] >> text=No recommendation has been computed")
    else:
        tab.page.wait_for_selector("[data-testid=history] >> text=not available on this server")

    if session is not None:
        detail = get(f"online-sessions/{session}")
        assert len(detail["trajectory"]) >= 2
        tab.page.wait_for_selector("[data-testid=online] path.area")
        assert tab.page.locator("[data-testid=online] path.area").count() == len(detail["domains"])
    else:
        tab.page.wait_for_selector("[data-testid=online] >> text=not available on this server")


def test_a_continual_experiment_shows_its_critical_mixture_ratio(tab: Tab, live: Live) -> None:
    """The CMR card appears for experiments declared continual only, and shows what the API answers."""
    exp = live.client.create_experiment(continual_spec("cpt-dashboard"))
    tab.goto(f"/dashboard/experiments/{exp['id']}", "[data-testid=cmr] [data-testid=empty]")
    live.client.import_runs(exp["id"], continual_runs(*cmr_runs(0.005, 0)))
    tab.page.wait_for_selector("[data-testid=cmr-value]", timeout=POLL_WAIT_MS)
    answer = live.client.cmr(exp["id"])
    value = tab.page.inner_text("[data-testid=cmr-value] .value")
    assert value == f"{100 * answer['cmr']:.1f}%", (value, answer["cmr"])
    assert f"{100 * answer['interval']['lower']:.1f}%" in tab.page.inner_text("[data-testid=cmr-value] .sub")
    assert "held out at" in tab.page.inner_text("[data-testid=cmr-validation]")
    tab.goto(f"/dashboard/experiments/{live.exp['id']}", "[data-testid=progress-chart] circle.pt")
    assert tab.page.locator("[data-testid=cmr]").count() == 0  # not a continual experiment


def test_law_card_agrees_with_a_recommendation_made_without_a_refit(tab: Tab, live: Live,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """As after the demo: the law method recommended (its own quick selection) and no refit ever ran.

    The law card names the law the recommendation used instead of saying none was fitted, and the list's
    "Last refit" does not count the recommendation as a refit.
    """
    import mixing.methods.law

    scored = mixing.methods.law.evaluate_laws  # the quick selection: two fast laws (the server is in-process)
    monkeypatch.setattr(mixing.methods.law, "evaluate_laws", lambda _, *a, **kw: scored(list(FAST_LAWS), *a, **kw))
    exp = scratch_experiment(live.client, "law-without-refit", 40)
    rec = live.client.recommendation(exp["id"])  # GET computes and stores it: method auto, one fidelity
    assert rec["method"] == "law" and rec["details"]["selection"]["source"] == "quick_selection"
    tab.goto(f"/dashboard/experiments/{exp['id']}", "[data-testid=recommendation-law]")
    assert tab.page.get_attribute("[data-testid=recommendation-law]", "data-law") == rec["details"]["law"]
    tab.page.wait_for_selector("[data-testid=fits] >> text=No refit has scored the laws yet.")

    row = f"{EXPERIMENT_ROWS}[data-id={exp['id']}]"
    tab.goto("/dashboard", row)
    tab.page.wait_for_function(f"() => !document.querySelector('{row}').textContent.includes('…')")
    headers = [t.strip() for t in texts(tab, "[data-testid=experiments-table] thead th")]
    column = next(i for i, t in enumerate(headers) if t.startswith("Last refit"))
    assert texts(tab, f"{row} td")[column].strip() == "—"


def test_actions_need_a_token_and_send_it(tab: Tab, live: Live) -> None:
    exp = scratch_experiment(live.client, "to-archive", 0)
    tab.goto(f"/dashboard/experiments/{exp['id']}", "[data-testid=empty-state]")
    assert tab.page.locator("[data-testid=actions]").count() == 0  # read-only by default
    tab.page.click("[data-testid=enter-token]")
    tab.page.fill("[data-testid=token-input]", "write-token")
    tab.page.press("[data-testid=token-input]", "Enter")
    with tab.page.expect_request(lambda r: r.method == "PATCH") as sent:
        tab.page.click("[data-testid=archive]")
    assert sent.value.all_headers()["authorization"] == "Bearer write-token"
    wait_until(lambda: live.client.get_experiment(exp["id"])["state"] == "archived", what="archive")
    tab.page.wait_for_selector("[data-testid=archive] >> text=Unarchive")


# ----------------------------------------------------------------------------------------------- compare
def test_compare_draws_every_mixture_and_its_predictions(tab: Tab, live: Live) -> None:
    exp_id = live.exp["id"]
    tab.goto(f"/dashboard/compare?experiment={exp_id}&m=rec&m=prior&m=best", PREDICTIONS)
    wait_for_predictions(tab, 3)
    domains = [d["name"] for d in live.exp["domains"]]
    bars = "[data-testid=weights-chart] rect.bar"
    assert tab.page.locator(bars).count() == 3 * len(domains)

    rec = live.client.recommendation(exp_id)
    total = sum(d["prior"] for d in live.exp["domains"])
    prior = {d["name"]: d["prior"] / total for d in live.exp["domains"]}
    best = min(completed_at(live, exp_id, 6e7), key=lambda r: r["objective"])
    want = live.client.predict(exp_id, [rec["mixture"], prior, best["mixture"]])["predictions"]
    cells = texts(tab, "[data-testid=predictions-table] tbody tr:first-child td")
    assert [first_number(c) for c in cells] == pytest.approx([p["objective"] for p in want], abs=5e-4)
    observed = texts(tab, "[data-testid=observed-table] tbody tr:first-child td")
    assert observed[:2] == ["—", "—"]  # the recommendation and the prior were never trained
    assert first_number(observed[2]) == pytest.approx(best["objective"], abs=5e-5)

    tab.page.select_option("[data-testid=add-source]", "uniform")
    tab.page.click("[data-testid=add-mixture]")
    wait_until(lambda: tab.page.locator(bars).count() == 4 * len(domains), "a fourth mixture")
    assert "m=uniform" in tab.page.url
    wait_for_predictions(tab, 4)
    assert len(texts(tab, "[data-testid=predictions-table] tbody tr:first-child td")) == 4
