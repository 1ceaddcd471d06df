// What the models did: law fidelity (CV scores per law, the selected one marked), predicted against
// observed for the selected law, how the recommendation moved across refits, and online sessions' weights
// over training steps. Each reads an endpoint a server may not have yet and says so when it is missing.

import { api, optional } from "./api.js";
import { colorFor, every, legend, scatter, stackedArea, stackedColumns } from "./charts.js";
import { ago, badge, card, empty, h, num, replace, si, table } from "./ui.js";

const MAX_SCATTER = 2000;
const MAX_COLUMNS = 60;
const MAX_STEPS = 400;

const path = (exp, tail) => `/v1/experiments/${encodeURIComponent(exp.id)}/${tail}`;

/**
 * A cross-validated score of a fit. ``scores.cv`` maps a route to scores ({from_metrics: {spearman, ..}});
 * the service predicts through ``from_metrics``, so that route comes first. Flat shapes are read too.
 */
const ROUTE = "from_metrics";

function cvScore(fit, key) {
  const scores = fit.scores || {};
  const cv = scores.cv && typeof scores.cv === "object" ? scores.cv : scores;
  const route = cv[ROUTE] || Object.values(cv).find((v) => v && typeof v === "object" && key in v) || cv;
  const v = route[key];
  return Number.isFinite(v) ? v : null;
}

/** Out-of-fold predictions {law, observed, predicted} of the selected law, wherever the server puts them. */
function oofOf(out, fits) {
  const valid = (o) => o && Array.isArray(o.observed) && Array.isArray(o.predicted) && o.observed.length ? o : null;
  if (valid(out.oof)) return out.oof;
  const selected = fits.find((f) => f.selected);
  if (!selected) return null;
  const scores = selected.scores || {};
  const found = valid(scores.oof) || valid(scores.cv && scores.cv.oof) || valid(selected.params && selected.params.oof);
  return found ? { law: selected.law, ...found } : null;
}

/**
 * Without a refit a recommendation made by the law method picked its law itself (a quick selection, or the
 * law a refit selected earlier): say which, so the card agrees with the recommendation shown elsewhere.
 */
async function recommendationLaw(exp) {
  const overview = await api(`/dashboard/api/experiments/${encodeURIComponent(exp.id)}/overview`, { params: { max_points: 2 } });
  const rec = overview.summary.recommendation;
  const law = rec && rec.details && rec.details.law;
  if (!law) return null;
  const sel = rec.details.selection || {};
  const how = sel.source === "quick_selection"
    ? `picked by a quick cross-validated selection${Number.isFinite(sel.cv_spearman) ? ` (Spearman ${num(sel.cv_spearman, 3)})` : ""}`
    : "the law a refit selected";
  return h("p", { class: "note", "data-testid": "recommendation-law", "data-law": law },
    `The recommendation (${rec.method}, ${rec.n_runs} runs, `, ago(rec.created_at), `) used law ${law}, ${how}.`);
}

/** The law fidelity table and the predicted-vs-observed scatter of the selected law. */
export function fitsSection(ctx) {
  const tableSlot = h("div", { class: "table-wrap" });
  const scatterSlot = h("div", {});
  const fitsCard = card("Law fidelity", { testid: "fits" }, tableSlot);
  const scatterCard = card("Predicted vs observed", { testid: "oof" }, scatterSlot);

  async function refresh() {
    const exp = ctx.exp();
    const out = await optional("/v1/experiments/{}/fits", path(exp, "fits"), { params: { latest: true } });
    if (out === null) {
      const msg = "Law fits are not available on this server yet.";
      replace(tableSlot, empty(msg));
      replace(scatterSlot, empty(msg));
      return;
    }
    const rank = (f) => cvScore(f, "spearman") ?? -2;
    const fits = (out.fits || []).slice().sort((a, b) => (b.selected - a.selected) || (rank(b) - rank(a)));
    if (!fits.length) {
      replace(tableSlot, empty("No refit has scored the laws yet.", "Every law's cross-validated scores appear here after the next refit."),
        await recommendationLaw(exp));
    } else {
      const first = fits[0];
      const devices = [...new Set(fits.map((f) => f.device).filter(Boolean))].join(", ");
      replace(tableSlot,
        h("p", { class: "muted small" }, `${fits.length} laws fitted on ${first.n_runs} runs (data version `
          + `${first.data_version}) on ${devices || "?"}, `, ago(first.created_at),
          "; scores are cross-validated, objective formed from per-metric predictions."),
        table([
          { label: "Law", cell: (f) => [f.law, f.selected ? badge("selected", "ok") : null,
            f.scores && f.scores.skipped ? h("div", { class: "muted small" }, `skipped: ${f.scores.skipped}`) : null] },
          { label: "Spearman", class: "num", title: "rank correlation", cell: (f) => num(cvScore(f, "spearman"), 3) },
          { label: "MAE", class: "num", cell: (f) => num(cvScore(f, "mae"), 4) },
          { label: "R²", class: "num", cell: (f) => num(cvScore(f, "r2"), 3) },
          { label: "Top-k hit", class: "num", cell: (f) => num(cvScore(f, "top_k_hit"), 2) },
          { label: "Fit time", class: "num", cell: (f) => (Number.isFinite(f.duration_s) ? `${f.duration_s.toFixed(1)} s` : "—") },
        ], fits, { testid: "fits-table", rowClass: (f) => (f.selected ? "selected" : null) }));
    }
    const oof = oofOf(out, fits);
    if (!oof) {
      replace(scatterSlot, empty("No out-of-fold predictions yet.", "They come with the selected law's cross-validation."));
      return;
    }
    const all = oof.observed.map((o, i) => [o, oof.predicted[i]]).filter(([a, b]) => Number.isFinite(a) && Number.isFinite(b));
    const points = every(all, MAX_SCATTER);
    replace(scatterSlot,
      h("p", { class: "muted small" }, `Law ${oof.law}, cross-validated: each point predicted by a fit that did not see it.`,
        points.length < all.length ? ` Showing ${points.length} of ${all.length} points.` : ""),
      scatter({ points, xLabel: "observed", yLabel: "predicted" }));
  }

  return { cards: [fitsCard, scatterCard], refresh };
}

/** Per-domain weight of the recommendation at each refit, oldest left. */
export function historySection(ctx) {
  const slot = h("div", {});
  const el = card("Recommendation across refits", { testid: "history" }, slot);

  async function refresh() {
    const exp = ctx.exp();
    const out = await optional("/v1/experiments/{}/history", path(exp, "history"));
    if (out === null) {
      replace(slot, empty("Recommendation history is not available on this server yet."));
      return;
    }
    const recs = (out.recommendations || []).slice().sort((a, b) => (a.created_at < b.created_at ? -1 : 1));
    if (!recs.length) {
      replace(slot, empty("No recommendation has been computed yet."));
      return;
    }
    const domains = exp.domains.map((d) => d.name);
    const selectedLaw = new Map((out.refits || []).map((r) => [r.job_id, r.selected_law]));
    const shown = every(recs, MAX_COLUMNS);
    const columns = shown.map((r) => ({
      label: String(r.n_runs),
      title: [`${r.n_runs} runs`, `data version ${r.data_version}`, r.method,
        selectedLaw.get(r.job_id) ? `law ${selectedLaw.get(r.job_id)}` : null]
        .filter(Boolean).join(" · "),
      values: domains.map((d) => (r.mixture && r.mixture[d]) || 0),
    }));
    replace(slot,
      shown.length < recs.length ? h("p", { class: "muted small" },
        `Every ${Math.ceil(recs.length / MAX_COLUMNS)}th of ${recs.length} recommendations.`) : null,
      stackedColumns({ columns, keys: domains, colors: domains.map((_, i) => colorFor(i)),
        xLabel: "runs the model was fitted on, one column per recommendation" }),
      legend(domains.map((d, i) => ({ name: d, color: colorFor(i) }))));
  }

  return { card: el, refresh };
}

/** Online (in-training) sessions: the mixture weights each session used over training steps. */
export function onlineSection(ctx) {
  const slot = h("div", {});
  const picker = h("select", { "aria-label": "online session", "data-testid": "online-session", hidden: true,
    onchange: () => show(picker.value) });
  const el = card("Online sessions", { testid: "online", tools: [picker] }, slot);

  async function show(sessionId) {
    const exp = ctx.exp();
    const s = await api(path(exp, `online-sessions/${encodeURIComponent(sessionId)}`));
    const traj = every(s.trajectory || [], MAX_STEPS);
    if (traj.length < 2) {
      replace(slot, empty("This session has not logged enough steps to draw yet."));
      return;
    }
    const domains = s.domains && s.domains.length ? s.domains : exp.domains.map((d) => d.name);
    const color = (d) => colorFor(Math.max(0, exp.domains.findIndex((x) => x.name === d)));
    replace(slot,
      h("p", { class: "muted small" }, `${s.method || "online"} · ${(s.trajectory || []).length} logged steps`),
      stackedArea({ xs: traj.map((t) => t.step), rows: traj.map((t) => domains.map((d) => t.weights[d] || 0)), keys: domains,
        colors: domains.map(color), xLabel: "training step", xFormat: si }),
      legend(domains.map((d) => ({ name: d, color: color(d) }))));
  }

  async function refresh() {
    const exp = ctx.exp();
    const out = await optional("/v1/experiments/{}/online-sessions", path(exp, "online-sessions"));
    if (out === null) {
      picker.hidden = true;
      replace(slot, empty("Online sessions are not available on this server yet."));
      return;
    }
    const sessions = out.sessions || [];
    if (!sessions.length) {
      picker.hidden = true;
      replace(slot, empty("No online sessions for this experiment."));
      return;
    }
    const current = picker.value || sessions[sessions.length - 1].id;
    replace(picker, sessions.map((s) => h("option", { value: s.id, selected: s.id === current },
      `${s.method || "session"} · step ${s.last_step ?? "?"} · ${s.id}`)));
    picker.hidden = sessions.length < 2;
    await show(current);
  }

  return { card: el, refresh };
}
