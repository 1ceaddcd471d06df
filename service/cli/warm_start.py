"""``mixopt experiments transfer`` and ``mixopt experiments transferred``: warm starts from the shell.

A team reusing last month's proxy runs should not need curl for it: ``transfer`` brings a source
experiment's completed runs in (the server makes it idempotent, so running it twice adds nothing) and
``transferred`` lists what came in, by source.
"""

from __future__ import annotations

from collections import Counter

import click
from mixopt_client import MixoptClient

from service.cli.options import json_option, print_json, url_option


@click.command("transfer")
@click.argument("experiment_id")
@click.argument("source_experiment_id")
@click.option("--weight", type=click.FloatRange(min=0.0, min_open=True), default=1.0, show_default=True,
              help="how much the source counts (a larger weight shrinks its map less)")
@url_option
@json_option
def transfer(experiment_id: str, source_experiment_id: str, weight: float, url: str, as_json: bool) -> None:
    """Warm-start EXPERIMENT_ID from the completed runs of SOURCE_EXPERIMENT_ID (same project)."""
    with MixoptClient(url) as client:
        result = client.transfer(experiment_id, source_experiment_id, weight=weight)
    if as_json:
        print_json(result)
        return
    skipped = ", ".join(f"{n} {reason.replace('_', ' ')}" for reason, n in result["skipped"].items() if n)
    click.echo(f"{result['transferred']} runs brought in from {source_experiment_id} (weight {result['weight']:g})"
               + (f"; skipped: {skipped}" if skipped else ""))


@click.command("transferred")
@click.argument("experiment_id")
@click.option("--source", "source_experiment_id", default=None, help="only the runs of this source experiment")
@url_option
@json_option
def transferred(experiment_id: str, source_experiment_id: str | None, url: str, as_json: bool) -> None:
    """The runs brought into EXPERIMENT_ID from other experiments: a line per source, or every run with --json."""
    with MixoptClient(url) as client:
        runs = client.list_transferred_runs(experiment_id, source_experiment_id)
    if as_json:
        print_json(runs)
        return
    if not runs:
        click.echo("no transferred runs")
        return
    by_source = Counter((r["source_experiment_id"], r["task"], r["weight"]) for r in runs)
    for (source, task, weight), n in sorted(by_source.items()):
        click.echo(f"{source}  {n} runs  weight {weight:g}  {task.replace('_', ' ')}")
