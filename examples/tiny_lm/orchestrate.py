"""The orchestrator: a mixture search in which every proxy run is a real training run.

    python -m examples.tiny_lm.orchestrate --embedded --sizes xs,s --tokens 200000,400000 --rounds 4

1. Load the domains found on this machine and create an experiment: one fidelity axis ``params`` spanning
   the sizes (target: the largest), objective = mean per-domain validation loss, priors = natural shares.
2. Round 1 asks for the space-filling design at the smallest size plus a few points at each larger size
   (so the multi-fidelity model has every level); later rounds let the service choose mixture and size.
3. Each suggestion is trained at its size for that size's token budget and reported with its per-domain
   losses, its cost in device-seconds and a ``client_run_id`` derived from the suggestion, so a retried
   report is stored once.
4. At the end: a refit (the service's fidelity report of every law), the recommendation, and the
   recommended, uniform and natural mixtures trained at the largest size, which is the comparison that
   matters. Results go to ``OUT/search.json`` and ``OUT/search.png``.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch
from mixopt_client import MixoptClient, NotEnoughDataError, Suggestion

from examples.tiny_lm import connection
from examples.tiny_lm.corpus import SOURCES, Domain, load_corpus, natural_shares
from examples.tiny_lm.model import SIZES, n_params
from examples.tiny_lm.plots import plot_search
from examples.tiny_lm.train import (
    DeviceCorpus,
    RunResult,
    TrainConfig,
    default_parallel,
    device_name,
    pick_device,
    train_many,
)

Log = Callable[[str], None]


def _print(line: str) -> None:
    print(line, flush=True)


@dataclass(frozen=True)
class Plan:
    """What to train: the size ladder, each size's token budget, and the search's shape."""

    sizes: list[str]
    tokens: list[int]
    rounds: int
    per_round: int
    initial: int  # design runs at the smallest size before models take over
    initial_larger: int  # design runs at each larger size in round 1
    final_seeds: int
    parallel: int = 1
    budget_s: float = math.inf  # stop suggesting once the search has cost this many device-seconds
    max_epochs: float | None = None  # cap each weight so no domain repeats more often at the target budget
    base: TrainConfig = TrainConfig("xs", 0)
    #: Objective = the mean validation loss over these domains (a target distribution); empty: over all
    #: trained domains. ``held_out`` domains are scored but never trained on (not part of the mixture).
    objective_domains: tuple[str, ...] = ()
    held_out: tuple[str, ...] = ()
    #: Seconds per training step by size, measured once: runs are charged ``steps x unit`` instead of their
    #: wall time, so budgets compare across a shared machine whose load changes; ``None``: wall time.
    unit_cost_s: dict[str, float] | None = None

    def config(self, size: str, seed: int) -> TrainConfig:
        return replace(self.base, size=size, tokens=self.tokens[self.sizes.index(size)], seed=seed)

    def objective(self, losses: dict[str, float]) -> float:
        """The experiment's objective for one run's per-domain validation losses."""
        names = self.objective_domains or [n for n in losses if n not in self.held_out]
        return sum(losses[n] for n in names) / len(names)

    def cost(self, cfg: TrainConfig, result: RunResult) -> float:
        """Device-seconds charged to a run: nominal (``unit_cost_s``) or measured."""
        if self.unit_cost_s is None:
            return result.cost_s
        return self.unit_cost_s[cfg.size] * result.steps

    def trained(self, domains: Sequence[Domain]) -> list[Domain]:
        """The domains mixtures are made of: all but the held-out ones."""
        return [d for d in domains if d.name not in self.held_out]


def experiment_spec(name: str, domains: Sequence[Domain], plan: Plan, device: str) -> dict[str, Any]:
    params = [n_params(SIZES[s], plan.base.context) for s in plan.sizes]
    domains = plan.trained(domains)
    prior = natural_shares(domains)
    # Small domains (pydoc has ~0.4 MB) would be seen many times over at large budgets: with max_epochs
    # the service caps each weight at tokens_available * max_epochs / target_tokens.
    capped = plan.max_epochs is not None
    return {
        "name": name,
        "domains": [
            {"name": d.name, "prior": prior[d.name], **({"tokens_available": len(d.train)} if capped else {})}
            for d in domains
        ],
        "budget": {"target_tokens": max(plan.tokens), "max_epochs": plan.max_epochs} if capped else {},
        "objective": {
            "metrics": [f"loss/{n}" for n in plan.objective_domains or [d.name for d in domains]],
            "aggregate": "single" if len(plan.objective_domains) == 1 else "mean",
            "goal": "minimize",
        },
        "fidelities": [{"name": "params", "min": min(params), "max": max(params), "target": max(params)}],
        "search": {"initial_runs": plan.initial + plan.initial_larger * (len(plan.sizes) - 1)},
        "metadata": {
            "example": "tiny_lm",
            "device": device,
            "sizes": ",".join(plan.sizes),
            "tokens": ",".join(map(str, plan.tokens)),
            "context": str(plan.base.context),
            **({"objective_domains": ",".join(plan.objective_domains)} if plan.objective_domains else {}),
            **({"held_out": ",".join(plan.held_out)} if plan.held_out else {}),
        },
    }


def size_of(fidelity: dict[str, float], sizes: Sequence[str], context: int) -> str:
    """The size whose parameter count is nearest (in log) to the suggested fidelity."""
    want = fidelity["params"]
    return min(sizes, key=lambda s: abs(math.log(n_params(SIZES[s], context) / want)))


def _mix(m: dict[str, float]) -> str:
    return " ".join(f"{k}={v:.2f}" for k, v in m.items())


class Search:
    """One experiment's loop; keeps every trained run for the result file and the plot."""

    def __init__(
        self, client: MixoptClient, corpus: DeviceCorpus, plan: Plan, exp: dict[str, Any], log: Log = _print
    ) -> None:
        self.client = client
        self.corpus = corpus
        self.plan = plan
        self.exp = exp
        self.log = log
        self.runs: list[dict[str, Any]] = []

    @property
    def cost(self) -> float:
        return sum(r["cost_s"] for r in self.runs)

    def round(self, index: int) -> int:
        sizes = self.plan.sizes
        if index == 1:
            batch = self._suggest(self.plan.initial, sizes[0])
            for size in sizes[1:]:
                batch += self._suggest(self.plan.initial_larger, size)
        else:
            batch = self._suggest(self.plan.per_round, None)
        return self.train_suggestions(index, batch)

    def train_suggestions(self, index: int, batch: list[Suggestion]) -> int:
        """Train each suggestion at its size and report it as it finishes; returns how many were trained."""
        sizes = self.plan.sizes
        jobs = []
        for k, s in enumerate(batch):
            size = size_of(s.fidelity, sizes, self.plan.base.context)
            jobs.append((s.mixture, self.plan.config(size, seed=len(self.runs) + k)))

        def done(i: int, result: RunResult) -> None:
            self._report(index, batch[i], jobs[i][1], result)

        try:
            train_many(self.corpus, jobs, self.plan.parallel, done)
        except BaseException:
            # Hand the unfinished suggestions back (state failed), so they stop counting as pending.
            reported = {r["id"] for r in self.runs}
            for s in batch:
                if s.id not in reported:
                    self.client.report(self.exp["id"], run_id=s.id, metrics={}, state="failed")
            raise
        return len(batch)

    def _suggest(self, count: int, size: str | None) -> list[Suggestion]:
        if count <= 0:
            return []
        fidelity = {"params": n_params(SIZES[size], self.plan.base.context)} if size else None
        return self.client.suggest(self.exp["id"], count, fidelity=fidelity)

    def _report(self, index: int, s: Suggestion, cfg: TrainConfig, r: RunResult) -> None:
        self.client.report(
            self.exp["id"],
            run_id=s.id,
            metrics={f"loss/{k}": v for k, v in r.losses.items()},
            cost=self.plan.cost(cfg, r),
            client_run_id=f"tiny-lm-{self.exp['id']}-{s.id}",
        )
        self.runs.append(
            {
                "round": index,
                "id": s.id,
                "method": s.method,
                "predicted": s.predicted,
                "size": cfg.size,
                "mixture": s.mixture,
                "losses": r.losses,
                "objective": self.plan.objective(r.losses),
                "cost_s": self.plan.cost(cfg, r),
                "wall_s": r.wall_s,
                "tokens": r.tokens,
                "params": r.params,
            }
        )
        self.log(
            f"  run {len(self.runs):>3} [{s.method or '-':<6}] {cfg.size:<3} {_mix(s.mixture)}  "
            f"loss {self.plan.objective(r.losses):.4f}  {self.plan.cost(cfg, r):6.1f}s  "
            f"(search total {self.cost:,.0f}s)"
        )

    def loop(self) -> None:
        for index in range(1, self.plan.rounds + 1):
            if self.cost >= self.plan.budget_s:
                self.log(
                    f"budget of {self.plan.budget_s:,.0f} device-seconds spent; stopping after "
                    f"{index - 1} rounds"
                )
                break
            t0 = time.perf_counter()
            self.log(f"round {index}/{self.plan.rounds}")
            n = self.round(index)
            self.log(f"round {index}: {n} runs in {time.perf_counter() - t0:.1f}s wall")

    def fidelity_report(self) -> list[dict[str, Any]]:
        """Ask for a refit of every law and return its fits: how well each law predicts these runs."""
        job = self.client.request(
            "POST", f"/v1/experiments/{self.exp['id']}/refits", json={"force": True}
        ).json()
        self.client.wait(job, timeout_s=1800)
        fits = self.client.request(
            "GET", f"/v1/experiments/{self.exp['id']}/fits", params={"latest": "true"}
        ).json()["fits"]
        return [
            {"law": f["law"], "selected": f["selected"], "n_runs": f["n_runs"], "scores": f["scores"]}
            for f in fits
        ]

    def finals(
        self, recommended: dict[str, float], natural: dict[str, float]
    ) -> dict[str, list[dict[str, Any]]]:
        """Recommended, uniform and natural mixtures at the largest size, ``final_seeds`` seeds each."""
        names = [n for n in self.corpus.names if n not in self.plan.held_out]
        mixtures = {
            "recommended": recommended,
            "uniform": {n: 1 / len(names) for n in names},
            "natural": natural,
        }
        target = self.plan.sizes[-1]
        jobs = [
            (m, self.plan.config(target, seed=10_000 + seed))
            for m in mixtures.values()
            for seed in range(self.plan.final_seeds)
        ]
        self.log(
            f"final: {len(jobs)} runs at size {target} ({self.plan.config(target, 0).tokens:,} tokens each)"
        )
        results = train_many(self.corpus, jobs, self.plan.parallel)
        out: dict[str, list[dict[str, Any]]] = {}
        for (label, mixture), i in zip(
            mixtures.items(), range(0, len(jobs), self.plan.final_seeds), strict=True
        ):
            out[label] = [
                {"mixture": mixture, "losses": r.losses, "objective": self.plan.objective(r.losses),
                 "cost_s": r.cost_s}
                for r in results[i : i + self.plan.final_seeds]
            ]
        return out


def run(
    client: MixoptClient,
    domains: Sequence[Domain],
    plan: Plan,
    device: torch.device,
    out: Path,
    name: str | None = None,
    log: Log = _print,
) -> dict[str, Any]:
    """The whole example: search, fidelity report, recommendation, final comparison; returns the results."""
    t0 = time.perf_counter()
    device_label = device_name(device)
    corpus = DeviceCorpus(domains, device, plan.base.context, plan.base.eval_windows)
    spec = experiment_spec(name or f"tiny-lm-{int(time.time())}", domains, plan, device_label)
    exp = client.create_experiment(spec)
    log(
        f"experiment {exp['id']}: {len(domains)} domains, sizes "
        + ", ".join(
            f"{s} ({n_params(SIZES[s], plan.base.context):,} params, {t:,} tokens)"
            for s, t in zip(plan.sizes, plan.tokens, strict=True)
        )
        + f", on {device_label}"
    )
    search = Search(client, corpus, plan, exp, log)
    search.loop()
    log("refitting every law for the fidelity report ...")
    fits = search.fidelity_report()
    rec = client.recommendation(exp["id"])
    log(
        f"recommended ({rec['method']}, {rec['n_runs']} runs): {_mix(rec['mixture'])}, predicted "
        f"{rec['predicted']['value']:.4f}"
    )
    finals = search.finals(rec["mixture"], natural_shares(plan.trained(domains)))
    target = {"params": spec["fidelities"][0]["target"]}
    forecast = predict_finals(client, exp["id"], finals, target)
    stored = client.list_runs(exp["id"], state=["completed"])
    result = {
        "experiment_id": exp["id"],
        "device": device_label,
        "domains": corpus.names,
        "natural": natural_shares(plan.trained(domains)),
        "plan": {
            **asdict(plan),
            "budget_s": None if math.isinf(plan.budget_s) else plan.budget_s,
            "params": [n_params(SIZES[s], plan.base.context) for s in plan.sizes],
        },
        "runs": search.runs,
        "stored_runs": len(stored),
        "search_cost_s": search.cost,
        "fits": fits,
        "recommendation": {k: rec[k] for k in ("mixture", "fidelity", "predicted", "method", "n_runs")},
        "finals": finals,
        "forecast_method": forecast,
        "wall_s": time.perf_counter() - t0,
    }
    print_comparison(result, log)
    out.mkdir(parents=True, exist_ok=True)
    (out / "search.json").write_text(json.dumps(result, indent=1))
    plot_search(result, out / "search.png")
    log(f"wrote {out / 'search.json'} and {out / 'search.png'}")
    return result


def predict_finals(
    client: MixoptClient, exp_id: str, finals: dict[str, list[dict[str, Any]]], fidelity: dict[str, float]
) -> str | None:
    """Add the service's forecast at the target size to each final row; returns the model that made it.

    ``/predict`` answers with the method's own model where it has one and with RegMix otherwise (BO has
    none), so the method is recorded next to the numbers; before RegMix has enough runs there is none.
    """
    body = {"mixtures": [rows[0]["mixture"] for rows in finals.values()], "fidelity": fidelity}
    try:
        answer = client.request("POST", f"/v1/experiments/{exp_id}/predict", json=body).json()
    except NotEnoughDataError:
        return None
    for rows, p in zip(finals.values(), answer["predictions"], strict=True):
        for row in rows:
            row["predicted"] = p["objective"]
    return str(answer["method"])


def print_comparison(result: dict[str, Any], log: Log = _print) -> None:
    names = result["domains"]
    log(f"\nat size {result['plan']['sizes'][-1]}, mean over {result['plan']['final_seeds']} seed(s):")
    by = result["forecast_method"]
    log(
        f"  {'mixture':<12} "
        + " ".join(f"{n:>9}" for n in names)
        + f" {'mean':>9}"
        + (f"  predicted by {by}" if by else "")
    )
    for label, rows in result["finals"].items():
        per = {n: sum(r["losses"][n] for r in rows) / len(rows) for n in names}
        log(
            f"  {label:<12} "
            + " ".join(f"{per[n]:9.4f}" for n in names)
            + f" {sum(r['objective'] for r in rows) / len(rows):9.4f}"
            + (f"  {rows[0]['predicted']:.4f}" if "predicted" in rows[0] else "")
        )


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m examples.tiny_lm.orchestrate",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    connection.add_arguments(p)
    p.add_argument(
        "--domains", default=None, help=f"comma-separated, default all found of {','.join(SOURCES)}"
    )
    p.add_argument("--cap-bytes", type=int, default=2_000_000, help="bytes read per domain")
    p.add_argument("--sizes", default="xs,s", help=f"fidelity ladder, smallest first, of {','.join(SIZES)}")
    p.add_argument(
        "--tokens", default="200000,400000", help="training tokens per size (one value: all sizes)"
    )
    p.add_argument("--context", type=int, default=128)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--per-round", type=int, default=4, help="suggestions per model-based round")
    p.add_argument(
        "--initial", type=int, default=None, help="design runs at the smallest size (default 2*domains)"
    )
    p.add_argument("--initial-larger", type=int, default=2, help="design runs at each larger size")
    p.add_argument("--final-seeds", type=int, default=2)
    p.add_argument("--parallel", type=int, default=None, help="runs at once (default: 4 on a GPU, 1 on CPU)")
    p.add_argument(
        "--budget-s", type=float, default=math.inf, help="stop the search after this many device-s"
    )
    p.add_argument(
        "--max-epochs", type=float, default=None, help="cap weights so no domain repeats more often"
    )
    p.add_argument("--eval-windows", type=int, default=32, help="validation windows per domain")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: half the cores)")
    p.add_argument("--out", type=Path, default=Path("tiny-lm-results"))
    p.add_argument("--name", default=None, help="experiment name")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    device = pick_device(args.threads)
    domains = load_corpus(args.domains.split(",") if args.domains else None, args.cap_bytes, log=_print)
    sizes = args.sizes.split(",")
    unknown = [s for s in sizes if s not in SIZES]
    if unknown:
        raise SystemExit(f"unknown size {unknown[0]!r}; known: {', '.join(SIZES)}")
    tokens = [int(float(t)) for t in args.tokens.split(",")]
    tokens = tokens * len(sizes) if len(tokens) == 1 else tokens
    if len(tokens) != len(sizes):
        raise SystemExit("--tokens takes one value or one per size")
    plan = Plan(
        sizes=sizes,
        tokens=tokens,
        rounds=args.rounds,
        per_round=args.per_round,
        initial=args.initial if args.initial is not None else 2 * len(domains),
        initial_larger=args.initial_larger,
        final_seeds=args.final_seeds,
        parallel=args.parallel or default_parallel(device),
        budget_s=args.budget_s,
        max_epochs=args.max_epochs,
        base=TrainConfig(
            sizes[0], tokens[0], context=args.context, batch=args.batch, eval_windows=args.eval_windows
        ),
    )
    with connection.connect(args.url, args.token) as client:
        return run(client, domains, plan, device, args.out, args.name)


if __name__ == "__main__":
    main()
