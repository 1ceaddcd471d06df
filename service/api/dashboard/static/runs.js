// The runs table (server-side paging, state and fidelity filters, CSV export, selection for comparison)
// and the list of proposed runs still pending. Both read GET /v1/experiments/{id}/runs.

import { api } from "./api.js";
import { mixtureBar } from "./charts.js";
import {
  STATES, ago, badge, card, download, empty, errorText, fidelityFilter, fidelityLabel, h, interval, num, replace,
  shortId, table, topDomains, url,
} from "./ui.js";

const PAGE_SIZES = [25, 50, 100, 250];
const PENDING_LIMIT = 100;

const domainsOf = (exp) => exp.domains.map((d) => d.name);

function mixtureCell(run, exp) {
  return h("div", { class: "mixture", title: topDomains(run.mixture, 17) }, mixtureBar(run.mixture, domainsOf(exp)),
    h("div", { class: "small muted" }, topDomains(run.mixture)));
}

function metricsCell(run, exp) {
  const names = Object.keys(run.metrics || {});
  if (!names.length) return h("span", { class: "muted" }, "—");
  const first = exp.objective.metrics.filter((m) => m in run.metrics);
  const shown = (first.length ? first : names).slice(0, 2);
  const all = names.map((m) => `${m}: ${num(run.metrics[m])}`).join("\n");
  return h("span", { title: all, class: "small" }, shown.map((m) => `${m} ${num(run.metrics[m])}`).join(" · "),
    names.length > shown.length ? h("span", { class: "muted" }, ` +${names.length - shown.length}`) : null);
}

const predictedCell = (run) => (run.predicted
  ? h("span", { title: interval(run.predicted) }, num(run.predicted.value))
  : h("span", { class: "muted" }, "—"));

const runIdCell = (run) => h("span", { class: "mono", title: run.id }, shortId(run.id));

/**
 * The runs card. ``ctx.exp()`` is the current experiment, ``ctx.levels()`` the observed fidelity levels.
 * Returns {card, refresh}; refresh re-reads the current page (new runs on it appear in place).
 */
export function runsSection(ctx) {
  const view = { state: "", level: "", size: 25, tokens: [undefined], index: 0, next: null, rows: [], selected: new Set(), seq: 0 };
  const slot = h("div", { class: "table-wrap" });
  const status = h("span", { class: "muted small", "data-testid": "runs-status" });
  const stateSel = h("select", { "data-testid": "runs-state", "aria-label": "state filter",
    onchange: () => { view.state = stateSel.value; restart(); } },
    h("option", { value: "" }, "all states"), STATES.map((s) => h("option", { value: s }, s)));
  const levelSel = h("select", { "data-testid": "runs-fidelity", "aria-label": "fidelity filter",
    onchange: () => { view.level = levelSel.value; restart(); } });
  const sizeSel = h("select", { "aria-label": "page size", onchange: () => { view.size = +sizeSel.value; restart(); } },
    PAGE_SIZES.map((n) => h("option", { value: n, selected: n === view.size }, `${n} / page`)));
  const prev = h("button", { class: "secondary", "data-testid": "runs-prev", onclick: () => { view.index -= 1; load(); } }, "‹ Prev");
  const next = h("button", { class: "secondary", "data-testid": "runs-next",
    onclick: () => { view.tokens[view.index + 1] = view.next; view.index += 1; load(); } }, "Next ›");
  const exportBtn = h("button", { class: "secondary", "data-testid": "export-csv",
    onclick: () => exportCsv().catch((e) => { status.textContent = errorText(e); }) }, "Export CSV");
  const compareLink = h("a", { class: "button secondary", "data-testid": "compare-selected" }, "Compare selected");

  const filters = () => ({ state: view.state, fidelity: view.level ? fidelityFilter(JSON.parse(view.level)) : [] });

  function syncLevels() {
    const levels = ctx.levels();
    const current = levelSel.value;
    replace(levelSel, h("option", { value: "" }, "all fidelities"),
      levels.map((f) => h("option", { value: JSON.stringify(f), selected: JSON.stringify(f) === current }, fidelityLabel(f))));
  }

  function restart() {
    view.tokens = [undefined];
    view.index = 0;
    load();
  }

  async function load() {
    const exp = ctx.exp();
    const seq = ++view.seq; // a filter change and a poll may overlap: only the latest answer is drawn
    try {
      const page = await api(`/v1/experiments/${encodeURIComponent(exp.id)}/runs`,
        { params: { ...filters(), page_size: view.size, page_token: view.tokens[view.index] } });
      if (seq !== view.seq) return;
      view.rows = page.runs;
      view.next = page.next_page_token || null;
      render();
    } catch (e) {
      replace(slot, empty("Could not load runs.", errorText(e)));
    }
  }

  function render() {
    const exp = ctx.exp();
    prev.disabled = view.index === 0;
    next.disabled = !view.next;
    const first = view.index * view.size;
    status.textContent = view.rows.length ? `rows ${first + 1}–${first + view.rows.length}${view.next ? "" : " (last page)"}` : "";
    syncCompare();
    if (!view.rows.length) {
      const filtered = view.state || view.level;
      replace(slot, empty(filtered ? "No runs match these filters." : "No runs yet.",
        filtered ? null : "Runs reported through the API appear here without reloading."));
      return;
    }
    const columns = [
      { label: "", cell: (r) => h("input", { type: "checkbox", "aria-label": `select ${r.id}`, checked: view.selected.has(r.id),
        onchange: (ev) => { if (ev.target.checked) view.selected.add(r.id); else view.selected.delete(r.id); syncCompare(); } }) },
      { label: "Run", cell: runIdCell },
      { label: "State", cell: (r) => badge(r.state, `state-${r.state}`) },
      { label: "Fidelity", cell: (r) => fidelityLabel(r.fidelity) },
      { label: "Mixture", cell: (r) => mixtureCell(r, exp) },
      { label: "Objective", class: "num", cell: (r) => num(r.objective) },
      { label: "Metrics", cell: (r) => metricsCell(r, exp) },
      { label: "Cost", class: "num", cell: (r) => num(r.cost, 2) },
      { label: "Method", cell: (r) => r.method || "—" },
      { label: "Predicted", class: "num", cell: predictedCell },
      { label: "Updated", cell: (r) => ago(r.completed_at || r.updated_at) },
    ];
    replace(slot, table(columns, view.rows, { testid: "runs-table", rowClass: (r) => (r.state === "failed" ? "failed" : null) }));
  }

  function syncCompare() {
    const exp = ctx.exp();
    const q = new URLSearchParams({ experiment: exp.id });
    for (const id of view.selected) q.append("m", `run:${id}`);
    compareLink.textContent = `Compare selected (${view.selected.size})`;
    compareLink.href = url(`/dashboard/compare?${q}`);
    compareLink.classList.toggle("disabled", view.selected.size === 0);
  }

  async function exportCsv() {
    const exp = ctx.exp();
    status.textContent = "exporting…";
    const blob = await api(`/dashboard/api/experiments/${encodeURIComponent(exp.id)}/runs.csv`, { params: filters(), as: "blob" });
    download(blob, `${exp.name.replace(/[^A-Za-z0-9._-]+/g, "_")}-runs.csv`);
    status.textContent = "exported";
  }

  const el = card("Runs", { testid: "runs", tools: [stateSel, levelSel, sizeSel, exportBtn, compareLink] },
    slot, h("div", { class: "pager" }, prev, next, status));
  syncLevels();
  return { card: el, refresh: load, syncLevels };
}

/** Suggested and running runs: what the service proposed that has no result yet. */
export function pendingSection(ctx) {
  const slot = h("div", { class: "table-wrap" });
  const el = card("Proposed, still pending", { testid: "pending" }, slot);

  async function refresh() {
    const exp = ctx.exp();
    const n = (exp.run_counts.suggested || 0) + (exp.run_counts.running || 0);
    if (!n) {
      replace(slot, empty("No proposed runs are waiting.", "Suggestions appear here until their results are reported."));
      return;
    }
    const page = await api(`/v1/experiments/${encodeURIComponent(exp.id)}/runs`,
      { params: { state: ["suggested", "running"], page_size: PENDING_LIMIT } });
    const columns = [
      { label: "Run", cell: runIdCell },
      { label: "State", cell: (r) => badge(r.state, `state-${r.state}`) },
      { label: "Fidelity", cell: (r) => fidelityLabel(r.fidelity) },
      { label: "Mixture", cell: (r) => mixtureCell(r, exp) },
      { label: "Method", cell: (r) => r.method || "—" },
      { label: "Predicted", class: "num", cell: predictedCell },
      { label: "Proposed", cell: (r) => ago(r.created_at) },
    ];
    replace(slot, n > page.runs.length ? h("p", { class: "muted small" }, `The first ${page.runs.length} of ${n}.`) : null,
      table(columns, page.runs, { testid: "pending-table" }));
  }

  return { card: el, refresh };
}

/**
 * Runs brought in from other experiments (warm start), marked with their source: never this experiment's
 * own runs, so they appear here only, not in the runs table, the counts or the best-so-far chart.
 * Reads GET /v1/experiments/{id}/transferred-runs.
 */
export function transferredSection(ctx) {
  const slot = h("div", { class: "table-wrap" });
  const el = card("Transferred from other experiments (warm start)", { testid: "transferred" }, slot);
  const sourceLink = (id) => h("a", { class: "mono", href: url(`/dashboard/experiments/${encodeURIComponent(id)}`), title: id }, shortId(id));

  async function refresh() {
    const exp = ctx.exp();
    el.hidden = !exp.transferred_runs;
    if (!exp.transferred_runs) return;
    const page = await api(`/v1/experiments/${encodeURIComponent(exp.id)}/transferred-runs`, { params: { page_size: PENDING_LIMIT } });
    const columns = [
      { label: "", cell: () => badge("transferred", "transferred") },
      { label: "Source", cell: (r) => sourceLink(r.source_experiment_id) },
      { label: "Source run", cell: (r) => h("span", { class: "mono", title: r.source_run_id }, shortId(r.source_run_id)) },
      { label: "Fidelity (as measured)", cell: (r) => fidelityLabel(r.fidelity) },
      { label: "Mixture", cell: (r) => mixtureCell(r, exp) },
      { label: "Loss", class: "num", cell: (r) => h("span", { title: r.task === "target_objective"
        ? "this experiment's objective (lower is better)" : "the source experiment's own objective (lower is better)" }, num(r.loss)) },
      { label: "Task", cell: (r) => (r.task === "target_objective" ? "this objective" : "source's objective") },
      { label: "Weight", class: "num", cell: (r) => num(r.weight) },
    ];
    const n = exp.transferred_runs;
    replace(slot, h("p", { class: "muted small" }, `${n} runs of other experiments inform the models as a learned prior; `,
      "they are not counted as this experiment's runs.", n > page.runs.length ? ` The first ${page.runs.length} are listed.` : ""),
    table(columns, page.runs, { testid: "transferred-table", rowClass: () => "transferred" }));
  }

  return { card: el, refresh };
}
