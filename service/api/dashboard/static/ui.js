// DOM building, number and time formatting, and the pieces every page shares (token widget, banner,
// polling). Elements are built with createElement and text nodes only, so API data is never parsed as HTML.

import { ApiError, getToken, root, setToken } from "./api.js";

const SVG_NS = "http://www.w3.org/2000/svg";

function build(el, attrs, children) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

/** An HTML element: ``h("a", {href}, "text", child, [more])``. */
export const h = (tag, attrs = {}, ...children) => build(document.createElement(tag), attrs, children);

/** An SVG element, same calling convention as ``h``. */
export const svg = (tag, attrs = {}, ...children) => build(document.createElementNS(SVG_NS, tag), attrs, children);

export const url = (path) => root + path;

// ------------------------------------------------------------------------------------------ formatting
export function num(x, digits = 4) {
  if (x === null || x === undefined || !Number.isFinite(x)) return "—";
  const a = Math.abs(x);
  if (a !== 0 && (a < 1e-3 || a >= 1e6)) return x.toExponential(2);
  if (a >= 1000) return x.toFixed(0);
  return x.toFixed(digits);
}

export const pct = (w) => (w === null || w === undefined ? "—" : `${(100 * w).toFixed(1)}%`);

/** 60000000 -> "60M": model sizes and token counts read better with SI suffixes. */
export function si(x) {
  if (!Number.isFinite(x)) return "—";
  const units = [[1e12, "T"], [1e9, "B"], [1e6, "M"], [1e3, "k"]];
  for (const [scale, suffix] of units) {
    if (Math.abs(x) >= scale) return `${+(x / scale).toPrecision(3)}${suffix}`;
  }
  return `${+x.toPrecision(3)}`;
}

export function fidelityLabel(fid) {
  const parts = Object.entries(fid || {}).map(([k, v]) => `${k} ${si(v)}`);
  return parts.length ? parts.join(", ") : "single fidelity";
}

/** ``axis=value`` strings, the filter syntax of GET /v1/experiments/{id}/runs. */
export const fidelityFilter = (fid) => Object.entries(fid || {}).map(([k, v]) => `${k}=${v}`);

/** Timestamps without a zone are UTC (how the service stores them). */
function parseTime(s) {
  if (!s) return null;
  return new Date(/[zZ]|[+-]\d\d:?\d\d$/.test(s) ? s : `${s}Z`);
}

export function ago(s) {
  const t = parseTime(s);
  if (!t) return h("span", { class: "muted" }, "—");
  const sec = Math.max(0, (Date.now() - t.getTime()) / 1000);
  const text = sec < 60 ? "just now" : sec < 3600 ? `${Math.floor(sec / 60)} min ago`
    : sec < 86400 ? `${Math.floor(sec / 3600)} h ago` : t.toISOString().slice(0, 10);
  return h("time", { datetime: t.toISOString(), title: t.toLocaleString() }, text);
}

export const shortId = (id) => (id || "").replace(/^[a-z]+_/, "").slice(0, 8);

// ------------------------------------------------------------------------------------------- widgets
export function card(title, attrs = {}, ...body) {
  return h("section", { class: `card ${attrs.class || ""}`, id: attrs.id, "data-testid": attrs.testid },
    h("header", {}, h("h2", {}, title), attrs.tools ? h("div", { class: "tools" }, attrs.tools) : null),
    h("div", { class: "body" }, body));
}

/** A headline number with its label and a line beneath. */
export function stat({ label, value, sub, testid }) {
  return h("div", { class: "stat", "data-testid": testid }, h("div", { class: "label" }, label), h("div", { class: "value" }, value),
    h("div", { class: "sub muted" }, sub));
}

export function empty(message, detail) {
  return h("div", { class: "empty", "data-testid": "empty" }, h("p", {}, message),
    detail ? h("p", { class: "muted" }, detail) : null);
}

export function badge(text, kind = "") {
  return h("span", { class: `badge ${kind}` }, text);
}

export const STATES = ["completed", "running", "suggested", "failed", "abandoned"];

export function stateCounts(counts) {
  return h("span", { class: "counts" }, STATES.filter((s) => counts && counts[s])
    .map((s) => badge(`${counts[s]} ${s}`, `state-${s}`)));
}

export function replace(el, ...children) {
  el.replaceChildren(...children.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false));
  return el;
}

export function errorText(e) {
  return e instanceof ApiError ? `${e.message} (${e.status} ${e.code})` : String(e && e.message ? e.message : e);
}

/** The page-wide notice line (connection problems, missing token). */
function banner(message, kind = "warn") {
  const el = document.getElementById("banner");
  el.hidden = !message;
  el.className = `banner ${kind}`;
  el.textContent = message || "";
}

/**
 * Read-only by default. Actions that change state are shown only with a token, which every request then
 * carries; the server decides (once auth exists) whether the token has write scope.
 */
export function authWidget(onChange) {
  const el = document.getElementById("auth");
  const render = () => {
    const token = getToken();
    replace(el, token
      ? [badge("actions enabled", "ok"),
        h("button", { class: "link", onclick: () => { setToken(""); render(); onChange(); } }, "forget token")]
      : [badge("read-only"), h("button", { class: "link", "data-testid": "enter-token", onclick: ask }, "enter API token")]);
  };
  const ask = () => {
    const input = h("input", { type: "password", placeholder: "API token with write scope", "data-testid": "token-input",
      autocomplete: "off" });
    const form = h("form", { class: "token-form", onsubmit: (ev) => {
      ev.preventDefault();
      setToken(input.value.trim());
      render();
      onChange();
    } }, input, h("button", { type: "submit" }, "use"),
    h("button", { type: "button", class: "link", onclick: render }, "cancel"));
    replace(el, form);
    input.focus();
  };
  render();
}

export const canWrite = () => Boolean(getToken());

/**
 * Call ``tick`` every ``ms`` while the tab is visible (and once when it becomes visible again). A failed
 * tick shows the banner and the loop keeps going, so the page recovers when the server does.
 */
export function poll(tick, ms) {
  let timer = null;
  let running = false;
  const run = async () => {
    timer = null;
    if (document.hidden || running) return schedule();
    running = true;
    try {
      await tick();
      banner("");
    } catch (e) {
      banner(`Could not refresh: ${errorText(e)}. Retrying…`);
    } finally {
      running = false;
      schedule();
    }
  };
  const schedule = () => { if (timer === null) timer = setTimeout(run, ms); };
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden && timer !== null) { clearTimeout(timer); timer = null; run(); }
  });
  schedule();
}

/**
 * A table from column specs ``{label, cell: (row) => node|string, class, title}``; rows are keyed by their
 * ``id`` (data-id) and may get a class from ``rowClass(row)``.
 */
export function table(columns, rows, { testid, rowClass } = {}) {
  return h("table", { class: "grid", "data-testid": testid },
    h("thead", {}, h("tr", {}, columns.map((c) => h("th", { class: c.class, title: c.title }, c.label)))),
    h("tbody", {}, rows.map((r) => h("tr", { "data-id": r.id, class: rowClass ? rowClass(r) : null },
      columns.map((c) => h("td", { class: c.class }, c.cell(r)))))));
}

/** Save ``blob`` as ``filename`` through a temporary link (works with token-authenticated fetches). */
export function download(blob, filename) {
  const href = URL.createObjectURL(blob);
  const a = h("a", { href, download: filename });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(href), 10000);
}

/** "loss/pile_cc" for a single metric, else "mean of 13 metrics". */
export function objectiveLabel(exp) {
  const o = exp.objective;
  if (o.metrics.length === 1) return o.metrics[0];
  return `${o.aggregate.replace("_", " ")} of ${o.metrics.length} metrics`;
}

/** The top ``k`` domains of a mixture as text: "pile_cc 43% · github 12% · arxiv 9%". */
export function topDomains(mixture, k = 3) {
  return Object.entries(mixture).sort((a, b) => b[1] - a[1]).slice(0, k).filter(([, w]) => w >= 0.005)
    .map(([d, w]) => `${d} ${Math.round(100 * w)}%`).join(" · ");
}

export function interval(pred) {
  if (!pred || pred.lower === null || pred.lower === undefined || pred.upper === null || pred.upper === undefined) return "";
  return `[${num(pred.lower)}, ${num(pred.upper)}]`;
}
