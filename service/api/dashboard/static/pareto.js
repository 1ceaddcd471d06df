// Outcome constraints and the trade-off front: the constraints the objective carries (with the bound each
// resolved to), and the predicted front -- objective against a constrained metric, or between the
// objective's metrics -- drawn with the observed runs. The front fits a model, so it is computed on request
// only, like the recommendation.

import { ApiError, api } from "./api.js";
import { PALETTE, front, legend } from "./charts.js";
import { card, empty, errorText, h, num, pct, replace, topDomains } from "./ui.js";

/** "loss/web ≤ prior + 1%" or "loss/web ≤ 2.85": a constraint of the spec as text. */
export function constraintLabel(c) {
  const op = c.op === "<=" ? "≤" : "≥";
  if (c.bound !== null && c.bound !== undefined) return `${c.metric} ${op} ${num(c.bound)}`;
  const slack = c.slack ? ` ${c.op === "<=" ? "+" : "−"} ${pct(c.slack)}` : "";
  return `${c.metric} ${op} ${c.relative_to}${slack}`;
}

/** The recommendation's constraints: predicted value, interval and probability against each bound. */
export function outcomesList(outcomes) {
  if (!outcomes || !outcomes.length) return null;
  return h("ul", { class: "outcomes small", "data-testid": "rec-constraints" }, outcomes.map((o) =>
    h("li", {}, `${o.metric} ${o.op === "<=" ? "≤" : "≥"} ${num(o.bound)}: predicted ${num(o.value)} `,
      `[${num(o.lower)}, ${num(o.upper)}], P(met) ${pct(o.probability)}`)));
}

export function paretoSection(ctx) {
  const slot = h("div", {});
  let computing = false;
  let axis = 1;
  const section = { card: card("Trade-off front", { testid: "pareto" }, slot) };

  function renderIdle(note) {
    const exp = ctx.exp();
    const cons = exp.objective.constraints || [];
    const trades = exp.objective.tradeoffs || [];
    replace(slot,
      cons.length ? h("p", { "data-testid": "constraints" }, "Outcome constraints: ", cons.map(constraintLabel).join("; "),
        ` (met with probability ≥ ${pct(exp.objective.feasibility_probability)})`)
        : h("p", { class: "muted" }, trades.length ? "No outcome constraints."
          : "No outcome constraints: the front trades the objective's metrics against each other."),
      trades.length ? h("p", { "data-testid": "tradeoffs" }, "Trade-offs: ", trades.map((t) => `${t.metric} (${t.goal})`).join("; ")) : null,
      note || null,
      h("div", { class: "center" }, h("button", { "data-testid": "compute-pareto", onclick: compute, disabled: computing },
        computing ? "Fitting…" : "Compute front")));
  }

  function render(out) {
    const exp = ctx.exp();
    const cons = exp.objective.constraints || [];
    if (out.axes.length < 2) {
      renderIdle(empty("A single axis has no trade-off.", "Add an outcome constraint or a second objective metric."));
      return;
    }
    const j = Math.min(axis, out.axes.length - 1);
    const ax = out.axes;
    const pts = out.front.map((p) => [p.values[0], p.values[j], p.lower[j], p.upper[j]]);
    const obs = out.observed.map((o) => [o.values[0], o.values[j], o.on_front, o.run_id]);
    const bounds = { y: ax[j].bound ?? undefined, x: ax[0].bound ?? undefined };
    const pick = ax.length > 2 ? h("select", { "data-testid": "pareto-axis", onchange: (e) => { axis = +e.target.value; render(out); } },
      ax.slice(1).map((a, i) => h("option", { value: i + 1, selected: i + 1 === j }, a.name))) : null;
    const best = out.front.filter((p) => p.feasibility >= exp.objective.feasibility_probability);
    replace(slot,
      cons.length ? h("p", { "data-testid": "constraints" }, "Outcome constraints: ", cons.map(constraintLabel).join("; ")) : null,
      pick,
      h("div", { "data-testid": "pareto-chart" }, front({
        front: pts, observed: obs, bounds, xLabel: `${ax[0].name} (${ax[0].goal})`, yLabel: `${ax[j].name} (${ax[j].goal})`,
      })),
      legend([{ name: `predicted front (${out.method}, ${out.front.length} points)`, color: PALETTE[0] },
        { name: "runs on the observed front", color: "#f28e2b" }, { name: "other runs", color: "#79706e" }]),
      h("p", { class: "muted small" }, `${out.n_candidates} mixtures sampled, ${out.n_runs} runs used. `,
        cons.length ? `${best.length} front points meet the constraints; the lowest-objective one: ${best.length ? topDomains(best[0].mixture) : "none"}.` : ""),
      h("button", { class: "link", onclick: compute }, "Recompute"));
  }

  async function compute() {
    if (computing) return;
    computing = true;
    renderIdle();
    try {
      render(await api(`/v1/experiments/${encodeURIComponent(ctx.exp().id)}/pareto`));
    } catch (e) {
      renderIdle(empty(e instanceof ApiError && e.status === 409 ? "Not enough runs for a front yet." : "Could not compute the front.",
        errorText(e)));
    } finally {
      computing = false;
    }
  }

  section.refresh = () => { if (!computing && !slot.querySelector("[data-testid=pareto-chart]")) renderIdle(); };
  return section;
}
