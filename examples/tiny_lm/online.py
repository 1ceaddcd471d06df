"""Online mixing: one training run that asks a DoReMi or Aioli session for its weights as it goes.

    python -m examples.tiny_lm.online --embedded --method aioli --size xs --steps 800

The loop is the directive protocol of ``/v1/experiments/{id}/online-sessions``: train ``train_steps``
steps on ``directive.weights``, post the per-domain validation losses at the step reached, get the next
directive (an Aioli probe, its exploit phase, or a DoReMi update). Afterwards the run is compared with
static training for the same steps on the uniform mixture and on the session's answer
(``directive.mixture``: DoReMi's average weights, Aioli's last mixture). DoReMi needs a reference model's
per-domain losses: that is the uniform run, trained first.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from mixopt_client import MixoptClient

from examples.tiny_lm import connection
from examples.tiny_lm.corpus import SOURCES, Domain, load_corpus, natural_shares
from examples.tiny_lm.model import SIZES
from examples.tiny_lm.plots import plot_online
from examples.tiny_lm.train import DeviceCorpus, TrainConfig, Trainer, device_name, pick_device, train_run

Log = Callable[[str], None]


def _print(line: str) -> None:
    print(line, flush=True)


def _mean(losses: dict[str, float]) -> float:
    return sum(losses.values()) / len(losses)


def _mix(m: dict[str, float]) -> str:
    return " ".join(f"{k}={v:.2f}" for k, v in m.items())


def session_path(exp_id: str, session_id: str = "") -> str:
    return f"/v1/experiments/{exp_id}/online-sessions" + (f"/{session_id}" if session_id else "")


def train_online(
    client: MixoptClient,
    exp_id: str,
    session: dict[str, Any],
    corpus: DeviceCorpus,
    cfg: TrainConfig,
    total_steps: int,
    observe_windows: int,
    log: Log = _print,
    observed: Callable[[dict[str, float]], dict[str, float]] | None = None,
) -> tuple[Trainer, list[int]]:
    """Follow the session's directives for ``total_steps`` steps; returns the trainer and the steps posted.

    ``observed`` turns the measured per-domain losses into the losses posted (default: as measured).
    """
    trainer = Trainer(corpus, cfg, total_steps)
    directive = session["directive"]
    posted: list[int] = []
    while trainer.step < total_steps:
        # The first observation may come at step 0 (Aioli's measure phase without warm-up); after that
        # every observation must be at a later step than the last.
        steps = directive["train_steps"] if not posted else max(1, directive["train_steps"])
        steps = min(steps, total_steps - trainer.step)
        trainer.train(steps, directive["weights"])
        losses = trainer.evaluate(observe_windows)
        posted_losses = observed(losses) if observed is not None else losses
        answer = client.request(
            "POST",
            f"{session_path(exp_id, session['id'])}/observations",
            json={"step": trainer.step, "losses": posted_losses, "split": "validation"},
        ).json()
        posted.append(trainer.step)
        directive = answer["directive"]
        probe = directive.get("probe")
        log(
            f"  step {trainer.step:>6}/{total_steps}  loss {_mean(losses):.4f}  next: {directive['phase']:<7}"
            + (f" probe {probe['domain']} ({probe['index'] + 1}/{probe['count']})" if probe else "")
            + f"  weights {_mix(directive['weights'])}"
        )
    return trainer, posted


def run(
    client: MixoptClient,
    domains: Sequence[Domain],
    cfg: TrainConfig,
    method: str,
    total_steps: int,
    hyperparameters: dict[str, Any],
    device: Any,
    out: Path,
    observe_windows: int = 16,
    baselines: bool = True,
    log: Log = _print,
) -> dict[str, Any]:
    """Create an experiment and a session, train online, compare with static runs; returns the results."""
    corpus = DeviceCorpus(domains, device, cfg.context, cfg.eval_windows)
    names = corpus.names
    uniform = {n: 1 / len(names) for n in names}
    static_cfg = replace(cfg, tokens=total_steps * cfg.batch * cfg.context)
    exp = client.create_experiment(
        {
            "name": f"tiny-lm-online-{method}-{int(time.time())}",
            "domains": [{"name": n, "prior": p} for n, p in natural_shares(list(domains)).items()],
            "objective": {"metrics": [f"loss/{n}" for n in names], "aggregate": "mean"},
            "metadata": {"example": "tiny_lm.online", "device": device_name(device), "size": cfg.size},
        }
    )
    reference = None
    if method == "doremi" or baselines:
        log(
            f"static run on the uniform mixture ({total_steps} steps)"
            + (", DoReMi's reference model" if method == "doremi" else "")
        )
        reference = train_run(corpus, uniform, static_cfg)
    body: dict[str, Any] = {
        "method": method,
        "hyperparameters": hyperparameters,
        "initial_weights": uniform,
        "client_session_id": f"tiny-lm-{exp['id']}",
    }
    if method == "doremi":
        assert reference is not None
        body["reference_losses"] = reference.losses
    session = client.request("POST", session_path(exp["id"]), json=body).json()
    log(f"experiment {exp['id']}, {method} session {session['id']} on {device_name(device)}, size {cfg.size}")
    t0 = time.perf_counter()
    trainer, posted = train_online(client, exp["id"], session, corpus, cfg, total_steps, observe_windows, log)
    online_losses = trainer.evaluate()
    online_cost = time.perf_counter() - t0
    detail = client.request("GET", session_path(exp["id"], session["id"])).json()
    answer = detail["directive"]["mixture"]
    result: dict[str, Any] = {
        "experiment_id": exp["id"],
        "session_id": session["id"],
        "method": method,
        "device": device_name(device),
        "domains": names,
        "size": cfg.size,
        "steps": total_steps,
        "tokens": static_cfg.tokens,
        "hyperparameters": detail["hyperparameters"],
        "posted_steps": posted,
        "trajectory": detail["trajectory"],
        "final_mixture": answer,
        "runs": {
            "online": {"losses": online_losses, "objective": _mean(online_losses), "cost_s": online_cost}
        },
    }
    if reference is not None:
        result["runs"]["uniform"] = {
            "losses": reference.losses,
            "objective": reference.mean_loss,
            "cost_s": reference.cost_s,
        }
    if baselines:
        log(f"static run on the session's final mixture {_mix(answer)}")
        r = train_run(corpus, answer, static_cfg)
        result["runs"]["session mixture"] = {"losses": r.losses, "objective": r.mean_loss, "cost_s": r.cost_s}
    log(f"\n{total_steps} steps at size {cfg.size}:")
    log(f"  {'run':<16} " + " ".join(f"{n:>9}" for n in names) + f" {'mean':>9}")
    for label, row in result["runs"].items():
        log(
            f"  {label:<16} "
            + " ".join(f"{row['losses'][n]:9.4f}" for n in names)
            + f" {row['objective']:9.4f}"
        )
    out.mkdir(parents=True, exist_ok=True)
    (out / f"online-{method}.json").write_text(json.dumps(result, indent=1))
    plot_online(result, out / f"online-{method}.png")
    log(f"wrote {out / f'online-{method}.json'} and {out / f'online-{method}.png'}")
    return result


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m examples.tiny_lm.online",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    connection.add_arguments(p)
    p.add_argument("--method", choices=["aioli", "doremi"], default="aioli")
    p.add_argument(
        "--hp",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="session hyperparameter, e.g. --hp probe_steps=10 --hp exploit_steps=60 (repeatable)",
    )
    p.add_argument(
        "--domains", default=None, help=f"comma-separated, default all found of {','.join(SOURCES)}"
    )
    p.add_argument("--cap-bytes", type=int, default=2_000_000)
    p.add_argument("--size", default="xs", choices=list(SIZES))
    p.add_argument("--steps", type=int, default=800, help="training steps of the online run")
    p.add_argument("--context", type=int, default=128)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument(
        "--observe-windows", type=int, default=16, help="validation windows per domain per observation"
    )
    p.add_argument("--no-baselines", action="store_true", help="skip the static comparison runs")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--out", type=Path, default=Path("tiny-lm-results"))
    return p.parse_args(argv)


def _hyperparameter(item: str) -> tuple[str, Any]:
    name, _, value = item.partition("=")
    return name, json.loads(value)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    device = pick_device(args.threads)
    domains = load_corpus(args.domains.split(",") if args.domains else None, args.cap_bytes, log=_print)
    cfg = TrainConfig(
        args.size, args.steps * args.batch * args.context, context=args.context, batch=args.batch
    )
    with connection.connect(args.url, args.token) as client:
        return run(
            client,
            domains,
            cfg,
            args.method,
            args.steps,
            dict(map(_hyperparameter, args.hp)),
            device,
            args.out,
            args.observe_windows,
            not args.no_baselines,
        )


if __name__ == "__main__":
    main()
