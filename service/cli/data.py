"""``mixopt import``: load runs trained elsewhere from CSV into an experiment."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import click
import pandas as pd
from mixopt_client import MixoptClient

from runtables.columns import mixture_columns, require_filled, require_metric_values
from service.cli.errors import read_csv
from service.cli.options import name_values, url_option


def read_runs_table(mixtures: Path, metrics: Path | None, id_column: str, mixture_prefix: str,
                    metric_prefix: str) -> tuple[pd.DataFrame, dict[str, str], list[str]]:
    """Join mixture and metric tables on ``id_column``; return the table, the mixture file's mixture columns
    (each mapped to its domain name, see :func:`mixture_columns`) and the metric columns."""
    files = {path: read_csv(path) for path in (mixtures, metrics) if path is not None}
    for path, frame in files.items():
        if id_column not in frame.columns:
            raise click.UsageError(f"{path.name} has no id column {id_column!r} (see --id-column)")
    table = files[mixtures]
    mix_cols = mixture_columns(table.columns, mixture_prefix, exclude={id_column})
    if metrics is not None:
        try:
            table = table.merge(files[metrics], on=id_column, how="inner", validate="one_to_one")
        except pd.errors.MergeError as exc:
            raise click.UsageError(f"{mixtures.name} and {metrics.name} must have one row per {id_column!r}: "
                                   f"{exc}") from exc
    metric_cols = [c for c in table.columns if c.startswith(metric_prefix) and c not in mix_cols and c != id_column]
    where = mixtures.name if metrics is None else f"{mixtures.name} + {metrics.name}"
    require_filled(table, mix_cols, where)
    require_metric_values(table, metric_cols, where)
    return table, mix_cols, metric_cols


@click.command("import")
@url_option
@click.option("--experiment", "experiment_id", required=True, help="experiment id to import into")
@click.option("--mixtures", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True,
              help="CSV with one row per run and one column per domain weight")
@click.option("--metrics", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="CSV with metric columns, joined on --id-column (omit if --mixtures has them)")
@click.option("--id-column", default="index", show_default=True)
@click.option("--mixture-prefix", default="", help="prefix of mixture columns, stripped to get domain names")
@click.option("--metric-prefix", default="", help="prefix of metric columns (kept in the metric name)")
@click.option("--metric-rename", default=None, help="python format for metric names, e.g. 'loss/{}'")
@click.option("--fidelity", "fidelity", multiple=True, help="axis=value applied to every row (repeatable)")
@click.option("--cost", "cost", type=float, default=None, help="cost of every run")
def import_runs(url: str, experiment_id: str, mixtures: Path, metrics: Path | None, id_column: str,
                mixture_prefix: str, metric_prefix: str, metric_rename: str | None, fidelity: tuple[str, ...],
                cost: float | None) -> None:
    """Import completed runs from CSV (mixture columns + metric columns) through the batch endpoint.

    Rows are keyed by '<file stem>:<id>' as client_run_id, so importing the same file twice adds nothing.
    Mixtures rounded in the file (sums within 1e-2 of 1) are renormalised by the client.

    A blank metric cell is a metric the run did not report: it is left out of the run's metrics. A
    completed run must report every metric of the experiment's objective, so rows with a blank there are
    not imported; how many, and which metric they lack, is printed.
    """
    table, mix_cols, metric_cols = read_runs_table(mixtures, metrics, id_column, mixture_prefix, metric_prefix)
    fid = name_values(fidelity, "--fidelity")
    names = {c: metric_rename.format(c) if metric_rename else c for c in metric_cols}
    totals = {"created": 0, "existing": 0, "updated": 0}
    with MixoptClient(url) as client:
        objective = set(client.get_experiment(experiment_id)["objective"]["metrics"])
        runs: list[dict[str, Any]] = []
        lacking: Counter[str] = Counter()
        # Ids come from their own column: a row of ``iterrows`` is one dtype, so all-numeric rows turn 1 into 1.0.
        for run_id, (_, row) in zip(table[id_column], table.iterrows(), strict=True):
            gaps = [names[c] for c in metric_cols if pd.isna(row[c]) and names[c] in objective]
            lacking.update(gaps)
            if gaps:
                continue
            body: dict[str, Any] = {
                "client_run_id": f"{mixtures.stem}:{run_id}",
                "mixture": {domain: float(row[c]) for c, domain in mix_cols.items()},
                "metrics": {names[c]: float(row[c]) for c in metric_cols if not pd.isna(row[c])},
                "state": "completed",
            }
            if fid:
                body["fidelity"] = fid
            if cost is not None:
                body["cost"] = cost
            runs.append(body)
        with click.progressbar(length=len(runs), label="importing", file=click.get_text_stream("stderr")) as bar:
            for i in range(0, len(runs), 2000):
                part = client.import_runs(experiment_id, runs[i : i + 2000])
                for k in totals:
                    totals[k] += part[k]
                bar.update(len(runs[i : i + 2000]))
    click.echo(f"created {totals['created']}, already present {totals['existing']}, updated {totals['updated']}")
    if lacking:
        counts = ", ".join(f"{name} ({n} rows)" for name, n in sorted(lacking.items()))
        click.echo(f"not imported: {len(table) - len(runs)} rows with a blank objective metric: {counts}", err=True)
