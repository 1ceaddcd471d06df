// Experiments page: every experiment with its run counts, best observed and recommended objective,
// last refit and state. Search and the state filter run on the server (paged); sorting is on the loaded rows.

import { api } from "./api.js";
import { ago, authWidget, badge, card, empty, errorText, fidelityLabel, h, num, poll, replace, stateCounts, url } from "./ui.js";

const PAGE_SIZE = 50;
const POLL_MS = 3000;
const SUMMARY_CHUNK = 20;

const view = {
  q: "",
  state: "active",
  rows: [],
  next: null,
  summaries: new Map(), // id -> summary (carries the data_version it was computed for)
  sort: { key: "created", dir: -1 },
  ticks: 0,
};

const main = document.getElementById("main");
const tableSlot = h("div", { class: "table-wrap" });
const countEl = h("span", { class: "muted" });
const moreBtn = h("button", { class: "secondary", onclick: () => load(true), hidden: true }, "Load more");

const total = (counts) => Object.values(counts || {}).reduce((a, b) => a + b, 0);
const halfwidth = (p) => (p && p.upper !== null && p.lower !== null && p.upper !== undefined ? (p.upper - p.lower) / 2 : null);

const COLUMNS = [
  { key: "name", label: "Name", value: (e) => e.name.toLowerCase(),
    cell: (e) => [h("a", { href: url(`/dashboard/experiments/${encodeURIComponent(e.id)}`), class: "name" }, e.name),
      h("div", { class: "muted mono small" }, e.id)] },
  { key: "domains", label: "Domains", class: "num", value: (e) => e.domains.length,
    cell: (e) => h("span", { title: e.domains.map((d) => d.name).join(", ") }, String(e.domains.length)) },
  { key: "runs", label: "Runs", value: (e) => total(e.run_counts),
    cell: (e) => [total(e.run_counts) ? stateCounts(e.run_counts) : h("span", { class: "muted" }, "no runs"),
      e.transferred_runs ? badge(`+${e.transferred_runs} transferred`, "transferred") : null] },
  { key: "best", label: "Best observed", class: "num", value: (e) => summaryOf(e)?.best_observed?.value,
    cell: (e) => {
      const s = summaryOf(e);
      if (!s) return h("span", { class: "muted" }, "…");
      if (!s.best_observed) return h("span", { class: "muted" }, "—");
      return [num(s.best_observed.value), h("div", { class: "muted small" }, fidelityLabel(s.best_observed.fidelity))];
    } },
  { key: "recommended", label: "Recommended", class: "num", value: (e) => summaryOf(e)?.recommendation?.predicted.value,
    cell: (e) => {
      const s = summaryOf(e);
      if (!s) return h("span", { class: "muted" }, "…");
      const rec = s.recommendation;
      if (!rec) return h("span", { class: "muted" }, "—");
      const hw = halfwidth(rec.predicted);
      return [num(rec.predicted.value), hw !== null ? h("span", { class: "muted" }, ` ± ${num(hw, 3)}`) : null,
        h("div", { class: "muted small" }, rec.method, s.stale ? " · stale" : "")];
    } },
  { key: "refit", label: "Last refit", value: (e) => summaryOf(e)?.last_refit_at,
    cell: (e) => (summaryOf(e) ? ago(summaryOf(e).last_refit_at) : h("span", { class: "muted" }, "…")) },
  { key: "state", label: "State", value: (e) => e.state, cell: (e) => badge(e.state, e.state === "active" ? "ok" : "") },
  { key: "created", label: "Created", value: (e) => e.created_at, cell: (e) => ago(e.created_at) },
];

function summaryOf(e) {
  return view.summaries.get(e.id);
}

function sortedRows() {
  const col = COLUMNS.find((c) => c.key === view.sort.key);
  const rows = view.rows.slice();
  rows.sort((a, b) => {
    const va = col.value(a);
    const vb = col.value(b);
    if (va === undefined || va === null) return vb === undefined || vb === null ? 0 : 1;
    if (vb === undefined || vb === null) return -1;
    return (va < vb ? -1 : va > vb ? 1 : 0) * view.sort.dir;
  });
  return rows;
}

function render() {
  countEl.textContent = `${view.rows.length}${view.next ? "+" : ""} shown`;
  moreBtn.hidden = !view.next;
  if (!view.rows.length) {
    replace(tableSlot, view.q
      ? empty(`No experiment matches “${view.q}”.`)
      : empty("No experiments yet.", "Create one with the Python client (MixoptClient.create_experiment) "
        + "or POST /v1/experiments; it appears here within seconds."));
    return;
  }
  const head = h("tr", {}, COLUMNS.map((c) => {
    const active = view.sort.key === c.key;
    return h("th", { class: c.class, "aria-sort": active ? (view.sort.dir > 0 ? "ascending" : "descending") : null },
      h("button", { class: "sort", "data-sort": c.key, onclick: () => {
        view.sort = { key: c.key, dir: active ? -view.sort.dir : 1 };
        render();
      } }, c.label, active ? (view.sort.dir > 0 ? " ▲" : " ▼") : ""));
  }));
  const body = sortedRows().map((e) => h("tr", { "data-id": e.id }, COLUMNS.map((c) => h("td", { class: c.class }, c.cell(e)))));
  replace(tableSlot, h("table", { class: "grid", "data-testid": "experiments-table" }, h("thead", {}, head), h("tbody", {}, body)));
}

function params(pageSize, token) {
  return { q: view.q, state: view.state === "all" ? "" : view.state, page_size: pageSize, page_token: token };
}

async function load(more = false) {
  const page = await api("/v1/experiments", { params: params(PAGE_SIZE, more ? view.next : undefined) });
  view.rows = more ? [...view.rows, ...page.experiments] : page.experiments;
  view.next = page.next_page_token || null;
  render();
  await loadSummaries(page.experiments);
}

/** Summaries for ``rows``, in chunks so the first cells fill in quickly on a long list. */
async function loadSummaries(rows) {
  for (let i = 0; i < rows.length; i += SUMMARY_CHUNK) {
    const ids = rows.slice(i, i + SUMMARY_CHUNK).map((e) => e.id);
    const out = await api("/dashboard/api/summaries", { params: { id: ids } });
    for (const [id, s] of Object.entries(out.summaries)) view.summaries.set(id, s);
    render();
  }
}

/** Re-read the loaded rows; fetch summaries for those whose data changed (all of them now and then). */
async function refresh() {
  view.ticks += 1;
  const size = Math.min(1000, Math.max(PAGE_SIZE, view.rows.length));
  const page = await api("/v1/experiments", { params: params(size) });
  view.rows = page.experiments;
  view.next = page.next_page_token || null;
  render();
  const everything = view.ticks % 6 === 0;
  await loadSummaries(view.rows.filter((e) => everything || summaryOf(e)?.data_version !== e.data_version));
}

function start() {
  let debounce;
  const search = h("input", { type: "search", placeholder: "Search by name", "data-testid": "search", "aria-label": "search experiments",
    oninput: () => {
      clearTimeout(debounce);
      debounce = setTimeout(() => { view.q = search.value.trim(); load().catch(showError); }, 250);
    } });
  const stateSel = h("select", { "data-testid": "state-filter", "aria-label": "state",
    onchange: () => { view.state = stateSel.value; load().catch(showError); } },
    ["active", "archived", "all"].map((s) => h("option", { value: s, selected: s === view.state }, s === "all" ? "all states" : s)));
  replace(main,
    h("div", { class: "page-head" }, h("h1", {}, "Experiments"), countEl),
    card("All experiments", { tools: [search, stateSel], testid: "experiments" }, tableSlot, h("div", { class: "pager" }, moreBtn)));
  authWidget(() => load().catch(showError)); // another token may see other experiments
  load().catch(showError);
  poll(refresh, POLL_MS);
}

function showError(e) {
  replace(tableSlot, empty("Could not load experiments.", errorText(e)));
}

start();
