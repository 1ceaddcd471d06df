// Experiment page: the recommendation at target scale beside the natural distribution, best-so-far against
// cumulative cost per fidelity, runs, pending proposals, law fidelity, refit history and online sessions.
// It polls the experiment (cheap) and re-reads the data sections only when its data version or run counts
// change; model sections (fits, history) are re-read every few polls since refits do not change the data.
// The recommendation shown is the stored one (refits keep it current); fitting anew is an explicit click.

import { ApiError, api, has } from "./api.js";
import { PALETTE, hbars, legend, lines } from "./charts.js";
import { cmrSection } from "./continual.js";
import { fitsSection, historySection, onlineSection } from "./models.js";
import { constraintLabel, outcomesList, paretoSection } from "./pareto.js";
import { pendingSection, runsSection, transferredSection } from "./runs.js";
import {
  ago, authWidget, badge, canWrite, card, empty, errorText, fidelityLabel, h, interval, num, objectiveLabel, pct, poll,
  replace, si, stat, stateCounts, url,
} from "./ui.js";

const POLL_MS = 2000;
const MODEL_EVERY = 8; // polls between re-reads of fits, history and the stored recommendation
const PRIOR_COLOR = "#b9c3ce";

const main = document.getElementById("main");
const expId = document.body.dataset.experimentId;
const enc = encodeURIComponent(expId);

let exp = null;
let overview = null;
let fresh = null; // a recommendation computed on this page (newer than the stored one it replaced)
let computing = false;

const ctx = {
  exp: () => exp,
  levels: () => (overview ? overview.progress.curves.map((c) => c.fidelity) : []),
};

const headSlot = h("div", { class: "page-head" });
const emptySlot = h("div", {});
const recSlot = h("div", {});
const progressSlot = h("div", {});
const recCard = card("Recommendation at target scale", { testid: "recommendation" }, recSlot);
let logX = null; // null until the reader chooses: then log when the costs span more than two decades
const logBox = h("input", { type: "checkbox", "data-testid": "log-x", onchange: () => { logX = logBox.checked; renderProgress(); } });
const logToggle = h("label", { class: "small muted" }, logBox, " log x");
const progressCard = card("Best so far against cumulative cost", { testid: "progress", tools: logToggle }, progressSlot);
const runs = runsSection(ctx);
const pending = pendingSection(ctx);
const transferred = transferredSection(ctx);
const fits = fitsSection(ctx);
const history = historySection(ctx);
const online = onlineSection(ctx);
const cmr = cmrSection(ctx);
const pareto = paretoSection(ctx);
const actionMsg = h("span", { class: "muted small", "data-testid": "action-status" });

const totalRuns = () => Object.values(exp.run_counts).reduce((a, b) => a + b, 0);

// --------------------------------------------------------------------------------------------- header
function renderHead() {
  const axes = exp.fidelities.map((a) => `${a.name} ${si(a.min)}–${si(a.max)}, target ${si(a.target)}`).join("; ");
  const costs = exp.search.level_costs.map((lc) => `${fidelityLabel(lc.fidelity)} costs ${si(lc.cost)}`).join(", ");
  const compare = new URLSearchParams({ experiment: exp.id });
  for (const m of ["rec", "prior", "best"]) compare.append("m", m);
  replace(headSlot,
    h("div", {},
      h("h1", {}, exp.name, " ", badge(exp.state, exp.state === "active" ? "ok" : "")),
      h("div", { class: "muted small mono" }, exp.id),
      h("p", { class: "meta" },
        `${exp.domains.length} domains · objective ${objectiveLabel(exp)} (${exp.objective.goal}) · `,
        (exp.objective.constraints || []).length
          ? `subject to ${exp.objective.constraints.map(constraintLabel).join(", ")} · ` : "",
        axes ? `fidelity ${axes} · ` : "",
        costs ? h("span", { "data-testid": "level-costs" }, `declared: ${costs} · `) : null,
        `data version ${exp.data_version}`),
      h("div", { "data-testid": "run-counts" }, totalRuns() ? stateCounts(exp.run_counts) : h("span", { class: "muted" }, "no runs"),
        exp.transferred_runs ? badge(`+${exp.transferred_runs} transferred`, "transferred") : null)),
    h("div", { class: "head-tools" },
      h("a", { class: "button secondary", href: url(`/dashboard/compare?${compare}`) }, "Compare mixtures"),
      canWrite() ? actions() : null, actionMsg));
  replace(emptySlot, totalRuns() ? null : card("No runs yet", { testid: "empty-state", class: "empty-state" },
    h("p", {}, "This experiment has no runs. Report results with the Python client (", h("code", {}, "client.report"),
      " or ", h("code", {}, "client.import_runs"), ") or request suggestions; this page fills in by itself as they arrive."),
    h("p", { class: "muted" }, "Charts, the recommendation and law fits appear once completed runs are reported.")));
}

/** Buttons that change state; only shown with a token (the server checks its scope). */
function actions() {
  const archived = exp.state === "archived";
  const count = h("input", { type: "number", min: 1, max: 1000, value: 8, class: "count", "aria-label": "number of suggestions" });
  const refit = h("button", { class: "secondary", hidden: true, onclick: () => act("refit requested",
    () => api(`/v1/experiments/${enc}/refits`, { method: "POST", body: {} })) }, "Trigger refit");
  has("POST", "/v1/experiments/{}/refits").then((ok) => { refit.hidden = !ok; });
  return h("div", { class: "actions", "data-testid": "actions" },
    h("button", { class: "secondary", "data-testid": "archive", onclick: () => act(archived ? "unarchived" : "archived",
      () => api(`/v1/experiments/${enc}`, { method: "PATCH", body: { state: archived ? "active" : "archived" } })) },
    archived ? "Unarchive" : "Archive"),
    h("span", { class: "group" }, count, h("button", { class: "secondary", disabled: archived, onclick: () => act("suggestions requested",
      () => api(`/v1/experiments/${enc}/suggestions`, { method: "POST", body: { count: +count.value } })) }, "Request suggestions")),
    refit);
}

async function act(done, call) {
  actionMsg.textContent = "working…";
  try {
    const out = await call();
    actionMsg.textContent = out && out.job ? `${done}: job ${out.job.id} ${out.job.state}` : done;
    await reloadExperiment(true);
  } catch (e) {
    actionMsg.textContent = errorText(e);
  }
}

// ------------------------------------------------------------------------------------- recommendation
function currentRecommendation() {
  const stored = overview && overview.summary.recommendation;
  if (fresh && (!stored || fresh.created_at >= stored.created_at)) return fresh;
  return stored;
}

function renderRecommendation() {
  const rec = currentRecommendation();
  if (!rec) {
    if (computing) replace(recSlot, empty("Fitting the model…", "This can take a minute on large experiments."));
    else if (!exp.run_counts.completed) replace(recSlot, empty("No recommendation yet.", "It appears once completed runs are reported."));
    else {
      replace(recSlot, empty("No recommendation computed yet.",
        "Refits compute one; or fit the model now (it can take minutes on large experiments)."),
        h("div", { class: "center" }, h("button", { "data-testid": "compute-rec", onclick: computeRecommendation }, "Compute now")));
    }
    return;
  }
  const stale = rec.data_version !== exp.data_version;
  const names = exp.domains.map((d) => d.name);
  const priors = exp.domains.map((d) => d.prior);
  const hasPrior = priors.some((p) => p !== null && p !== undefined);
  const priorSum = priors.reduce((a, p) => a + (p || 0), 0) || 1;
  const order = names.map((_, i) => i).sort((a, b) => (rec.mixture[names[b]] || 0) - (rec.mixture[names[a]] || 0));
  const series = [{ name: "recommended", color: PALETTE[0], values: order.map((i) => rec.mixture[names[i]] || 0) }];
  if (hasPrior) series.push({ name: "natural (prior)", color: PRIOR_COLOR, values: order.map((i) => (priors[i] || 0) / priorSum) });
  const target = fidelityLabel(rec.fidelity);
  replace(recSlot,
    h("div", { class: "stats" },
      stat({ label: "Predicted objective", value: num(rec.predicted.value), sub: interval(rec.predicted), testid: "rec-value" }),
      stat({ label: "Method", value: rec.method, sub: `${rec.n_runs} runs used` }),
      stat({ label: "At", value: target, sub: ["computed ", ago(rec.created_at)] })),
    stale ? h("p", { class: "note", "data-testid": "rec-stale" },
      `Computed at data version ${rec.data_version}; results have arrived since. `,
      computing ? "Updating…" : h("button", { class: "link", onclick: computeRecommendation }, "Update now")) : null,
    outcomesList(rec.constraints),
    h("div", { "data-testid": "rec-chart" }, hbars({ categories: order.map((i) => names[i]), series, format: pct })),
    legend(series.map((s) => ({ name: s.name, color: s.color }))));
}

/**
 * GET /recommendation: the public read, which fits a model when the stored one is out of date. Only on
 * request: a page view never starts a model fit by itself (a multi-fidelity BO fit can take minutes).
 */
async function computeRecommendation() {
  if (computing) return;
  computing = true;
  renderRecommendation();
  try {
    fresh = await api(`/v1/experiments/${enc}/recommendation`);
  } catch (e) {
    if (e instanceof ApiError && e.status === 409 && e.code === "no_feasible_mixture") {
      replace(recSlot, empty("No mixture meets the outcome constraints.", errorText(e)));
      return;
    }
    if (!(e instanceof ApiError && e.status === 409)) replace(recSlot, empty("Could not compute a recommendation.", errorText(e)));
  } finally {
    computing = false;
  }
  renderRecommendation();
}

// ------------------------------------------------------------------------------------------- progress
function renderProgress() {
  if (!overview) return;
  const p = overview.progress;
  if (!p.curves.length) {
    replace(progressSlot, empty("No completed runs yet.", "The best objective so far is drawn per fidelity as results arrive."));
    return;
  }
  const series = p.curves.map((c, i) => ({
    name: `${fidelityLabel(c.fidelity)} (${c.n_runs} runs)`, color: PALETTE[(i + 1) % PALETTE.length], points: c.points,
  }));
  const xLabel = p.x_unit === "cost" ? "cumulative cost of completed runs" : "completed runs (not every run reported a cost)";
  const xs = p.curves.flatMap((c) => c.points.map((pt) => pt[0])).filter((x) => x > 0);
  const log = logX ?? Math.max(...xs) / Math.min(...xs) > 100;
  logBox.checked = log;
  replace(progressSlot,
    h("div", { class: "stats" }, p.curves.map((c) =>
      stat({ label: `Best at ${fidelityLabel(c.fidelity)}`, value: num(c.best), sub: `${c.n_runs} runs` }))),
    h("div", { "data-testid": "progress-chart" },
      lines({ series, xLabel, yLabel: `best ${objectiveLabel(exp)} (${p.goal})`, xFrom: 0, xLog: log, xFormat: si })),
    legend(series));
}

// ------------------------------------------------------------------------------------------- refresh
async function refreshData() {
  overview = await api(`/dashboard/api/experiments/${enc}/overview`);
  renderRecommendation();
  renderProgress();
  runs.syncLevels();
  await Promise.all([runs.refresh(), pending.refresh(), transferred.refresh(), exp.continual ? cmr.refresh() : null]);
}

const refreshModels = () => Promise.all([fits.refresh(), history.refresh(), online.refresh()]);

async function reloadExperiment(force = false) {
  const next = await api(`/v1/experiments/${enc}`);
  const changed = force || next.data_version !== exp.data_version || JSON.stringify(next.run_counts) !== JSON.stringify(exp.run_counts)
    || next.state !== exp.state || next.transferred_runs !== exp.transferred_runs;
  exp = next;
  if (changed) {
    renderHead();
    await refreshData();
  }
  return changed;
}

async function start() {
  try {
    exp = await api(`/v1/experiments/${enc}`);
  } catch (e) {
    const missing = e instanceof ApiError && e.status === 404;
    replace(main, empty(missing ? "Experiment not found." : "Could not load the experiment.", errorText(e)),
      h("p", {}, h("a", { href: url("/dashboard") }, "All experiments")));
    // Without a (valid) token the server answers 401: let one be entered, then start over with it.
    if (e instanceof ApiError && e.status === 401) authWidget(() => location.reload());
    return;
  }
  document.title = `${exp.name} · mixopt`;
  replace(main, headSlot, emptySlot,
    h("div", { class: "row" }, recCard, progressCard),
    exp.continual ? cmr.card : null,
    runs.card, pending.card, transferred.card,
    h("div", { class: "row" }, ...fits.cards),
    h("div", { class: "row" }, history.card, online.card),
    pareto.card);
  pareto.refresh();
  renderHead();
  authWidget(() => renderHead());
  await Promise.all([refreshData(), refreshModels()]);
  let ticks = 0;
  poll(async () => {
    ticks += 1;
    const changed = await reloadExperiment();
    if (ticks % MODEL_EVERY === 0) {
      if (!changed) await refreshData();
      await refreshModels();
    }
  }, POLL_MS);
}

start();
