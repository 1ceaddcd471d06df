// Compare page: two or more mixtures of one experiment side by side: their weights, the per-metric losses
// the model predicts for each (POST /predict, which changes nothing), and the losses observed where a
// mixture is a run. The selection lives in the URL (?experiment=..&m=rec&m=prior&m=run:<id>) so it can be shared.

import { ApiError, api } from "./api.js";
import { PALETTE, hbars, legend, swatch } from "./charts.js";
import { authWidget, card, empty, errorText, fidelityLabel, h, interval, num, pct, poll, replace, shortId, url } from "./ui.js";

const POLL_MS = 5000;
const SOURCES = [
  ["rec", "Recommendation"], ["prior", "Natural distribution (prior)"], ["uniform", "Uniform"],
  ["best", "Best observed run"], ["run", "Run by id…"],
];

const main = document.getElementById("main");
const params = new URLSearchParams(location.search);
const view = { expId: params.get("experiment") || "", keys: params.getAll("m"), exp: null, overview: null, items: [], predicting: false, again: false };

const chipsSlot = h("div", { class: "chips", "data-testid": "mixtures" });
const notesSlot = h("div", {});
const weightsSlot = h("div", {});
const predSlot = h("div", {});
const obsSlot = h("div", {});
const obsCard = card("Observed losses (runs)", { testid: "observed" }, obsSlot);
const predCard = card("Predicted losses", { testid: "predictions" }, predSlot);

/**
 * What the predictions card shows, as ``data-state`` on it (``pending``, ``ready``, ``error``, ``none``) and
 * ``data-count``, the mixtures drawn: tests and scripts wait on this state instead of guessing a delay.
 */
function predictionState(state, count = 0) {
  predCard.dataset.state = state;
  predCard.dataset.count = String(count);
}

const letter = (i) => String.fromCharCode(65 + (i % 26));
const enc = () => encodeURIComponent(view.expId);

function syncUrl() {
  const q = new URLSearchParams({ experiment: view.expId });
  for (const k of view.keys) q.append("m", k);
  history.replaceState(null, "", `${location.pathname}?${q}`);
}

/** {key, label, mixture, run} for a selection key, or a string saying why it has none. */
async function resolve(key) {
  const exp = view.exp;
  const names = exp.domains.map((d) => d.name);
  const summary = view.overview.summary;
  if (key === "rec") {
    const rec = summary.recommendation;
    return rec ? { key, label: `Recommendation (${rec.method})`, mixture: rec.mixture } : "No recommendation has been computed yet.";
  }
  if (key === "prior") {
    const total = exp.domains.reduce((a, d) => a + (d.prior || 0), 0);
    if (!(total > 0)) return "The experiment declares no natural distribution (domain priors).";
    return { key, label: "Natural distribution", mixture: Object.fromEntries(exp.domains.map((d) => [d.name, (d.prior || 0) / total])) };
  }
  if (key === "uniform") return { key, label: "Uniform", mixture: Object.fromEntries(names.map((n) => [n, 1 / names.length])) };
  const runId = key === "best" ? summary.best_observed && summary.best_observed.run_id : key.startsWith("run:") ? key.slice(4) : null;
  if (!runId) return key === "best" ? "No completed run yet." : `Unknown selection ${key}.`;
  try {
    const run = await api(`/v1/experiments/${enc()}/runs/${encodeURIComponent(runId)}`);
    const what = key === "best" ? "Best observed" : "Run";
    return { key, label: `${what} ${shortId(run.id)} (${fidelityLabel(run.fidelity)})`, mixture: run.mixture, run };
  } catch (e) {
    if (e instanceof ApiError && e.status === 404) return `Run ${runId} not found in this experiment.`;
    throw e;
  }
}

async function resolveAll() {
  const resolved = await Promise.all(view.keys.map(resolve));
  view.items = resolved.filter((r) => typeof r !== "string");
  replace(notesSlot, resolved.filter((r) => typeof r === "string").map((msg) => h("p", { class: "note" }, msg)));
}

function renderChips() {
  replace(chipsSlot, view.items.map((it, i) => h("span", { class: "chip", "data-key": it.key },
    swatch(PALETTE[i % PALETTE.length]), h("b", {}, letter(i)), ` ${it.label}`,
    h("button", { class: "link", "aria-label": `remove ${it.label}`, onclick: () => remove(it.key) }, "×"))));
}

function remove(key) {
  view.keys = view.keys.filter((k) => k !== key);
  update();
}

function renderWeights() {
  if (!view.items.length) {
    replace(weightsSlot, empty("Nothing to compare yet.", "Add two or more mixtures above."));
    return;
  }
  const names = view.exp.domains.map((d) => d.name);
  const top = (n) => Math.max(...view.items.map((it) => it.mixture[n] || 0));
  const order = names.slice().sort((a, b) => top(b) - top(a));
  const series = view.items.map((it, i) => ({
    name: `${letter(i)} ${it.label}`, color: PALETTE[i % PALETTE.length], values: order.map((n) => it.mixture[n] || 0),
  }));
  replace(weightsSlot, view.items.length < 2 ? h("p", { class: "note" }, "Add at least one more mixture to compare.") : null,
    h("div", { "data-testid": "weights-chart" }, hbars({ categories: order, series, format: pct })), legend(series));
}

/**
 * A table with one column per mixture; the best value in each row is marked (metrics share the objective's
 * orientation, since it weighs them non-negatively) and later columns show the difference from A.
 */
function lossTable(rows, testid) {
  const better = (a, b) => (view.exp.objective.goal === "maximize" ? a > b : a < b);
  return h("table", { class: "grid", "data-testid": testid },
    h("thead", {}, h("tr", {}, h("th", {}, "metric"), view.items.map((it, i) => h("th", { class: "num", title: it.label }, letter(i))))),
    h("tbody", {}, rows.map((r) => {
      const vals = r.values;
      const finite = vals.filter(Number.isFinite);
      const best = finite.length > 1 ? finite.reduce((a, b) => (better(b, a) ? b : a)) : null;
      const delta = (v, i) => (i > 0 && Number.isFinite(v) && Number.isFinite(vals[0])
        ? h("span", { class: "delta" }, ` ${v - vals[0] >= 0 ? "+" : ""}${num(v - vals[0])}`) : null);
      return h("tr", {}, h("th", { class: "rowhead" }, r.label), vals.map((v, i) =>
        h("td", { class: `num${best !== null && v === best ? " best" : ""}`, title: r.titles ? r.titles[i] : null },
          Number.isFinite(v) ? num(v) : "—", delta(v, i))));
    })));
}

async function renderPredictions() {
  if (!view.items.length) { replace(predSlot, empty("Nothing to predict yet.")); predictionState("none"); return; }
  if (!view.exp.run_counts.completed) {
    replace(predSlot, empty("No completed runs yet: there is no model to predict with."));
    predictionState("none");
    return;
  }
  if (view.predicting) { view.again = true; return; } // the selection changed mid-request: redo after it
  view.predicting = true;
  view.again = false;
  predictionState("pending");
  replace(predSlot, h("p", { class: "muted" }, "Predicting…"));
  try {
    const out = await api(`/v1/experiments/${enc()}/predict`, { method: "POST", body: { mixtures: view.items.map((it) => it.mixture) } });
    const preds = out.predictions;
    const metrics = view.exp.objective.metrics;
    const objective = { label: "objective", values: preds.map((p) => p.objective), titles: preds.map(interval) };
    const rows = [objective,
      ...metrics.map((m) => ({ label: m, values: preds.map((p) => (p.metrics ? p.metrics[m] : null)) }))];
    replace(predSlot, h("p", { class: "muted small" }, `${out.method}, fitted on ${out.n_runs} runs; intervals on hover.`),
      lossTable(rows, "predictions-table"));
    if (!view.again) predictionState("ready", preds.length);
  } catch (e) {
    replace(predSlot, empty("Could not predict.", errorText(e)));
    if (!view.again) predictionState("error");
  } finally {
    view.predicting = false;
  }
  if (view.again) await renderPredictions();
}

function renderObserved() {
  const withRuns = view.items.filter((it) => it.run);
  obsCard.hidden = !withRuns.length;
  if (!withRuns.length) return;
  const names = [...new Set(view.items.flatMap((it) => Object.keys((it.run && it.run.metrics) || {})))].sort();
  const rows = [{ label: "objective", values: view.items.map((it) => (it.run ? it.run.objective : null)) },
    ...names.map((m) => ({ label: m, values: view.items.map((it) => (it.run && it.run.metrics ? it.run.metrics[m] : null)) }))];
  replace(obsSlot, lossTable(rows, "observed-table"));
}

async function update() {
  syncUrl();
  await resolveAll();
  renderChips();
  renderWeights();
  renderObserved();
  await renderPredictions();
}

function addControls() {
  const sel = h("select", { "aria-label": "mixture source", "data-testid": "add-source",
    onchange: () => { runInput.hidden = sel.value !== "run"; } },
    SOURCES.map(([v, label]) => h("option", { value: v }, label)));
  const runInput = h("input", { type: "text", placeholder: "run id", hidden: true, "data-testid": "add-run-id", "aria-label": "run id" });
  const add = h("button", { "data-testid": "add-mixture", onclick: () => {
    const key = sel.value === "run" ? `run:${runInput.value.trim()}` : sel.value;
    if (key !== "run:" && !view.keys.includes(key)) { view.keys.push(key); update(); }
  } }, "Add");
  return h("div", { class: "add" }, sel, runInput, add);
}

async function pickExperiment() {
  const page = await api("/v1/experiments", { params: { page_size: 200 } });
  if (!page.experiments.length) {
    replace(main, h("div", { class: "page-head" }, h("h1", {}, "Compare mixtures")), empty("No experiments yet."));
    return;
  }
  const sel = h("select", { "data-testid": "pick-experiment", "aria-label": "experiment" },
    page.experiments.map((e) => h("option", { value: e.id }, e.name)));
  replace(main, h("div", { class: "page-head" }, h("h1", {}, "Compare mixtures")),
    card("Choose an experiment", {}, h("div", { class: "add" }, sel, h("button", { onclick: () => {
      location.search = new URLSearchParams([["experiment", sel.value], ["m", "rec"], ["m", "prior"]]).toString();
    } }, "Compare"))));
}

async function start() {
  authWidget(() => location.reload()); // the selection lives in the URL; reload with the new token
  if (!view.expId) return pickExperiment();
  try {
    view.exp = await api(`/v1/experiments/${enc()}`);
  } catch (e) {
    replace(main, empty("Could not load the experiment.", errorText(e)));
    return;
  }
  view.overview = await api(`/dashboard/api/experiments/${enc()}/overview`, { params: { max_points: 2 } });
  if (!view.keys.length) view.keys = ["rec", "prior"];
  document.title = `Compare · ${view.exp.name} · mixopt`;
  replace(main,
    h("div", { class: "page-head" }, h("div", {}, h("h1", {}, "Compare mixtures"),
      h("p", { class: "meta" }, "in ", h("a", { href: url(`/dashboard/experiments/${enc()}`) }, view.exp.name)))),
    card("Mixtures", { testid: "selection", tools: addControls() }, chipsSlot, notesSlot),
    h("div", { class: "row" },
      card("Weights", { testid: "weights" }, weightsSlot),
      h("div", { class: "stack" }, predCard, obsCard)));
  await update();
  poll(async () => {
    const next = await api(`/v1/experiments/${enc()}`);
    if (next.data_version === view.exp.data_version) return;
    view.exp = next;
    view.overview = await api(`/dashboard/api/experiments/${enc()}/overview`, { params: { max_points: 2 } });
    await update();
  }, POLL_MS);
}

start();
