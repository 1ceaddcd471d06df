"""``mixopt pareto`` and ``mixopt cmr``: the trade-off front and the critical mixture ratio from the shell.

Both are computed by the service on the current runs (nothing is stored); the text form is what a person
reads in a terminal, ``--json`` the service's answer for scripts.
"""

from __future__ import annotations

from typing import Any

import click
from mixopt_client import MixoptClient

from service.cli.options import json_option, print_json, url_option
from service.cli.progress import elapsed

#: Front points printed in the text form (evenly spread along the first axis when there are more).
SHOWN_POINTS = 12


@click.command()
@click.argument("experiment_id")
@click.option("--method", default="law", show_default=True, help="the model that predicts the front: law, regmix or bo")
@click.option("--candidates", type=click.IntRange(min=1), default=None,
              help="feasible mixtures sampled to predict over")
@click.option("--seed", type=int, default=None)
@url_option
@json_option
def pareto(experiment_id: str, method: str, candidates: int | None, seed: int | None, url: str,
           as_json: bool) -> None:
    """The predicted trade-off front at the target: each point's values with 90% intervals and P(feasible)."""
    with MixoptClient(url) as client, elapsed("computing the front"):
        front = client.pareto(experiment_id, method=method, candidates=candidates, seed=seed)
    if as_json:
        print_json(front)
        return
    axes = [_axis(a) for a in front["axes"]]
    on_front = sum(o["on_front"] for o in front["observed"])
    click.echo(f"{front['method']}, from {front['n_runs']} runs over {front['n_candidates']} candidates: "
               f"{len(front['front'])} predicted front points; {on_front} of {len(front['observed'])} runs on "
               "the observed front")
    click.echo("axes: " + ", ".join(axes))
    for point in _spread(front["front"], SHOWN_POINTS):
        values = "  ".join(f"{v:.4f} [{lo:.4f}, {hi:.4f}]"
                           for v, lo, hi in zip(point["values"], point["lower"], point["upper"], strict=True))
        top = max(point["mixture"].items(), key=lambda kv: kv[1])
        click.echo(f"  {values}  P(feasible) {point['feasibility']:.2f}  largest {top[0]}={top[1]:.3f}")


@click.command()
@click.argument("experiment_id")
@url_option
@json_option
def cmr(experiment_id: str, url: str, as_json: bool) -> None:
    """The critical mixture ratio of a continual-pretraining experiment, with its interval and validation."""
    with MixoptClient(url) as client, elapsed("fitting the CMR law"):
        answer = client.cmr(experiment_id)
    if as_json:
        print_json(answer)
        return
    interval = answer["interval"]
    click.echo(f"CMR {answer['cmr']:.4f} ({answer['level']:.0%}: {interval['lower']:.4f} .. {interval['upper']:.4f}) "
               f"at {answer['target_tokens']:.3g} tokens, from {answer['n_runs']} runs"
               + ("" if answer["feasible"] else "; no ratio keeps the general loss within the tolerance"))
    for group in ("general", "domain"):
        loss = answer[f"{group}_loss"]
        click.echo(f"{group} loss there: {loss['value']:.4f} ({loss['lower']:.4f} .. {loss['upper']:.4f})")
    heldout = answer["validation"]["heldout_mae"]
    if heldout is not None:
        click.echo(f"held out at {answer['validation']['heldout_tokens']:.3g} tokens: MAE general "
                   f"{heldout['general']:.4f}, domain {heldout['domain']:.4f}")


def _axis(axis: dict[str, Any]) -> str:
    """``loss/web (min, bound 3.0300)``."""
    bound = "" if axis["bound"] is None else f", bound {axis['bound']:.4f}"
    return f"{axis['name']} ({axis['goal'][:3]}{bound})"


def _spread(points: list[dict[str, Any]], k: int) -> list[dict[str, Any]]:
    """At most ``k`` of ``points``, evenly spaced in their order (the front is sorted by its first axis)."""
    if len(points) <= k:
        return points
    step = (len(points) - 1) / (k - 1)
    return [points[round(i * step)] for i in range(k)]
