"""Server-side cost of one online-mixing observation at 22 domains (the issue's budget: well under 10 ms).

Times ``mixing.online.observe`` per method on random losses, split for Aioli by what the observation
triggers (a mid-LearnParams probe, the end of LearnParams which solves for A and updates the mixture, the
start of a new round). Also times the JSON round trip of the state, which the service adds when it
stores the state in its database. Prints a table and writes ``bench/results/online_latency.json``.

    python bench/online_latency.py [--domains 22] [--rounds 150]
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from mixing.online import observe, start

RESULTS = Path(__file__).resolve().parent / "results" / "online_latency.json"


def time_session(
    method: str, k: int, n_obs: int, rng: np.random.Generator, hp: dict | None = None
) -> dict[str, list[float]]:
    """Microseconds per observe() call and per JSON round trip, keyed by event."""
    kwargs = {"reference_losses": np.full(k, 3.0)} if method == "doremi" else {}
    if method == "static":
        kwargs = {"initial_weights": rng.dirichlet(np.ones(k))}
    state, d = start(method, k, hp, **kwargs)
    times: dict[str, list[float]] = defaultdict(list)
    step = 0
    for _ in range(n_obs):
        losses = 3.0 + rng.random(k)
        before = state.get("phase"), state.get("probe_index"), len(state.get("probe_order") or [])
        t0 = time.perf_counter_ns()
        state, d = observe(state, step, losses)
        t1 = time.perf_counter_ns()
        state = json.loads(json.dumps(state))
        t2 = time.perf_counter_ns()
        step += max(d.train_steps, 1)
        if method == "aioli":
            phase, index, count = before
            if phase != "probe":
                event = "aioli: start of round"
            elif index == count - 1:
                event = "aioli: end of LearnParams (solve A, update p)"
            else:
                event = "aioli: probe"
        else:
            event = method
        times[event].append((t1 - t0) / 1e3)
        times[f"json round trip ({method})"].append((t2 - t1) / 1e3)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--domains", type=int, default=22)
    parser.add_argument(
        "--rounds", type=int, default=150, help="Aioli rounds (each 2 * domains + 1 observations)"
    )
    args = parser.parse_args()
    k, rng = args.domains, np.random.default_rng(0)
    n_aioli = args.rounds * (2 * k + 1) + 1
    times: dict[str, list[float]] = {}
    gc.disable()  # a collection pause is the host's cost, not the algorithm's; the service has the same GC
    for method in ("stratified", "static", "doremi"):
        times.update(time_session(method, k, 5000, rng))
    times.update(time_session("aioli", k, n_aioli, rng))
    gc.enable()

    rows = []
    print(f"observe() latency at {k} domains (microseconds; {platform.processor() or platform.machine()})")
    print(f"{'event':50s} {'n':>6s} {'median':>9s} {'p99':>9s} {'max':>9s}")
    for event, values in times.items():
        arr = np.array(values[5:])  # drop the first calls (imports, caches)
        row = {
            "event": event,
            "n": int(arr.size),
            "median_us": float(np.median(arr)),
            "p99_us": float(np.percentile(arr, 99)),
            "max_us": float(arr.max()),
        }
        rows.append(row)
        print(f"{event:50s} {row['n']:6d} {row['median_us']:9.1f} {row['p99_us']:9.1f} {row['max_us']:9.1f}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"domains": k, "machine": platform.platform(), "rows": rows}, indent=2))
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
