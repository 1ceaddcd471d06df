// Continual pretraining: the critical mixture ratio (GET /v1/experiments/{id}/cmr) of an experiment declared
// with a `continual` block — the largest share of domain data whose predicted general loss at the target
// tokens stays within the tolerance — with its interval, the losses predicted there and the law's errors.

import { api } from "./api.js";
import { card, empty, errorText, h, interval, num, pct, replace, si, stat } from "./ui.js";

/** Fewest completed runs the CMR law can fit (runs at 6 distinct ratio and token pairs). */
const MIN_RUNS = 6;

export function cmrSection(ctx) {
  const slot = h("div", {});
  const section = card("Critical mixture ratio (continual pretraining)", { testid: "cmr" }, slot);

  async function refresh() {
    const exp = ctx.exp();
    if (exp.run_counts.completed < MIN_RUNS) {
      replace(slot, empty("No critical mixture ratio yet.",
        `It is fitted on completed runs at ${MIN_RUNS} or more distinct (domain ratio, tokens), over two token counts or more.`));
      return;
    }
    try {
      render(exp.continual, await api(`/v1/experiments/${encodeURIComponent(exp.id)}/cmr`));
    } catch (e) {
      replace(slot, empty("No critical mixture ratio yet.", errorText(e)));
    }
  }

  function render(block, out) {
    const limit = out.tolerance_kind === "relative"
      ? out.base_general_loss * (1 + out.tolerance) : out.base_general_loss + out.tolerance;
    const v = out.validation;
    const mae = (m) => (m ? `general ${num(m.general, 3)}, domain ${num(m.domain, 3)}` : "—");
    replace(slot,
      h("div", { class: "stats" },
        stat({ label: `CMR (share of ${block.domain_group.join(", ")})`, value: pct(out.cmr),
          sub: `${Math.round(100 * out.level)}% interval [${pct(out.interval.lower)}, ${pct(out.interval.upper)}]`, testid: "cmr-value" }),
        stat({ label: "General loss there", value: num(out.general_loss.value), sub: `${interval(out.general_loss)} · limit ${num(limit)}` }),
        stat({ label: "Domain loss there", value: num(out.domain_loss.value), sub: interval(out.domain_loss) }),
        stat({ label: "At", value: `${si(out.target_tokens)} tokens`, sub: `${out.n_runs} runs used` })),
      out.feasible ? null : h("p", { class: "note", "data-testid": "cmr-infeasible" },
        "Even replaying general data only breaks the tolerance at these tokens: no domain ratio is feasible."),
      h("p", { class: "muted small", "data-testid": "cmr-validation" },
        `Mean absolute error: held out at ${si(v.heldout_tokens)} tokens (fitted on fewer) ${mae(v.heldout_mae)}; `,
        `${v.folds}-fold cross-validated ${mae(v.cv_mae)}.`));
  }

  return { card: section, refresh };
}
