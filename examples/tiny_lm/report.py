"""Markdown tables from the result files, for RESULTS.md (so the numbers there are the files' numbers).

python -m examples.tiny_lm.report tiny-lm-results/search.json [tiny-lm-results/online-aioli.json]
python -m examples.tiny_lm.report tiny-lm-study/study.json    # also redraws the study's plots next to it
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from examples.tiny_lm.plots import plot_study
from examples.tiny_lm.stats import compare


def _row(cells: list[Any]) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def _table(header: list[str], rows: list[list[Any]]) -> str:
    return "\n".join([_row(header), _row(["---"] * len(header)), *(_row(r) for r in rows)])


def _f(x: float | None, digits: int = 4) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def _g(x: float | None) -> str:
    """Three significant digits; a law that blows up out of fold shows as 1e+20, not 40 digits."""
    return "–" if x is None else f"{x:.3g}"


def search_tables(r: dict[str, Any]) -> str:
    names, plan, rec = r["domains"], r["plan"], r["recommendation"]
    out = [
        "### Plan",
        "",
        _table(
            ["size", "params", "tokens per run"],
            [
                [s, f"{p:,}", f"{t:,}"]
                for s, p, t in zip(plan["sizes"], plan["params"], plan["tokens"], strict=True)
            ],
        ),
        "",
        f"Experiment `{r['experiment_id']}` on {r['device']}: {len(r['runs'])} search runs "
        f"({r['stored_runs']} stored as completed in the service), "
        f"{r['search_cost_s']:,.0f} device-seconds of search, {r['wall_s'] / 60:.1f} minutes wall in all.",
        "",
        "### Mixtures tried",
        "",
        _table(
            ["#", "round", "method", "size", *names, "predicted", "loss", "cost s"],
            [
                [
                    i,
                    run["round"],
                    run["method"],
                    run["size"],
                    *(f"{run['mixture'][n]:.2f}" for n in names),
                    _f((run.get("predicted") or {}).get("value")),
                    _f(run["objective"]),
                    f"{run['cost_s']:.1f}",
                ]
                for i, run in enumerate(r["runs"], 1)
            ],
        ),
        "",
        "### Law fidelity reported by the service (`GET /fits?latest=true`, 5-fold CV over the search runs)",
        "",
        _table(
            ["law", "selected", "Spearman", "MAE", "R²", "note"],
            [
                [
                    f["law"],
                    "✓" if f["selected"] else "",
                    _f(cv.get("spearman"), 3),
                    _g(cv.get("mae")),
                    _g(cv.get("r2")),
                    f["scores"].get("skipped") or "",
                ]
                for f in r["fits"]
                for cv in [(f["scores"].get("cv") or {}).get("from_metrics", {})]
            ],
        ),
        "",
        "### Recommendation",
        "",
        f"`{rec['method']}` from {rec['n_runs']} runs, predicted {_f(rec['predicted']['value'])} "
        f"[{_f(rec['predicted'].get('lower'))}, {_f(rec['predicted'].get('upper'))}] at the target size:",
        "",
        _table(
            ["", *names],
            [
                ["recommended", *(f"{r['recommendation']['mixture'][n]:.3f}" for n in names)],
                ["natural", *(f"{r['natural'][n]:.3f}" for n in names)],
            ],
        ),
        "",
        f"### At the target size ({plan['sizes'][-1]}), mean of {plan['final_seeds']} seed(s)",
        "",
    ]
    rows = []
    for label, runs in r["finals"].items():
        per = [sum(x["losses"][n] for x in runs) / len(runs) for n in names]
        objs = [x["objective"] for x in runs]
        rows.append(
            [
                label,
                *(f"{v:.4f}" for v in per),
                f"**{sum(objs) / len(objs):.4f}**",
                " / ".join(f"{o:.4f}" for o in objs),
                _f(runs[0].get("predicted")),
            ]
        )
    out.append(
        _table(["mixture", *names, "mean", "per seed", f"forecast ({r.get('forecast_method')})"], rows)
    )
    return "\n".join(out)


def online_tables(r: dict[str, Any]) -> str:
    names = r["domains"]
    rows = [
        [
            label,
            *(f"{row['losses'][n]:.4f}" for n in names),
            f"**{row['objective']:.4f}**",
            f"{row['cost_s']:.0f}",
        ]
        for label, row in r["runs"].items()
    ]
    return "\n".join(
        [
            f"`{r['method']}` session `{r['session_id']}`, size {r['size']}, {r['steps']} steps "
            f"({r['tokens']:,} tokens), {len(r['posted_steps'])} observations, hyperparameters "
            f"`{json.dumps(r['hyperparameters'])}`; session's final mixture: "
            + ", ".join(f"{n} {r['final_mixture'][n]:.2f}" for n in names),
            "",
            _table(["run", *names, "mean", "wall s"], rows),
        ]
    )


def main(argv: list[str] | None = None) -> None:
    for path in map(Path, argv if argv is not None else sys.argv[1:]):
        r = json.loads(path.read_text())
        if "calibration" in r:
            print(study_tables(r))
            plot_study(r, path.parent)
        else:
            print(online_tables(r) if "session_id" in r else search_tables(r))
        print()



def _mixture_cells(m: dict[str, float], names: list[str]) -> list[str]:
    return [f"{m.get(n, 0.0):.2f}" for n in names]


def _loads(runs: list[dict[str, Any]]) -> str:
    loads = [r["load"] for r in runs if "load" in r]
    return f"{min(loads):.1f}–{max(loads):.1f}" if loads else "–"


def study_verdict(s: dict[str, Any]) -> list[str]:
    """The issue's done-when, evaluated on the file: service beats uniform and natural by > 2 SE, and its
    mean is no worse than RegMix's and random search's."""
    cmp = s["finals"]["comparisons"]["service"]
    summary = s["finals"]["summary"]
    lines = []
    for ref in ("uniform", "natural", s["finals"]["best_single"]):
        c = cmp[ref]
        lines.append(
            f"- service − {ref}: {c['diff']:+.4f} ± {c['se']:.4f} (SE of the difference): "
            + ("**better by more than 2 SE**" if c["better"] else "not better by more than 2 SE")
        )
    for ref in ("regmix", "random"):
        c = cmp[ref]
        verdict = (
            "**better by more than 2 SE**" if c["better"] else
            "at least as good (lower or equal mean), within 2 SE" if c["diff"] <= 0 else
            "worse, but within 2 SE" if c["diff"] <= 2 * c["se"] else "**worse by more than 2 SE**"
        )
        lines.append(f"- service − {ref}: {c['diff']:+.4f} ± {c['se']:.4f}: {verdict}")
    beats = cmp["uniform"]["better"] and cmp["natural"]["better"]
    as_good = all(summary["service"]["mean"] <= summary[r]["mean"] for r in ("regmix", "random"))
    lines.append(
        f"- **done-when**: beats uniform and natural by > 2 SE: {'yes' if beats else 'no'}; "
        f"mean at least as good as RegMix's and random search's: {'yes' if as_good else 'no'}"
    )
    return lines


def study_tables(s: dict[str, Any]) -> str:
    """RESULTS.md's tables for one study file (``study.py``'s ``study.json``)."""
    setup, plan = s["setup"], s["setup"]["plan"]
    names, sizes = setup["domains"], plan["sizes"]
    unit = s["calibration"]["seconds_per_step"]
    out = [
        "### Machine and corpus",
        "",
        f"{setup['cpu']}, training on {setup['device']}, torch {setup['torch']}. "
        f"`uptime` at the start: `{setup['uptime_at_start']}`.",
        "",
        _table(
            ["domain", "role", "documents", "train bytes", "validation bytes", "scored bytes", "natural share"],
            [
                [n, "trained" + (", in target" if n in plan["objective_domains"] else ""),
                 c["documents"], f"{c['train_bytes']:,}", f"{c['val_bytes']:,}",
                 f"{setup['eval_bytes'][n]:,}", f"{setup['natural'][n]:.3f}"]
                for n, c in setup["corpus"].items()
            ] + [
                [n, "held out, in target", "–", "–", "–", f"{setup['eval_bytes'][n]:,}", "–"]
                for n in plan["held_out"]
            ],
        ),
        "",
        f"Target: the mean validation loss (nats/byte) over {', '.join(plan['objective_domains'])} "
        f"(equal parts); held out (never trained on): {', '.join(plan['held_out']) or 'none'}.",
        "",
        "### Sizes",
        "",
        _table(
            ["size", "params", "tokens per run", "steps", "ms per step (calibrated)", "device-s per run"],
            [
                [sz, f"{p:,}", f"{t:,}", -(-t // (plan["base"]["batch"] * plan["base"]["context"])),
                 f"{unit[sz] * 1000:.1f}",
                 f"{unit[sz] * -(-t // (plan['base']['batch'] * plan['base']['context'])):.1f}"]
                for sz, p, t in zip(sizes, plan["params"], plan["tokens"], strict=True)
            ],
        ),
        "",
    ]
    if "noise" in s:
        n = s["noise"]
        by: dict[str, list[float]] = {}
        for r in n["runs"]:
            by.setdefault(r["label"], []).append(r["objective"])
        per_mixture = n["summary"]["per_mixture"]
        gap = per_mixture["natural"]["mean"] - per_mixture["uniform"]["mean"]
        out += [
            f"### Seed noise at the target size ({sizes[-1]}, {plan['seeds']} seeds)",
            "",
            _table(
                ["mixture", *names, "mean", "SE", "per seed"],
                [
                    [k, *_mixture_cells(next(r["mixture"] for r in n["runs"] if r["label"] == k), names),
                     f"**{v['mean']:.4f}**", f"{v['se']:.4f}", " / ".join(f"{x:.4f}" for x in by[k])]
                    for k, v in n["summary"]["per_mixture"].items()
                ],
            ),
            "",
            f"Pooled seed-to-seed SD {n['summary']['pooled_sd']:.4f}; spread of the means "
            f"{n['summary']['spread']:.4f}; spread / SD = **{n['summary']['ratio']:.1f}**. Between the two "
            f"baselines alone, natural − uniform = {gap:+.4f} = {gap / n['summary']['pooled_sd']:.1f} SD. "
            f"Load average during these runs: {_loads(n['runs'])}.",
            "",
        ]
    if "correlation" in s:
        c = s["correlation"]
        obj = {(r["label"], r["size"]): r["objective"] for r in c["runs"]}
        mix = {r["label"]: r["mixture"] for r in c["runs"]}
        out += [
            "### Rank correlation between sizes (one seed per mixture)",
            "",
            _table(
                ["mixture", *names, *sizes],
                [[lab, *_mixture_cells(mix[lab], names), *(f"{obj[(lab, sz)]:.4f}" for sz in sizes)]
                 for lab in c["labels"]],
            ),
            "",
            _table(["Spearman", *sizes], [[a, *(f"{c['spearman'][a][b]:.2f}" for b in sizes)] for a in sizes]),
            "",
        ]
    for key in ("search/service", "search/regmix", "search/random"):
        if key not in s:
            continue
        sr = s[key]
        counts = ", ".join(f"{sum(r['size'] == sz for r in sr['runs'])} at {sz}" for sz in sizes)
        rec = sr["recommendation"]
        out += [
            f"### Search: {key.split('/')[1]}",
            "",
            f"{len(sr['runs'])} runs ({counts}), {sr['cost_s']:.0f} device-seconds, "
            f"{sr['wall_s'] / 60:.1f} minutes wall (including the service's model fits). "
            f"Recommendation ({rec['method']}): "
            + ", ".join(f"{n} {rec['mixture'][n]:.3f}" for n in names)
            + (f"; predicted {rec['predicted']['value']:.4f} [{_f(rec['predicted'].get('lower'))}, "
               f"{_f(rec['predicted'].get('upper'))}] at {sizes[-1]}" if "predicted" in rec else "")
            + (f"; measured {rec['measured']:.4f} in the search" if "measured" in rec else ""),
            "",
        ]
        if "fits" in sr:
            out += [
                "Law fidelity reported by the service (`GET /fits?latest=true` after a forced refit):",
                "",
                _table(
                    ["law", "selected", "runs", "Spearman", "MAE", "R²", "note"],
                    [
                        [f["law"], "✓" if f["selected"] else "", f["n_runs"], _f(cv.get("spearman"), 3),
                         _g(cv.get("mae")), _g(cv.get("r2")), f["scores"].get("skipped") or ""]
                        for f in sr["fits"]
                        for cv in [(f["scores"].get("cv") or {}).get("from_metrics", {})]
                    ],
                ),
                "",
            ]
    if "finals" in s:
        f = s["finals"]
        summary, cmp = f["summary"], f["comparisons"]
        mixtures = {r["label"]: r["mixture"] for r in [*s["noise"]["runs"], *f["runs"]]}
        per_seed: dict[str, list[float]] = {}
        for r in [*s["noise"]["runs"], *f["runs"]]:
            per_seed.setdefault(r["label"], []).append(r["objective"])

        def delta(label: str, ref: str) -> str:
            if label == ref:
                return "–"
            d = cmp.get(label, {}).get(ref) or _reverse(cmp.get(ref, {}).get(label))
            if d is None:
                a, b = per_seed[label], per_seed[ref]
                c = compare(a, b)
                d = {"diff": c.diff, "se": c.se, "better": c.better}
            return f"{d['diff']:+.4f} ± {d['se']:.4f}" + (" ✓" if d["diff"] < -2 * d["se"] else "")

        order = ["service", "regmix", "random", "uniform", "natural", f["best_single"]]
        order += [k for k in summary if k not in order]
        out += [
            f"### At the target size ({sizes[-1]}): mean ± SE over seeds {FINAL_SEEDS_NOTE}",
            "",
            _table(
                ["mixture", *names, "mean ± SE", "n", "per seed", "Δ uniform", "Δ natural"],
                [
                    [k, *_mixture_cells(mixtures[k], names), f"**{summary[k]['mean']:.4f}** ± {summary[k]['se']:.4f}",
                     summary[k]["n"], " / ".join(f"{x:.4f}" for x in per_seed[k]),
                     delta(k, "uniform"), delta(k, "natural")]
                    for k in order
                ],
            ),
            "",
            "Δ: difference of means ± its standard error (Welch); ✓ = lower by more than twice that SE. "
            f"Best single domain: {f['best_single']}. Load average during the finals: {_loads(f['runs'])}.",
            "",
            *study_verdict(s),
            "",
        ]
    if "online" in s:
        o = s["online"]
        static = s.get("finals", {}).get("summary", {}).get("service")
        out += [
            f"### Online: Aioli at {sizes[-1]}",
            "",
            f"Session `{o['session_id']}`, {o['steps']} steps (the static runs' length), seed {o['seed']}, "
            f"{len(o['posted_steps'])} observations, hyperparameters `{json.dumps(o['hyperparameters'])}`; "
            "every posted loss is the target's, so Aioli's objective is the target. Final mixture: "
            + ", ".join(f"{n} {o['final_mixture'][n]:.2f}" for n in names)
            + f". Target loss of the online run: **{o['objective']:.4f}** (one seed)"
            + (f"; the service's static recommendation at the same tokens: {static['mean']:.4f} ± "
               f"{static['se']:.4f} ({static['n']} seeds)." if static else "."),
            "",
        ]
    return "\n".join(out)


FINAL_SEEDS_NOTE = "(seeds 1000, 1001, ...: the k-th seed is the same for every mixture)"


def _reverse(d: dict[str, Any] | None) -> dict[str, Any] | None:
    return None if d is None else {"diff": -d["diff"], "se": d["se"], "better": d["diff"] > 2 * d["se"]}


if __name__ == "__main__":
    main()
