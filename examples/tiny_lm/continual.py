"""Continual pretraining on CPU: does the CMR law (issue 18) predict how much domain data a tiny LM can take?

    python -m examples.tiny_lm.continual --out examples/tiny_lm/results/continual

A base model is trained on *general* data (every domain but ``--domain``, in equal parts), then continued
from it on general data replayed with the domain at ratio ``r`` for ``T`` tokens, once per point of a
(ratio x tokens) grid; each continuation is a fresh run from the base weights with its own warm-up and
cosine schedule over its ``T``. Every run is scored on the general loss (the mean validation loss of the
general domains) and the domain loss. Then, with :mod:`mixing.continual` (the pure code behind the
service's ``GET .../cmr``):

* the CMR law is fitted on the runs at the smaller token counts and scored on those at the largest
  (held-out mean absolute error of each loss), besides K-fold cross-validation on all runs;
* the law fitted on all runs gives the critical mixture ratio at ``--target-steps`` (beyond the grid) for
  the tolerance on the general loss over the base model's, with its 90% interval;
* one more continuation at the predicted CMR and the target tokens measures whether its general loss
  stays within the tolerance.

Runs are saved to ``OUT/continual.json`` as they finish and reused when the script is run again with the
same settings, so a changed tolerance or target re-analyses without retraining what it has.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from examples.tiny_lm.corpus import load_corpus
from examples.tiny_lm.study import load_average
from examples.tiny_lm.train import DeviceCorpus, TrainConfig, Trainer, device_name, pick_device
from mixing.continual import CMRAnswer, CMRValidation, critical_mixture_ratio, validate_cmr_law
from mixing.laws.cmr import ToleranceKind

Mixture = dict[str, float]


@dataclass(frozen=True)
class Plan:
    """What is trained: the base model's length, the continuation grid (steps; tokens are steps x batch x
    context) and the CMR question (tolerance on the general loss, target steps)."""

    domain: str = "code"
    size: str = "xs"
    base_steps: int = 1000
    ratios: tuple[float, ...] = (0.0, 0.1, 0.25, 0.5, 0.75)
    steps: tuple[int, ...] = (50, 100, 200, 400)
    target_steps: int = 800
    tolerance: float = 0.01
    kind: ToleranceKind = ToleranceKind.relative
    #: The continuations' peak learning rate as a fraction of the base model's (which they warm up to).
    lr_scale: float = 1.0
    eval_windows: int = 64
    seed: int = 0

    def config(self, steps: int, lr_scale: float = 1.0) -> TrainConfig:
        cfg = TrainConfig(self.size, 0, eval_windows=self.eval_windows, seed=self.seed)
        return replace(cfg, tokens=steps * cfg.batch * cfg.context, lr=cfg.learning_rate * lr_scale)

    def tokens(self, steps: int) -> int:
        cfg = self.config(steps)
        return cfg.steps * cfg.batch * cfg.context

    def trains_like(self, saved: dict[str, Any]) -> bool:
        """Whether runs saved under ``saved`` (a plan's JSON) were trained as this plan would train them."""
        same = ("domain", "size", "base_steps", "lr_scale", "eval_windows", "seed")
        return all(saved.get(k) == getattr(self, k) for k in same)


@dataclass(frozen=True)
class Run:
    """One continuation: domain ratio, tokens, and the (general, domain) validation losses it reached."""

    ratio: float
    tokens: int
    general: float
    domain: float


@dataclass(frozen=True)
class Analysis:
    """The law's fit on the grid and its answer at the target."""

    validation: CMRValidation
    answer: CMRAnswer
    #: The general-loss limit the CMR keeps to: the base model's general loss plus the tolerance.
    limit: float


def analyse(runs: Sequence[Run], *, base_general: float, plan: Plan, target_tokens: float) -> Analysis:
    """Validate the CMR law on these runs and ask it for the critical mixture ratio at ``target_tokens``."""
    ratios = [r.ratio for r in runs]
    tokens = [r.tokens for r in runs]
    losses = [[r.general, r.domain] for r in runs]
    validation = validate_cmr_law(ratios, tokens, losses, seed=plan.seed)
    answer = critical_mixture_ratio(ratios, tokens, losses, base_general_loss=base_general, tolerance=plan.tolerance,
                                    target_tokens=target_tokens, kind=plan.kind)
    slack = plan.tolerance * abs(base_general) if plan.kind == ToleranceKind.relative else plan.tolerance
    return Analysis(validation, answer, base_general + slack)


class Experiment:
    """The base model, the continuations (cached in ``OUT/continual.json``) and their scores."""

    def __init__(self, plan: Plan, out: Path) -> None:
        self.plan = plan
        self.out = out
        self.device = pick_device(1)
        domains = load_corpus()
        if plan.domain not in {d.name for d in domains}:
            raise SystemExit(f"domain {plan.domain!r} is not among those found: {[d.name for d in domains]}")
        self.general_names = [d.name for d in domains if d.name != plan.domain]
        self.corpus = DeviceCorpus(domains, self.device, TrainConfig(plan.size, 0).context, plan.eval_windows)
        path = out / "continual.json"
        saved = json.loads(path.read_text()) if path.exists() else {}
        self.data: dict[str, Any] = saved if plan.trains_like(saved.get("plan", {})) else {}
        self.data["plan"] = _jsonable(asdict(plan))
        self.data.setdefault("runs", {})
        self.base_state: dict[str, torch.Tensor] | None = None

    def mixture(self, ratio: float) -> Mixture:
        general = (1.0 - ratio) / len(self.general_names)
        return {self.plan.domain: ratio, **{n: general for n in self.general_names}}

    def scores(self, losses: dict[str, float]) -> tuple[float, float]:
        """(general, domain) loss: the mean over the general domains, and the domain's own."""
        return float(np.mean([losses[n] for n in self.general_names])), losses[self.plan.domain]

    def save(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / "continual.json").write_text(json.dumps(self.data, indent=1))

    def base(self) -> float:
        """Train the base model on general data (always: its weights are not saved); its general loss."""
        t0 = time.perf_counter()
        trainer = Trainer(self.corpus, self.plan.config(self.plan.base_steps))
        trainer.train(self.plan.base_steps, self.mixture(0.0))
        general, domain = self.scores(trainer.evaluate())
        self.base_state = {k: v.clone() for k, v in trainer.model.state_dict().items()}
        self.data["base"] = {"general": general, "domain": domain, "steps": self.plan.base_steps,
                             "wall_s": time.perf_counter() - t0, "load": load_average()}
        print(f"base: general {general:.4f} domain {domain:.4f} ({time.perf_counter() - t0:.0f} s)", flush=True)
        self.save()
        return general

    def run(self, ratio: float, steps: int) -> Run:
        """Continue the base model at ``ratio`` for ``steps`` steps (or reuse the saved run)."""
        key = f"{ratio:g}@{steps}"
        row = self.data["runs"].get(key)
        if row is None:
            if self.base_state is None:
                raise SystemExit(f"run {key} is not in {self.out / 'continual.json'}: train without --reanalyse")
            t0 = time.perf_counter()
            trainer = Trainer(self.corpus, self.plan.config(steps, self.plan.lr_scale))
            trainer.model.load_state_dict(self.base_state)
            trainer.train(steps, self.mixture(ratio))
            general, domain = self.scores(trainer.evaluate())
            row = {"ratio": ratio, "tokens": self.plan.tokens(steps), "general": general,
                   "domain": domain, "wall_s": time.perf_counter() - t0, "load": load_average()}
            self.data["runs"][key] = row
            self.save()
            print(f"  r {ratio:<5g} steps {steps:<4} general {general:.4f} domain {domain:.4f} "
                  f"({row['wall_s']:.0f} s, load {row['load']:.2f})", flush=True)
        return Run(row["ratio"], row["tokens"], row["general"], row["domain"])


def report(analysis: Analysis, base_general: float, plan: Plan) -> dict[str, Any]:
    """The analysis as JSON-ready numbers (and printed)."""
    v, a = analysis.validation, analysis.answer
    out = {
        "base_general": base_general, "limit": analysis.limit,
        "cv_mae": None if v.cv is None else asdict(v.cv), "folds": v.folds,
        "heldout_mae": None if v.heldout is None else asdict(v.heldout), "heldout_tokens": v.heldout_tokens,
        "n_heldout": v.n_heldout, "params": {g: p.as_dict() for g, p in a.params.items()},
        "cmr": a.point.ratio, "cmr_interval": [a.ratio_interval.lower, a.ratio_interval.upper],
        "feasible": a.point.feasible, "predicted_general": a.point.general_loss,
        "predicted_domain": a.point.domain_loss, "residual_dof": a.residual_dof,
    }
    cv = "none" if v.cv is None else f"{v.cv.general:.4f} / {v.cv.domain:.4f}"
    held = "none" if v.heldout is None else f"{v.heldout.general:.4f} / {v.heldout.domain:.4f}"
    print(f"CV MAE general / domain: {cv}; held-out at {v.heldout_tokens:g} tokens ({v.n_heldout} runs): {held}")
    print(f"CMR at {plan.target_steps} steps, general limit {analysis.limit:.4f}: {a.point.ratio:.3f} "
          f"[{a.ratio_interval.lower:.3f}, {a.ratio_interval.upper:.3f}], predicted general "
          f"{a.point.general_loss:.4f}, domain {a.point.domain_loss:.4f}")
    return out


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("tiny-lm-results/continual"))
    parser.add_argument("--domain", default=Plan.domain)
    parser.add_argument("--size", default=Plan.size)
    parser.add_argument("--base-steps", type=int, default=Plan.base_steps)
    parser.add_argument("--ratios", default=",".join(f"{r:g}" for r in Plan.ratios))
    parser.add_argument("--steps", default=",".join(map(str, Plan.steps)))
    parser.add_argument("--lr-scale", type=float, default=Plan.lr_scale)
    parser.add_argument("--target-steps", type=int, default=Plan.target_steps)
    parser.add_argument("--tolerance", type=float, default=Plan.tolerance)
    parser.add_argument("--kind", choices=[k.value for k in ToleranceKind], default=Plan.kind.value)
    parser.add_argument("--reanalyse", action="store_true",
                        help="analyse the saved base and runs again without training (the interval, say)")
    args = parser.parse_args(argv)
    plan = Plan(domain=args.domain, size=args.size, base_steps=args.base_steps,
                ratios=tuple(float(r) for r in args.ratios.split(",")),
                steps=tuple(int(s) for s in args.steps.split(",")), lr_scale=args.lr_scale,
                target_steps=args.target_steps,
                tolerance=args.tolerance, kind=ToleranceKind(args.kind))
    t0 = time.perf_counter()
    exp = Experiment(plan, args.out)
    if args.reanalyse:
        if "base" not in exp.data:
            raise SystemExit(f"no base model of this plan in {args.out / 'continual.json'}: train without --reanalyse")
        base_general = exp.data["base"]["general"]
    else:
        exp.data["setup"] = {"device": device_name(exp.device), "torch": torch.__version__,
                             "general_domains": exp.general_names, "uptime_at_start": _uptime()}
        base_general = exp.base()
    runs = [exp.run(r, s) for s in plan.steps for r in plan.ratios]
    analysis = analyse(runs, base_general=base_general, plan=plan, target_tokens=plan.tokens(plan.target_steps))
    result = report(analysis, base_general, plan)
    check = exp.run(round(analysis.answer.point.ratio, 3), plan.target_steps)
    result["check"] = {"ratio": check.ratio, "tokens": check.tokens, "general": check.general,
                       "domain": check.domain, "over_limit": check.general - analysis.limit}
    print(f"measured at r = {check.ratio:.3f}, {plan.target_steps} steps: general {check.general:.4f} "
          f"({check.general - analysis.limit:+.4f} against the limit), domain {check.domain:.4f}")
    exp.data["analysis"] = result
    if not args.reanalyse:
        exp.data["wall_s"] = time.perf_counter() - t0
        exp.data["uptime_at_end"] = _uptime()
    exp.save()


def _jsonable(plan: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.value if isinstance(v, ToleranceKind) else v) for k, v in plan.items()}


def _uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()


if __name__ == "__main__":
    main()
