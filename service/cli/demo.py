"""``mixopt demo``: a complete search loop over HTTP, with the RegMix runs standing in for the trainer.

The "trainer" answers each suggested mixture with the losses RegMix measured for that mixture, so the
suggestions are drawn from the pool of mixtures RegMix trained (the ``candidates`` feature of the API).
"""

from __future__ import annotations

import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import click
import httpx
import numpy as np
from mixopt_client import MixoptClient

from runtables.regmix import domain_specs, load_split
from service.cli.progress import elapsed
from service.settings import Settings, get_settings


@click.command()
@click.option("--url", default="http://127.0.0.1:8000", show_default=True,
              help="service to drive; if nothing answers there, an embedded one is started")
@click.option("--data", "data_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="RegMix data folder (default ../shared/data/regmix or MIXOPT_REGMIX_DATA)")
@click.option("--objective", type=click.Choice(["pile_cc", "mean"]), default="pile_cc", show_default=True)
@click.option("--rounds", default=12, show_default=True, help="suggest/train/report rounds")
@click.option("--batch", default=16, show_default=True, help="runs per round")
@click.option("--method", default="auto", show_default=True)
@click.option("--seed", default=0, show_default=True)
def demo(url: str, data_dir: Path | None, objective: str, rounds: int, batch: int, method: str, seed: int) -> None:
    """Run a mixture search against the service, replaying RegMix's 1M-parameter runs as the trainer."""
    data_dir = data_dir or get_settings().regmix_data
    train = load_split(data_dir, "train_1m")
    domains = list(train.mixtures.columns)
    metrics = ["loss/pile_cc"] if objective == "pile_cc" else list(train.losses.columns)
    pool = train.mixtures.to_numpy()
    pool = pool / pool.sum(axis=1, keepdims=True)
    with ExitStack() as stack:
        if not _answers(url):
            from service.api.embedded import embedded_server

            tmp = stack.enter_context(tempfile.TemporaryDirectory())
            url = stack.enter_context(embedded_server(Settings(database_url=f"sqlite:///{tmp}/demo.db")))
            click.echo(f"no service at the given URL; started an embedded one at {url}", err=True)
        client = stack.enter_context(MixoptClient(url))
        exp = client.create_experiment({
            "name": f"regmix-demo-{int(time.time())}-{seed}",
            "domains": domain_specs(domains),
            "objective": {"metrics": metrics, "aggregate": "single" if len(metrics) == 1 else "mean"},
            "fidelities": [{"name": "params", "min": 1e6, "max": 1e6, "target": 1e6}],
        })
        click.echo(f"experiment {exp['id']} ({len(domains)} domains, objective {objective})")
        candidates = [{"mixture": dict(zip(domains, row.tolist(), strict=True))} for row in pool]
        objective_of = train.losses[metrics].mean(axis=1).to_numpy()
        pool_best = float(objective_of.min())
        best_so_far, found_at = np.inf, None
        click.echo(f"{'round':<8} {'runs':>5} {'method':<8} {'best in round':>14} {'best so far':>12} {'time':>6}")
        for r in range(1, rounds + 1):
            t0 = time.perf_counter()
            sugg = client.suggest(exp["id"], batch, method=method, candidates=candidates)
            best = np.inf
            for s in sugg:
                row = int(np.argmin(np.abs(pool - np.array([s.mixture[d] for d in domains])).sum(axis=1)))
                losses = train.losses.iloc[row]
                client.report(exp["id"], run_id=s.id, metrics={m: float(losses[m]) for m in metrics},
                              cost=1.0, client_run_id=f"demo-{exp['id']}-{s.id}")
                best = min(best, float(objective_of[row]))
            best_so_far = min(best_so_far, best)
            if found_at is None and best_so_far <= pool_best:
                found_at = r
            click.echo(f"{f'{r}/{rounds}':<8} {len(sugg):>5} {sugg[0].method if sugg else '-':<8} {best:>14.4f} "
                       f"{best_so_far:>12.4f} {time.perf_counter() - t0:>5.1f}s"
                       + ("  <- the pool's best" if found_at == r else ""))
        click.echo("(each round's runs are new mixtures, so its best can be worse than an earlier round's; "
                   "the best so far never is)")
        with elapsed("computing the recommendation"):
            rec = client.recommendation(exp["id"])
        click.echo(f"\nrecommended mixture ({rec['method']}, from {rec['n_runs']} runs), predicted "
                   f"{objective} loss {rec['predicted']['value']:.4f}"
                   + (f" [{rec['predicted']['lower']:.4f}, {rec['predicted']['upper']:.4f}]"
                      if rec["predicted"].get("lower") is not None else ""))
        for name, w in sorted(rec["mixture"].items(), key=lambda kv: -kv[1]):
            if w >= 0.005:
                click.echo(f"  {name:<20} {w:6.3f} {'#' * int(round(w * 60))}")
        found = (f"found in round {found_at} (within the first {found_at * batch} runs)" if found_at is not None
                 else f"not found; the search's best is {best_so_far - pool_best:.4f} above it")
        click.echo(f"best of all {len(pool)} RegMix runs: {pool_best:.4f}, {found}; "
                   f"runs used by the search: {rounds * batch}")


def _answers(url: str) -> bool:
    try:
        return httpx.get(f"{url.rstrip('/')}/healthz", timeout=2).status_code == 200
    except httpx.TransportError:
        return False
