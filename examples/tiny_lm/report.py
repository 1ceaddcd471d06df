"""Markdown tables from the result files, for RESULTS.md (so the numbers there are the files' numbers).

python -m examples.tiny_lm.report tiny-lm-results/search.json [tiny-lm-results/online-aioli.json]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


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
        print(online_tables(r) if "session_id" in r else search_tables(r))
        print()


if __name__ == "__main__":
    main()
