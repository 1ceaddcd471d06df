"""Figures of a search and of an online run, from their result dicts (so they can be redrawn from JSON)."""

from __future__ import annotations

from itertools import accumulate
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 - after choosing the headless backend

COLOURS = matplotlib.colormaps["tab10"].colors  # type: ignore[attr-defined]  # a ListedColormap
#: The final runs' colours, apart from the domains' (which take tab10 from the start).
FINAL_COLOURS = {"recommended": "#222222", "uniform": "#8c8c8c", "natural": "#bcbd22"}


def plot_search(result: dict[str, Any], path: Path) -> None:
    """Objective against cumulative cost by size; the mixtures tried; the final comparison at target size."""
    runs, names, sizes = result["runs"], result["domains"], result["plan"]["sizes"]
    fig, (ax_cost, ax_mix, ax_final) = plt.subplots(
        1, 3, figsize=(16, 4.6), gridspec_kw={"width_ratios": [1.1, 1.3, 1]}
    )
    cumulative = list(accumulate(r["cost_s"] for r in runs))
    for k, size in enumerate(sizes):
        idx = [i for i, r in enumerate(runs) if r["size"] == size]
        ax_cost.scatter(
            [cumulative[i] for i in idx],
            [runs[i]["objective"] for i in idx],
            color=COLOURS[k],
            label=f"{size} ({result['plan']['params'][k]:,} params)",
            s=28,
            zorder=3,
        )
        best, line = float("inf"), []
        for i in idx:
            best = min(best, runs[i]["objective"])
            line.append((cumulative[i], best))
        if line:
            ax_cost.step(*zip(*line, strict=True), where="post", color=COLOURS[k], alpha=0.5)
    for label, rows in result["finals"].items():
        mean = sum(r["objective"] for r in rows) / len(rows)
        ax_cost.axhline(
            mean, color=FINAL_COLOURS[label], ls="--", lw=1, label=f"final {label} at {sizes[-1]}"
        )
    ax_cost.set(
        xlabel="cumulative cost (device-seconds)",
        ylabel="mean validation loss (nats/byte)",
        title="search: each run, best so far per size",
    )
    ax_cost.legend(fontsize=8)

    bottom = [0.0] * len(runs)
    for j, name in enumerate(names):
        w = [r["mixture"][name] for r in runs]
        ax_mix.bar(range(1, len(runs) + 1), w, bottom=bottom, color=COLOURS[j % 10], label=name, width=0.85)
        bottom = [b + x for b, x in zip(bottom, w, strict=True)]
    for i, r in enumerate(runs):
        ax_mix.text(i + 1, 1.01, r["size"], ha="center", fontsize=6, rotation=90)
    ax_mix.set(
        xlabel="run (in order trained; size above)", ylabel="weight", ylim=(0, 1.12), title="mixtures tried"
    )
    ax_mix.legend(fontsize=7, ncol=len(names), loc="lower center", bbox_to_anchor=(0.5, -0.32))

    finals = result["finals"]
    labels = list(finals)
    width = 0.8 / len(labels)
    for k, label in enumerate(labels):
        rows = finals[label]
        per = [sum(r["losses"][n] for r in rows) / len(rows) for n in names]
        per.append(sum(r["objective"] for r in rows) / len(rows))
        xs = [i + (k - (len(labels) - 1) / 2) * width for i in range(len(names) + 1)]
        ax_final.bar(xs, per, width=width, label=label, color=FINAL_COLOURS[label])
    ax_final.set_xticks(range(len(names) + 1), [*names, "mean"], rotation=30, fontsize=8)
    lows = [r["objective"] for rows in finals.values() for r in rows] + [
        v for rows in finals.values() for r in rows for v in r["losses"].values()
    ]
    ax_final.set_ylim(min(lows) * 0.95, max(lows) * 1.02)
    ax_final.set(ylabel="validation loss (nats/byte)", title=f"final runs at size {sizes[-1]}")
    ax_final.legend(fontsize=8)
    fig.suptitle(f"tiny-lm mixture search on {result['device']}", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def plot_online(result: dict[str, Any], path: Path) -> None:
    """The weights the session handed out over training, and the per-domain validation losses posted."""
    traj, names = result["trajectory"], result["domains"]
    steps = [p["step"] for p in traj]
    fig, (ax_w, ax_l) = plt.subplots(1, 2, figsize=(12, 4.2))
    # The session's mixture (DoReMi's average, Aioli's exploit mixture), not the probes' one-hot weights.
    ax_w.stackplot(
        steps,
        [[p["mixture"][n] for p in traj] for n in names],
        labels=names,
        colors=COLOURS[: len(names)],
        step="post",
    )
    ax_w.set(
        xlabel="training step",
        ylabel="weight",
        ylim=(0, 1),
        title=f"{result['method']}: the session's mixture after each observation",
    )
    ax_w.legend(fontsize=7, loc="upper right")
    for j, n in enumerate(names):
        ax_l.plot(steps, [p["losses"][n] for p in traj], color=COLOURS[j], label=n)
    ax_l.set(xlabel="training step", ylabel="validation loss (nats/byte)", title="losses posted")
    ax_l.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


#: The study's strategies and baselines, in the order the comparison plot shows them.
STUDY_COLOURS = {
    "service": "#222222",
    "regmix": "#d62728",
    "random": "#9467bd",
    "uniform": "#8c8c8c",
    "natural": "#bcbd22",
    "online": "#17becf",
}


def plot_study(study: dict[str, Any], out: Path) -> None:
    """``study-search.png``: each strategy's runs against cumulative cost, by size; ``study-compare.png``:
    the correlation set at each proxy size against the target size, and the target-size comparison with
    standard errors. Phases not in ``study`` are left out (the plots are redrawn after every phase)."""
    sizes = study["setup"]["plan"]["sizes"]
    searches = [k for k in ("search/service", "search/regmix", "search/random") if k in study]
    if searches:
        fig, axes = plt.subplots(1, len(searches), figsize=(5.2 * len(searches), 4.2), sharey=True, squeeze=False)
        for ax, key in zip(axes[0], searches, strict=True):
            runs = study[key]["runs"]
            cumulative = list(accumulate(r["cost_s"] for r in runs))
            for k, size in enumerate(sizes):
                idx = [i for i, r in enumerate(runs) if r["size"] == size]
                ax.scatter([cumulative[i] for i in idx], [runs[i]["objective"] for i in idx], s=22,
                           color=COLOURS[k], label=size, zorder=3)
            final = study.get("finals", {}).get("summary", {}).get(key.split("/")[1])
            if final:
                ax.axhline(final["mean"], color="k", ls="--", lw=1, label=f"recommendation at {sizes[-1]}")
            ax.set(title=f"{key.split('/')[1]}: {len(runs)} runs, {study[key]['cost_s']:.0f} device-s",
                   xlabel="cumulative cost (device-seconds)")
            ax.legend(fontsize=7)
        axes[0][0].set_ylabel("target loss (nats/byte)")
        fig.suptitle(f"search strategies on the same budget ({study['setup']['device']})", fontsize=10)
        fig.tight_layout()
        fig.savefig(out / "study-search.png", dpi=90)
        plt.close(fig)
    if "correlation" not in study:
        return
    fig, (ax_corr, ax_cmp) = plt.subplots(1, 2, figsize=(12, 4.4))
    runs = study["correlation"]["runs"]
    target = {r["label"]: r["objective"] for r in runs if r["size"] == sizes[-1]}
    for k, size in enumerate(sizes[:-1]):
        pts = [(target[r["label"]], r["objective"]) for r in runs if r["size"] == size]
        rho = study["correlation"]["spearman"][size][sizes[-1]]
        ax_corr.scatter(*zip(*pts, strict=True), color=COLOURS[k], label=f"{size} (Spearman {rho:.2f})")
    ax_corr.set(xlabel=f"target loss at {sizes[-1]}", ylabel="target loss at the proxy size",
                title="correlation set: proxy size against target size")
    ax_corr.legend(fontsize=8)
    summary = study.get("finals", {}).get("summary") or study["noise"]["summary"]["per_mixture"]
    online = study.get("online")
    bars = [(k, v["mean"], v["se"]) for k, v in summary.items()]
    if online:
        bars.append(("online", online["objective"], 0.0))
    bars.sort(key=lambda b: b[1])
    ax_cmp.barh([b[0] for b in bars], [b[1] for b in bars], xerr=[b[2] for b in bars],
                color=[STUDY_COLOURS.get(b[0], "#1f77b4") for b in bars], capsize=3)
    lo, hi = min(b[1] for b in bars), max(b[1] for b in bars)
    ax_cmp.set_xlim(lo - 0.1 * (hi - lo) - 0.01, hi + 0.1 * (hi - lo) + 0.01)
    ax_cmp.invert_yaxis()
    ax_cmp.set(xlabel=f"target loss at {sizes[-1]} (mean ± standard error over seeds)",
               title="at the target size")
    fig.tight_layout()
    fig.savefig(out / "study-compare.png", dpi=90)
    plt.close(fig)
