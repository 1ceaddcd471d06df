"""Stratified, static prior, DoReMi and Aioli on a simulated 7-domain SlimPajama-like training run.

How the process is made (``mixing.online.simulate.TransferPowerLawProcess``). Losses depend only on the
cumulative exposure ``n`` (steps spent on each domain): ``L_i = E_i + B_i (1 + (T n)_i / D)^(-alpha_i)``.

* Domains and prior: SlimPajama's seven sources with their token shares (CommonCrawl 52.2 %, C4 26.7 %,
  GitHub 5.2 %, ArXiv 4.6 %, Books 4.2 %, Wikipedia 3.8 %, StackExchange 3.3 %); the shares are the
  ``static`` prior.
* ``E_i``: irreducible losses of plausible size for a 160M model (code lowest, web text highest);
  ``B_i = 10.8 - E_i`` so every domain starts at ln(50k vocabulary) = 10.8; ``alpha_i`` in 0.28-0.40;
  ``D = 50`` steps.
* ``T``: transfer between domains: 1 on the diagonal, 0.15 between any two text domains, more between
  related ones (C4-CC 0.8, CC/C4/Books-Wikipedia 0.35-0.45, ArXiv-StackExchange 0.35, StackExchange-GitHub
  0.4), 0.05 between GitHub and web/prose text.
* Seeds jitter the process (``E`` by +-5 %, ``alpha`` by +-10 %, off-diagonal ``T`` by a log-normal factor
  of sd 0.25) and draw the observation noise; the score is the noise-free average final loss over the
  seven domains, after 40,000 steps (the Aioli paper's run length).

Methods: the released Aioli SlimPajama settings (our defaults: eta 1, ema 0.1, one_hot_factor 0.75,
2 sweeps of 10-step probes, 200-step rounds); DoReMi with eta 1, c 1e-3, one update per 100 steps, its
reference model being the stratified run (reference losses = that run's final per-domain losses), scored
both as the proxy run itself and, as the paper prescribes, as a fresh run on its averaged weights (which
costs three runs in all). The "oracle static" row is the best fixed mixture for the seed's process
(SLSQP on the simplex), a bound no online method is promised to reach.

    python bench/online_simulation.py [--seeds 5] [--noise 0 0.001]

Prints a table, writes ``bench/results/online_simulation.json`` and plots the weight trajectories of
seed 0 (noise-free) to ``bench/results/online_weights.png``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from scipy.optimize import minimize  # noqa: E402

from mixing.online.simulate import Trajectory, TransferPowerLawProcess, run_session  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
DOMAINS = ("arxiv", "book", "c4", "cc", "github", "stackexchange", "wikipedia")
TOKEN_SHARES = np.array([4.6, 4.2, 26.7, 52.2, 5.2, 3.3, 3.8]) / 100.2
IRREDUCIBLE = np.array([1.9, 2.9, 3.1, 2.9, 1.0, 2.0, 2.4])
EXPONENTS = np.array([0.32, 0.28, 0.30, 0.30, 0.40, 0.34, 0.30])
RELATED = {
    ("c4", "cc"): 0.8,
    ("cc", "wikipedia"): 0.45,
    ("c4", "wikipedia"): 0.4,
    ("book", "cc"): 0.4,
    ("book", "c4"): 0.35,
    ("book", "wikipedia"): 0.35,
    ("arxiv", "wikipedia"): 0.3,
    ("arxiv", "stackexchange"): 0.35,
    ("stackexchange", "github"): 0.4,
    ("stackexchange", "cc"): 0.3,
}
CODE_TO_PROSE = 0.05
TOTAL_STEPS = 40_000
DOREMI_INTERVAL = 100


def transfer_matrix() -> np.ndarray:
    t = np.full((len(DOMAINS), len(DOMAINS)), 0.15)
    github = DOMAINS.index("github")
    t[github, :] = t[:, github] = CODE_TO_PROSE
    for (a, b), value in RELATED.items():
        i, j = DOMAINS.index(a), DOMAINS.index(b)
        t[i, j] = t[j, i] = value
    np.fill_diagonal(t, 1.0)
    return t


def slimpajama_like(rng: np.random.Generator) -> TransferPowerLawProcess:
    k = len(DOMAINS)
    irreducible = IRREDUCIBLE * rng.uniform(0.95, 1.05, k)
    transfer = transfer_matrix() * np.exp(0.25 * rng.standard_normal((k, k)))
    transfer = np.clip(transfer, 0.0, 0.95)
    np.fill_diagonal(transfer, 1.0)
    return TransferPowerLawProcess(
        irreducible, 10.8 - irreducible, EXPONENTS * rng.uniform(0.9, 1.1, k), transfer, 50.0
    )


def final_loss(process: TransferPowerLawProcess, exposure: np.ndarray) -> float:
    return float(process.losses(exposure).mean())


def oracle_static(process: TransferPowerLawProcess) -> np.ndarray:
    k = process.n_domains
    result = minimize(
        lambda p: final_loss(process, TOTAL_STEPS * p),
        np.full(k, 1 / k),
        method="SLSQP",
        bounds=[(0.0, 1.0)] * k,
        constraints=[{"type": "eq", "fun": lambda p: p.sum() - 1}],
        options={"ftol": 1e-12, "maxiter": 500},
    )
    p = np.clip(result.x, 0.0, None)
    return p / p.sum()


def run_seed(seed: int, noise: float) -> tuple[dict[str, float], dict[str, Trajectory]]:
    process = slimpajama_like(np.random.default_rng(seed))
    uniform = np.full(process.n_domains, 1 / process.n_domains)
    scores = {
        "stratified": final_loss(process, TOTAL_STEPS * uniform),
        "static (token shares)": final_loss(process, TOTAL_STEPS * TOKEN_SHARES),
        "oracle static": final_loss(process, TOTAL_STEPS * oracle_static(process)),
    }
    reference = process.losses(TOTAL_STEPS * uniform)
    noise_rng = np.random.default_rng([seed, 1])
    _, doremi = run_session(
        "doremi",
        process,
        TOTAL_STEPS,
        {"update_interval": DOREMI_INTERVAL},
        reference_losses=reference,
        noise=noise,
        rng=noise_rng,
    )
    scores["doremi (proxy run)"] = final_loss(process, doremi.exposure)
    scores["doremi (retrain on average)"] = final_loss(process, TOTAL_STEPS * doremi.mixtures()[-1])
    _, aioli = run_session("aioli", process, TOTAL_STEPS, {"seed": seed}, noise=noise, rng=noise_rng)
    scores["aioli"] = final_loss(process, aioli.exposure)
    return scores, {"doremi": doremi, "aioli": aioli}


def plot(trajectories: dict[str, Trajectory], path: Path) -> None:
    doremi, aioli = trajectories["doremi"], trajectories["aioli"]
    exploit = [i for i, d in enumerate(aioli.directives) if d.phase == "exploit"]
    panels = [
        ("DoReMi proxy weights α_t", doremi.steps, doremi.weights()),
        ("DoReMi running average ᾱ (its output)", doremi.steps, doremi.mixtures()),
        ("Aioli mixture p_t (outside probes)", [aioli.steps[i] for i in exploit], aioli.mixtures()[exploit]),
    ]
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.5))
    for ax, (title, steps, weights) in zip(axes, panels, strict=True):
        for j, name in enumerate(DOMAINS):
            ax.plot(steps, weights[:, j], label=name, lw=1.2)
        ax.set_title(title)
        ax.set_xlabel("training step")
        ax.set_ylim(0, 1)
    axes[0].set_ylabel("domain weight")
    axes[1].legend(loc="upper right", fontsize=8, ncol=2)
    fig.suptitle("Simulated SlimPajama-like run, seed 0, noise-free losses")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument(
        "--noise",
        type=float,
        nargs="+",
        default=[0.0, 1e-3],
        help="sd of the Gaussian noise on each observed loss",
    )
    args = parser.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    report = {"total_steps": TOTAL_STEPS, "domains": list(DOMAINS), "seeds": args.seeds, "by_noise": {}}
    for noise in args.noise:
        per_seed = []
        for seed in range(args.seeds):
            scores, trajectories = run_seed(seed, noise)
            per_seed.append(scores)
            if seed == 0 and noise == args.noise[0]:
                plot(trajectories, RESULTS / "online_weights.png")
        methods = list(per_seed[0])
        table = {}
        print(f"\naverage final loss, 7 domains, {TOTAL_STEPS} steps, noise sd {noise:g}, {args.seeds} seeds")
        header = ("method", "median", "min", "max", "median Δ vs strat.", "beats strat.")
        print("{:30s} {:>8s} {:>8s} {:>8s} {:>19s} {:>12s}".format(*header))
        for m in methods:
            values = np.array([s[m] for s in per_seed])
            delta = values - np.array([s["stratified"] for s in per_seed])
            table[m] = {
                "median": float(np.median(values)),
                "min": float(values.min()),
                "max": float(values.max()),
                "median_delta_vs_stratified": float(np.median(delta)),
                "seeds_better_than_stratified": int((delta < 0).sum()),
                "per_seed": values.tolist(),
            }
            print(
                f"{m:30s} {np.median(values):8.4f} {values.min():8.4f} {values.max():8.4f} "
                f"{np.median(delta):+19.4f} {int((delta < 0).sum()):>7d}/{args.seeds}"
            )
        report["by_noise"][str(noise)] = table
    (RESULTS / "online_simulation.json").write_text(json.dumps(report, indent=2))
    print(f"\nwrote {RESULTS / 'online_simulation.json'} and {RESULTS / 'online_weights.png'}")


if __name__ == "__main__":
    main()
