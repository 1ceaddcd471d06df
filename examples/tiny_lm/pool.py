"""A replay pool of real tiny-LM runs: every mixture at a cheap size, a fixed quarter of them at the target.

    nice -n 10 python -m examples.tiny_lm.pool --threads 1 --out examples/tiny_lm/results/pool

Nested as real searches are (the shape ``bench/mf_family.py`` replays): ``--mixtures`` mixtures over the
trained domains (uniform, natural, each single domain, then Dirichlet(1) draws from ``--seed``) are trained at
the cheap size, and a seeded quarter of them (one of every 4 consecutive) also at the target size. The objective is the
study's (:class:`examples.tiny_lm.study.StudyPlan`: mean validation loss over ``pydoc``, ``code`` and
``legal``, with ``pydoc`` held out), every run with the same seed, so mixtures differ only by their weights.

Outputs in ``--out``: ``pool.csv``, one row per run as it ends (mixture weights, ``size``, ``params``,
``tokens``, ``cost`` = steps x the calibrated seconds per step of that size, ``wall_s``, ``load``, each
``loss/DOMAIN`` and ``objective``), and ``pool.json`` (setup, calibration, which mixtures are at the target,
and the Spearman correlation between the sizes on those shared mixtures). Rerunning with the same arguments
resumes: runs already in the CSV are kept.
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from examples.tiny_lm.corpus import as_target, load_corpus, natural_shares
from examples.tiny_lm.model import SIZES, n_params
from examples.tiny_lm.stats import spearman
from examples.tiny_lm.study import (
    FINAL_SEED,
    Mixture,
    StudyPlan,
    _cpu_model,
    baseline_mixtures,
    load_average,
    random_mixtures,
    seconds_per_step,
)
from examples.tiny_lm.train import DeviceCorpus, RunResult, TrainConfig, device_name, train_many


def pool_mixtures(names: Sequence[str], natural: Mixture, count: int, seed: int) -> list[tuple[str, Mixture]]:
    """``count`` labelled mixtures: the study's baselines (uniform, natural, each domain alone), then
    Dirichlet(1) draws from ``seed``."""
    base = list(baseline_mixtures(names, natural).items())[:count]
    draws = random_mixtures(names, count - len(base), seed=seed) if count > len(base) else []
    return base + [(f"random {i + 1}", m) for i, m in enumerate(draws)]


def target_subset(count: int, seed: int) -> list[int]:
    """The mixtures also trained at the target size: one of every block of 4 consecutive indices, at an offset
    drawn for that block alone (seeded), so a quarter of them, and a larger ``count`` later keeps every target
    mixture of a smaller one (the pool grows by resuming with a larger ``--mixtures``)."""
    return [4 * b + int(np.random.default_rng([seed, b]).integers(4)) for b in range(count // 4)]


def size_spearman(rows: Sequence[dict[str, Any]], cheap: str, target: str) -> tuple[float, int]:
    """Spearman between the objective at ``cheap`` and at ``target`` over the mixtures run at both."""
    by = {(int(r["index"]), r["size"]): float(r["objective"]) for r in rows}
    shared = sorted(i for i, s in by if s == target and (i, cheap) in by)
    if len(shared) < 2:
        return float("nan"), len(shared)
    return spearman([by[i, cheap] for i in shared], [by[i, target] for i in shared]), len(shared)


def read_rows(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    with path.open() as f:
        return list(csv.DictReader(f))


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(prog="python -m examples.tiny_lm.pool", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--domains", default="code,man,legal,changelog,pydoc")
    p.add_argument("--objective-domains", default="pydoc,code,legal")
    p.add_argument("--held-out", default="pydoc", help="domains scored but never trained on")
    p.add_argument("--cap-bytes", type=int, default=2_000_000)
    p.add_argument("--sizes", default="xs,s", help="the cheap size, then the target size")
    p.add_argument("--tokens", default="200000,800000", help="training tokens per size")
    p.add_argument("--eval-windows", type=int, default=256, help="validation windows per domain")
    p.add_argument("--mixtures", type=int, default=64)
    p.add_argument("--seed", type=int, default=11, help="of the Dirichlet draws and of the target subset")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--parallel", type=int, default=1, help="runs at once (threads; each charged its nominal cost)")
    p.add_argument("--out", type=Path, default=Path("tiny-lm-pool"))
    args = p.parse_args(argv)

    torch.set_num_threads(args.threads)
    device = torch.device("cpu")
    sizes = args.sizes.split(",")
    tokens = [int(float(t)) for t in args.tokens.split(",")]
    if len(sizes) != 2 or len(tokens) != 2 or any(s not in SIZES for s in sizes):
        raise SystemExit(f"--sizes takes two of {', '.join(SIZES)} and --tokens one value for each")
    if args.mixtures < 8:
        raise SystemExit("--mixtures must be at least 8 (two of them at the target size)")
    cheap, target = sizes
    plan = StudyPlan(sizes=sizes, tokens=tokens, objective_domains=tuple(args.objective_domains.split(",")),
                     held_out=tuple(filter(None, args.held_out.split(","))),
                     base=TrainConfig(cheap, tokens[0], eval_windows=args.eval_windows))
    domains = load_corpus(args.domains.split(","), args.cap_bytes)
    trained = [d for d in domains if d.name not in plan.held_out]
    names = [d.name for d in trained]
    corpus = DeviceCorpus(trained + [as_target(d) for d in domains if d.name in plan.held_out], device,
                          plan.base.context, plan.base.eval_windows)
    mixtures = pool_mixtures(names, natural_shares(trained), args.mixtures, args.seed)
    high = target_subset(args.mixtures, args.seed)

    args.out.mkdir(parents=True, exist_ok=True)
    csv_path, json_path = args.out / "pool.csv", args.out / "pool.json"
    meta: dict[str, Any] = json.loads(json_path.read_text()) if json_path.exists() else {}
    if set(meta.get("calibration", {}).get("seconds_per_step", sizes)) != set(sizes):
        raise SystemExit(f"{json_path} was calibrated for other sizes: use another --out")
    if "calibration" not in meta:
        configs = {s: plan.config(s, 0) for s in sizes}
        meta["calibration"] = {"seconds_per_step": seconds_per_step(corpus, configs, {n: 1 / len(names)
                                                                                    for n in names}),
                               "load": load_average()}
    per_step = meta["calibration"]["seconds_per_step"]
    uptime = subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()
    meta["setup"] = {
        "command": "python -m examples.tiny_lm.pool " + " ".join(sys.argv[1:] if argv is None else argv),
        "device": device_name(device), "cpu": _cpu_model(), "torch": torch.__version__,
        "uptime_at_start": meta.get("setup", {}).get("uptime_at_start", uptime),
        "plan": asdict(plan), "params": {s: n_params(SIZES[s], plan.base.context) for s in sizes},
        "domains": names, "seed": args.seed, "run_seed": FINAL_SEED,
        "mixtures": [{"index": i, "label": label, **m} for i, (label, m) in enumerate(mixtures)],
        "at_target": high,
    }
    json_path.write_text(json.dumps(meta, indent=1))

    rows = read_rows(csv_path)
    stale = [r for r in rows if int(r["index"]) >= len(mixtures) or r["size"] not in sizes
             or any(abs(float(r[n]) - mixtures[int(r["index"])][1][n]) > 1e-9 for n in names)]
    if stale:
        raise SystemExit(f"{csv_path} has runs of other mixtures or sizes (row {stale[0]['index']}, "
                         f"{stale[0]['size']}): resume with the arguments that made it, or use another --out")
    done = {(int(r["index"]), r["size"]) for r in rows}
    jobs = [(i, cheap) for i in range(args.mixtures)] + [(i, target) for i in high]
    todo = [j for j in jobs if j not in done]
    print(f"{len(jobs)} runs ({args.mixtures} at {cheap}, {len(high)} at {target}); {len(done)} already in "
          f"{csv_path}, {len(todo)} to train (load average {load_average():.2f})", flush=True)
    losses_cols = [f"loss/{d.name}" for d in domains]
    fields = ["index", "label", *names, "size", "params", "tokens", "cost", "wall_s", "load", *losses_cols,
              "objective"]
    t_start = time.perf_counter()
    lock = threading.Lock()
    wall_by_size: dict[str, list[float]] = {}

    def record(k: int, r: RunResult) -> None:
        """Append the finished run to the CSV at once (a crash loses nothing) and print the progress."""
        i, size = todo[k]
        label, mixture = mixtures[i]
        row = {"index": i, "label": label, **mixture, "size": size, "params": r.params, "tokens": r.tokens,
               "cost": per_step[size] * r.steps, "wall_s": r.wall_s, "load": load_average(),
               **{f"loss/{n}": v for n, v in r.losses.items()}, "objective": plan.objective(r.losses)}
        with lock:
            new = not csv_path.exists()
            with csv_path.open("a", newline="") as f:
                w = csv.DictWriter(f, fieldnames=fields)
                if new:
                    w.writeheader()
                w.writerow(row)
            rows.append(row)
            wall_by_size.setdefault(size, []).append(r.wall_s)
            finished = {(int(x["index"]), x["size"]) for x in rows}
            left = sum(float(np.mean(wall_by_size.get(s, wall_by_size[size]))) for s in
                       (s for j, s in todo if (j, s) not in finished)) / max(1, args.parallel)
            print(f"[{len(finished) - len(done)}/{len(todo)}] {size:<3} #{i:<3} {label:<16} objective "
                  f"{row['objective']:.4f}  wall {r.wall_s:5.1f}s  load {row['load']:.2f}  elapsed "
                  f"{time.perf_counter() - t_start:5.0f}s  ~{left:.0f}s left", flush=True)

    train_many(corpus, [(mixtures[i][1], plan.config(size, FINAL_SEED)) for i, size in todo], args.parallel,
               record)

    rho, n = size_spearman(rows, cheap, target)
    meta["spearman"] = {"sizes": [cheap, target], "mixtures": n, "value": rho}
    meta["uptime_at_end"] = subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()
    json_path.write_text(json.dumps(meta, indent=1))
    print(f"Spearman {cheap} -> {target} over the {n} mixtures at both sizes: {rho:.3f}")
    print(csv_path, json_path)
    return meta


if __name__ == "__main__":
    main()
