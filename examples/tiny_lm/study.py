"""The study: does the service find a better mixture than the baselines and than other search recipes?

    python -m examples.tiny_lm.study --embedded --out examples/tiny_lm/results/cpu-study

The objective is the validation loss on a *target* domain that is never trained on (default ``pydoc``,
Python's reference documentation); the mixture is over the other domains, some of which help the target
(code, man pages) and some of which are distractors (licences, changelogs). Phases, each saved to
``OUT/study.json`` as it ends (``--resume`` skips the phases already there):

1. ``calibration``: seconds per training step of each size; every run is charged ``steps x that`` as its
   device-seconds, so the strategies' budgets compare even while the shared machine's load changes.
2. ``noise``: uniform, natural and each single domain at the target size, ``--seeds`` seeds each: the
   seed-to-seed noise against the spread between mixtures.
3. ``correlation``: those mixtures plus ``--random-mixtures`` random ones at every size (one seed): the
   rank correlation between each proxy size and the target size.
4. ``search/service``: the service's own loop (``auto``: design, then multi-fidelity BO over the sizes),
   stopped at ``--budget-s`` device-seconds; the refit's law-fidelity report and the recommendation.
   ``search/regmix``: RegMix's recipe on the same budget: random mixtures at the smallest size only, then
   the RegMix law (LightGBM) predicts ``--regmix-candidates`` random mixtures and the top ``--regmix-top-k``
   are averaged. ``search/random``: random mixtures at the target size on the same budget, the best kept.
5. ``finals``: each strategy's recommendation at the target size with the same seeds as the baselines.
6. ``online``: an Aioli session steering one target-size run, posting the target's loss in every domain's
   slot (so Aioli's objective, the sum of the posted losses, is the target's loss).

``python -m examples.tiny_lm.report --study OUT/study.json`` prints RESULTS.md's tables from the file.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from mixopt_client import MixoptClient

from examples.tiny_lm import connection, online, orchestrate
from examples.tiny_lm.corpus import SOURCES, Domain, as_target, load_corpus, natural_shares
from examples.tiny_lm.model import SIZES, n_params
from examples.tiny_lm.plots import plot_study
from examples.tiny_lm.stats import compare, mean, pooled_sd, spearman, standard_error
from examples.tiny_lm.train import DeviceCorpus, TrainConfig, Trainer, device_name, pick_device, train_run

Log = Callable[[str], None]
Mixture = dict[str, float]
FINAL_SEED = 1000  # baselines and recommendations share seeds 1000, 1001, ...; search runs use others
STRATEGIES = ("service", "regmix", "random")


def _print(line: str) -> None:
    print(line, flush=True)


def load_average() -> float:
    """The 1-minute load average (recorded with every run: the machine is shared)."""
    return os.getloadavg()[0]


@dataclass(frozen=True)
class StudyPlan:
    """What the study trains: the size ladder and its token budgets, the target, seeds, the search budget
    (device-seconds of the service's search; RegMix and random search get what it actually spent), and
    the online session's hyperparameters."""

    sizes: list[str]  # smallest first; the last is the target size
    tokens: list[int]
    objective_domains: tuple[str, ...] = ("pydoc", "code", "legal")
    held_out: tuple[str, ...] = ("pydoc",)
    seeds: int = 3
    final_seeds: int = 0  # seeds of the recommendations, uniform and natural in the finals (0: ``seeds``)
    random_mixtures: int = 4
    budget_s: float = 240.0
    initial: int = 8
    initial_larger: int = 2
    per_round: int = 3
    regmix_candidates: int = 20_000
    regmix_top_k: int = 128
    online_hp: dict[str, Any] = field(
        default_factory=lambda: {"probe_steps": 5, "sweeps": 1, "exploit_steps": 40}
    )
    observe_windows: int = 64
    base: TrainConfig = TrainConfig("xs", 0)

    @property
    def target(self) -> str:
        return self.sizes[-1]

    def config(self, size: str, seed: int) -> TrainConfig:
        return replace(self.base, size=size, tokens=self.tokens[self.sizes.index(size)], seed=seed)

    def objective(self, losses: dict[str, float]) -> float:
        """The target: the mean validation loss over ``objective_domains`` (equal parts of each)."""
        return mean([losses[n] for n in self.objective_domains])


def baseline_mixtures(names: Sequence[str], natural: Mixture) -> dict[str, Mixture]:
    """Uniform, natural and each single domain (labelled ``only NAME``)."""
    return {
        "uniform": {n: 1 / len(names) for n in names},
        "natural": dict(natural),
        **{f"only {n}": {m: float(m == n) for m in names} for n in names},
    }


def random_mixtures(names: Sequence[str], count: int, seed: int = 7) -> list[Mixture]:
    """``count`` mixtures uniform on the simplex (Dirichlet(1)), from a fixed seed."""
    gen = torch.Generator().manual_seed(seed)
    draws = -torch.log(torch.rand(count, len(names), generator=gen, dtype=torch.float64))
    draws /= draws.sum(1, keepdim=True)
    return [dict(zip(names, map(float, row), strict=True)) for row in draws]


def top_k_average(mixtures: Sequence[Mixture], predicted: Sequence[float], k: int) -> Mixture:
    """RegMix's recommendation: the mean of the ``k`` mixtures with the lowest predicted objective."""
    best = sorted(range(len(mixtures)), key=lambda i: predicted[i])[: max(1, k)]
    names = list(mixtures[0])
    avg = {n: mean([mixtures[i][n] for i in best]) for n in names}
    total = sum(avg.values())
    return {n: w / total for n, w in avg.items()}


def noise_summary(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Per mixture mean/sd/se over seeds; pooled seed sd; spread of the means; their ratio."""
    by: dict[str, list[float]] = {}
    for r in runs:
        by.setdefault(r["label"], []).append(r["objective"])
    means = {k: mean(v) for k, v in by.items()}
    sd = pooled_sd(list(by.values()))
    spread = max(means.values()) - min(means.values())
    return {
        "per_mixture": {k: {"mean": means[k], "se": standard_error(v), "n": len(v)} for k, v in by.items()},
        "pooled_sd": sd,
        "spread": spread,
        "ratio": spread / sd,
    }


def comparisons(finals: dict[str, list[float]], reference: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Each strategy's recommendation against each reference mixture: difference, its se, significance."""
    out: dict[str, dict[str, Any]] = {}
    for s in STRATEGIES:
        if s not in finals:
            continue
        out[s] = {}
        for ref in reference:
            if ref == s or ref not in finals:
                continue
            c = compare(finals[s], finals[ref])
            out[s][ref] = {"diff": c.diff, "se": c.se, "better": c.better}
    return out


def seconds_per_step(
    corpus: DeviceCorpus,
    configs: dict[str, TrainConfig],
    mixture: Mixture,
    steps: int = 10,
    repeats: int = 5,
    log: Log = _print,
) -> dict[str, float]:
    """Seconds per optimiser step of each size (``configs`` by size name) on ``corpus``'s device: the fastest
    of ``repeats`` timings of ``steps`` steps (after two warm-up steps), since other work on a shared machine
    only slows a timing down. A run's nominal cost is its steps times this, comparable while the load changes.
    """
    per = {}
    for size, cfg in configs.items():
        trainer = Trainer(corpus, cfg, total_steps=2 + steps * repeats)
        trainer.train(2, mixture)
        timings = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            trainer.train(steps, mixture)
            timings.append((time.perf_counter() - t0) / steps)
        per[size] = min(timings)
        log(f"  {size}: {per[size] * 1000:.1f} ms per step (timings {[round(t * 1000) for t in timings]})")
    return per


class Study:
    """Runs the phases, keeping everything in ``self.data`` and saving it after each phase."""

    def __init__(
        self,
        client: MixoptClient,
        domains: Sequence[Domain],
        plan: StudyPlan,
        device: torch.device,
        out: Path,
        data: dict[str, Any] | None = None,
        log: Log = _print,
    ) -> None:
        self.client = client
        self.plan = plan
        self.device = device
        self.out = out
        self.log = log
        found = {d.name for d in domains}
        missing = [n for n in (*plan.objective_domains, *plan.held_out) if n not in found]
        if missing:
            raise ValueError(f"domain {missing[0]!r} of the objective is not among the domains found")
        held_out = [as_target(d) for d in domains if d.name in plan.held_out]
        self.trained = [d for d in domains if d.name not in plan.held_out]
        self.names = [d.name for d in self.trained]
        self.natural = natural_shares(self.trained)
        self.corpus = DeviceCorpus(self.trained + held_out, device, plan.base.context, plan.base.eval_windows)
        self.data = data or {}

    # -- bookkeeping -------------------------------------------------------------------------------------
    def save(self, phase: str, value: Any) -> None:
        self.data[phase] = value
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / "study.json").write_text(json.dumps(self.data, indent=1))
        self.log(f"phase {phase} saved to {self.out / 'study.json'} (load average {load_average():.2f})")

    def unit_cost(self) -> dict[str, float]:
        return dict(self.data["calibration"]["seconds_per_step"])

    def run(self, mixture: Mixture, size: str, seed: int, label: str = "") -> dict[str, Any]:
        """One training run, recorded with its nominal and measured cost and the load at its end."""
        cfg = self.plan.config(size, seed)
        r = train_run(self.corpus, mixture, cfg)
        row = {
            "label": label,
            "size": size,
            "seed": seed,
            "mixture": mixture,
            "losses": r.losses,
            "objective": self.plan.objective(r.losses),
            "cost_s": self.unit_cost()[size] * r.steps,
            "wall_s": r.wall_s,
            "load": load_average(),
        }
        self.log(
            f"  {label or '-':<14} {size:<3} seed {seed:<5} target {row['objective']:.4f}  "
            f"wall {r.wall_s:5.1f}s  load {row['load']:.2f}"
        )
        return row

    # -- phases ------------------------------------------------------------------------------------------
    def setup(self) -> None:
        uptime = subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()
        info = {
            "device": device_name(self.device),
            "cpu": _cpu_model(),
            "torch": torch.__version__,
            "uptime_at_start": uptime,
            "plan": {**asdict(self.plan), "params": [n_params(SIZES[s], self.plan.base.context) for s in
                                                      self.plan.sizes]},
            "domains": self.names,
            "natural": self.natural,
            "corpus": {
                d.name: {"documents": d.documents, "train_bytes": len(d.train), "val_bytes": len(d.val),
                         "natural_bytes": d.natural_bytes}
                for d in self.trained
            },
            "eval_bytes": {n: int(v[:, 1:].numel()) for n, v in self.corpus.val.items()},
        }
        self.data["setup"] = info

    def calibration(self) -> None:
        uniform = {n: 1 / len(self.names) for n in self.names}
        configs = {size: self.plan.config(size, 0) for size in self.plan.sizes}
        per = seconds_per_step(self.corpus, configs, uniform, log=self.log)
        self.save("calibration", {"seconds_per_step": per, "load": load_average()})

    def noise(self) -> None:
        runs = [
            self.run(m, self.plan.target, FINAL_SEED + k, label)
            for label, m in baseline_mixtures(self.names, self.natural).items()
            for k in range(self.plan.seeds)
        ]
        self.save("noise", {"runs": runs, "summary": noise_summary(runs)})

    def correlation(self) -> None:
        mixtures = baseline_mixtures(self.names, self.natural)
        mixtures |= {f"random {i + 1}": m for i, m in
                     enumerate(random_mixtures(self.names, self.plan.random_mixtures))}
        at_target = {r["label"]: r for r in self.data["noise"]["runs"] if r["seed"] == FINAL_SEED}
        runs = []
        for size in self.plan.sizes:
            for label, m in mixtures.items():
                reuse = size == self.plan.target and label in at_target
                runs.append(at_target[label] if reuse else self.run(m, size, FINAL_SEED, label))
        objective = {s: [r["objective"] for r in runs if r["size"] == s] for s in self.plan.sizes}
        table = {a: {b: spearman(objective[a], objective[b]) for b in self.plan.sizes} for a in self.plan.sizes}
        self.save("correlation", {"labels": list(mixtures), "runs": runs, "spearman": table})

    def _orchestrate_plan(self) -> orchestrate.Plan:
        return orchestrate.Plan(
            sizes=self.plan.sizes,
            tokens=self.plan.tokens,
            rounds=1000,
            per_round=self.plan.per_round,
            initial=self.plan.initial,
            initial_larger=self.plan.initial_larger,
            final_seeds=0,
            budget_s=self.plan.budget_s,
            base=self.plan.base,
            objective_domains=self.plan.objective_domains,
            held_out=self.plan.held_out,
            unit_cost_s=self.unit_cost(),
        )

    def _experiment(self, strategy: str) -> tuple[orchestrate.Search, dict[str, Any]]:
        oplan = self._orchestrate_plan()
        spec = orchestrate.experiment_spec(
            f"tiny-lm-study-{strategy}-{int(time.time())}",
            self.trained,
            oplan,
            device_name(self.device),
        )
        exp = self.client.create_experiment(spec)
        return orchestrate.Search(self.client, self.corpus, oplan, exp, self.log), exp

    def search_service(self) -> None:
        """The service's loop: design at every size, then ``auto`` (multi-fidelity BO) picks mixture and size."""
        search, exp = self._experiment("service")
        t0 = time.perf_counter()
        search.loop()
        fits = search.fidelity_report()
        rec = self.client.recommendation(exp["id"])
        self.log(f"service recommends ({rec['method']}): {orchestrate._mix(rec['mixture'])}")
        self.save("search/service", {
            "experiment_id": exp["id"], "runs": search.runs, "cost_s": search.cost, "fits": fits,
            "recommendation": {
                **{k: rec[k] for k in ("mixture", "fidelity", "predicted", "method", "n_runs")},
                "details": {k: v for k, v in rec["details"].items() if k != "bo_state"},
            },
            "wall_s": time.perf_counter() - t0,
        })

    def _random_until(self, search: orchestrate.Search, exp: dict[str, Any], size: str, budget: float) -> None:
        """Random suggestions at ``size`` until the next run would take the spend past ``budget`` by more than
        half of that run's cost (so every strategy ends as near the same budget as its run size allows)."""
        unit = self.unit_cost()[size] * self.plan.config(size, 0).steps
        fidelity = {"params": n_params(SIZES[size], self.plan.base.context)}
        index = 1
        while search.cost + unit / 2 <= budget:
            batch = self.client.suggest(exp["id"], 1, method="random", fidelity=fidelity)
            search.train_suggestions(index, batch)
            index += 1

    def search_regmix(self) -> None:
        budget = self.data["search/service"]["cost_s"]
        search, exp = self._experiment("regmix")
        t0 = time.perf_counter()
        self._random_until(search, exp, self.plan.sizes[0], budget)
        candidates = random_mixtures(self.names, self.plan.regmix_candidates, seed=11)
        target = {"params": n_params(SIZES[self.plan.target], self.plan.base.context)}
        answer = self.client.predict(exp["id"], candidates, target, method="regmix", seed=0)
        predicted = [p["objective"] for p in answer["predictions"]]
        mixture = top_k_average(candidates, predicted, self.plan.regmix_top_k)
        self.log(f"RegMix recommends: {orchestrate._mix(mixture)}")
        self.save("search/regmix", {
            "experiment_id": exp["id"], "runs": search.runs, "cost_s": search.cost,
            "recommendation": {"mixture": mixture, "method": "regmix top-k average",
                               "predicted_best": min(predicted), "n_candidates": len(candidates)},
            "wall_s": time.perf_counter() - t0,
        })

    def search_random(self) -> None:
        budget = self.data["search/service"]["cost_s"]
        search, exp = self._experiment("random")
        t0 = time.perf_counter()
        self._random_until(search, exp, self.plan.target, budget)
        best = min(search.runs, key=lambda r: r["objective"])
        self.log(f"random search's best: {orchestrate._mix(best['mixture'])}")
        self.save("search/random", {
            "experiment_id": exp["id"], "runs": search.runs, "cost_s": search.cost,
            "recommendation": {"mixture": best["mixture"], "method": "best measured at the target size",
                               "measured": best["objective"]},
            "wall_s": time.perf_counter() - t0,
        })

    def finals(self) -> None:
        """The recommendations at the target size, and uniform and natural topped up to as many seeds."""
        seeds = self.plan.final_seeds or self.plan.seeds
        mixtures = {s: self.data[f"search/{s}"]["recommendation"]["mixture"] for s in STRATEGIES}
        mixtures |= {k: m for k, m in baseline_mixtures(self.names, self.natural).items()
                     if k in ("uniform", "natural")}
        done = {(r["label"], r["seed"]) for r in self.data["noise"]["runs"]}
        runs = [
            self.run(m, self.plan.target, FINAL_SEED + k, label)
            for label, m in mixtures.items()
            for k in range(seeds)
            if (label, FINAL_SEED + k) not in done
        ]
        objectives: dict[str, list[float]] = {}
        for r in [*self.data["noise"]["runs"], *runs]:
            objectives.setdefault(r["label"], []).append(r["objective"])
        singles = {k: v for k, v in objectives.items() if k.startswith("only ")}
        best_single = min(singles, key=lambda k: mean(singles[k]))
        refs = ["uniform", "natural", best_single, *STRATEGIES]
        self.save("finals", {
            "runs": runs,
            "best_single": best_single,
            "summary": {k: {"mean": mean(v), "se": standard_error(v), "n": len(v)} for k, v in objectives.items()},
            "comparisons": comparisons(objectives, refs),
        })

    def online(self) -> None:
        """An Aioli session steering one run at the target size, for as many steps as a static run."""
        cfg = self.plan.config(self.plan.target, FINAL_SEED)
        exp = self.client.create_experiment({
            "name": f"tiny-lm-study-online-{int(time.time())}",
            "domains": [{"name": n, "prior": p} for n, p in self.natural.items()],
            "objective": {"metrics": [f"loss/{n}" for n in self.plan.objective_domains], "aggregate": "mean"},
            "metadata": {"example": "tiny_lm.study", "device": device_name(self.device)},
        })
        session = self.client.request("POST", online.session_path(exp["id"]), json={
            "method": "aioli",
            "hyperparameters": self.plan.online_hp,
            "initial_weights": {n: 1 / len(self.names) for n in self.names},
            "client_session_id": f"tiny-lm-study-{exp['id']}",
        }).json()
        t0 = time.perf_counter()
        trainer, posted = online.train_online(
            self.client, exp["id"], session, self.corpus, cfg, cfg.steps, self.plan.observe_windows,
            self.log, observed=lambda losses: {n: self.plan.objective(losses) for n in self.names},
        )
        losses = trainer.evaluate()
        detail = self.client.request("GET", online.session_path(exp["id"], session["id"])).json()
        self.save("online", {
            "experiment_id": exp["id"], "session_id": session["id"], "method": "aioli",
            "hyperparameters": detail["hyperparameters"], "steps": cfg.steps, "seed": cfg.seed,
            "posted_steps": posted, "trajectory": detail["trajectory"],
            "final_mixture": detail["directive"]["mixture"],
            "losses": losses, "objective": self.plan.objective(losses), "wall_s": time.perf_counter() - t0,
            "load": load_average(),
        })

    PHASES: tuple[str, ...] = ("calibration", "noise", "correlation", "search/service", "search/regmix",
                               "search/random", "finals", "online")

    def run_all(self, only: Sequence[str] | None = None) -> dict[str, Any]:
        self.setup()
        for phase in self.PHASES:
            if phase in self.data or (only and phase not in only):
                continue
            self.log(f"== {phase} (load average {load_average():.2f})")
            t0 = time.perf_counter()
            getattr(self, phase.replace("search/", "search_"))()
            self.log(f"== {phase} done in {time.perf_counter() - t0:.0f}s wall")
        plot_study(self.data, self.out)
        return self.data


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip() + f" x {os.cpu_count()}"
    except OSError:
        pass
    return f"unknown CPU x {os.cpu_count()}"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m examples.tiny_lm.study",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    connection.add_arguments(p)
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument("--domains", default="code,man,legal,changelog,pydoc",
                   help=f"comma-separated, the target among them; of {','.join(SOURCES)}")
    p.add_argument("--objective-domains", default="pydoc,code,legal",
                   help="the target: the mean validation loss over these domains (equal parts)")
    p.add_argument("--held-out", default="pydoc", help="domains scored but never trained on")
    p.add_argument("--cap-bytes", type=int, default=2_000_000)
    p.add_argument("--sizes", default="xs,xs2,s", help=f"smallest first, the target last; of {','.join(SIZES)}")
    p.add_argument("--tokens", default="200000,400000,800000", help="training tokens per size")
    p.add_argument("--context", type=int, default=128)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--eval-windows", type=int, default=256, help="validation windows per domain")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--random-mixtures", type=int, default=4, help="random mixtures in the correlation set")
    p.add_argument("--budget-s", type=float, default=240.0, help="device-seconds of the service's search")
    p.add_argument("--per-round", type=int, default=3)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--resume", action="store_true", help="keep the phases already in OUT/study.json")
    p.add_argument("--final-seeds", type=int, default=0, help="seeds in the finals (default: --seeds)")
    p.add_argument("--redo", default="", help="comma-separated phases to drop from OUT/study.json and rerun")
    p.add_argument("--phases", default=None, help="comma-separated subset of the phases to run")
    p.add_argument("--out", type=Path, default=Path("tiny-lm-study"))
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    if args.device == "cpu":
        torch.set_num_threads(args.threads or max(1, (os.cpu_count() or 2) // 2))
        device = torch.device("cpu")
    else:
        device = pick_device(args.threads)
        if args.device == "cuda" and device.type != "cuda":
            raise SystemExit("--device cuda: no CUDA device here")
    domains = load_corpus(args.domains.split(","), args.cap_bytes, log=_print)
    sizes = args.sizes.split(",")
    unknown = [s for s in sizes if s not in SIZES]
    if unknown:
        raise SystemExit(f"unknown size {unknown[0]!r}; known: {', '.join(SIZES)}")
    tokens = [int(float(t)) for t in args.tokens.split(",")]
    if len(tokens) != len(sizes):
        raise SystemExit("--tokens takes one value per size")
    plan = StudyPlan(
        sizes=sizes, tokens=tokens, objective_domains=tuple(args.objective_domains.split(",")),
        held_out=tuple(args.held_out.split(",")) if args.held_out else (), seeds=args.seeds,
        random_mixtures=args.random_mixtures, budget_s=args.budget_s, per_round=args.per_round,
        final_seeds=args.final_seeds,
        base=TrainConfig(sizes[0], tokens[0], context=args.context, batch=args.batch,
                         eval_windows=args.eval_windows),
    )
    path = args.out / "study.json"
    data = json.loads(path.read_text()) if args.resume and path.exists() else None
    for phase in filter(None, args.redo.split(",")):
        (data or {}).pop(phase, None)
    with connection.connect(args.url, args.token) as client:
        study = Study(client, domains, plan, device, args.out, data)
        return study.run_all(args.phases.split(",") if args.phases else None)


if __name__ == "__main__":
    main()
