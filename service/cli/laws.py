"""``mixopt laws``: score every mixing law on CSV files of proxy runs, and recommend a mixture.

Inputs are the same for both commands: a mixture table (every column but the id column is a domain
weight; with ``--mixture-prefix``, every column starting with it, named without it) and a metric table,
joined on the id column; optionally a test pair for held-out scores. ``--target`` is one metric column or
``mean`` (the mean of every metric column that is not a fidelity column). Fidelity columns (e.g. params,
tokens) come from the metric table; they are normalised to [0, 1] (log scale when they span more than
10x) before a law sees them.

Blank metric cells are gaps (see :mod:`runtables.columns`): ``evaluate`` fits each metric on the runs that
report it and scores the target on the runs that report all of its metrics, and says how many runs each
law saw; ``optimize`` fits the law on those complete runs.

Only ``click``, ``pandas``, ``mixing`` and the CLI's table helpers are used: no service needs to run.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import click
import numpy as np
import pandas as pd

from mixing.errors import InfeasibleConstraintsError
from mixing.evaluation import DIRECT, FROM_METRICS, EvaluationReport, evaluate_laws
from mixing.laws import DEFAULT_LAWS, LAWS
from mixing.methods.base import SearchContext
from mixing.methods.law import LawMethod
from mixing.problem import FidelitySpace, Observations, Problem
from mixing.simplex import SimplexConstraints
from runtables.columns import mixture_columns, require_filled, require_metric_values
from service.cli.errors import read_csv
from service.cli.options import name_values

CsvPath = click.Path(exists=True, dir_okay=False, path_type=Path)


@dataclass(frozen=True)
class RunTable:
    """Row-aligned arrays of one mixture/metric file pair."""

    mixtures: np.ndarray
    fidelities: np.ndarray
    metrics: np.ndarray
    domains: list[str]
    metric_names: list[str]

    def complete(self) -> RunTable:
        """The runs that report every metric (no gap in ``metrics``)."""
        rows = np.isfinite(self.metrics).all(axis=1)
        return RunTable(self.mixtures[rows], self.fidelities[rows], self.metrics[rows], self.domains,
                        self.metric_names)


def read_pair(
    mixtures: Path, metrics: Path, id_column: str, mixture_prefix: str, target: str, fidelity_columns: list[str]
) -> RunTable:
    """One mixture/metric file pair joined on ``id_column``; domains are the mixture columns without
    ``mixture_prefix`` (see :func:`mixture_columns`)."""
    mix = read_csv(mixtures)
    met = read_csv(metrics)
    for name, frame in (("mixture", mix), ("metric", met)):
        if id_column not in frame.columns:
            raise click.UsageError(f"the {name} file has no id column {id_column!r}")
    columns = mixture_columns(mix.columns, mixture_prefix, exclude={id_column})
    try:
        table = mix[[id_column, *columns]].merge(
            met, on=id_column, how="inner", validate="one_to_one", suffixes=("", "__metric")
        )
    except pd.errors.MergeError as exc:
        raise click.UsageError(f"{mixtures.name} and {metrics.name} must have one row per {id_column!r}") from exc
    if table.empty:
        raise click.UsageError(f"no rows of {mixtures.name} and {metrics.name} share an {id_column!r}")
    missing = [c for c in fidelity_columns if c not in met.columns]
    if missing:
        raise click.UsageError(f"fidelity columns not in the metric file: {', '.join(missing)}")
    metric_cols = [c for c in met.columns if c != id_column and c not in fidelity_columns]
    if target != "mean":
        if target not in metric_cols:
            raise click.UsageError(
                f"--target {target!r} is not a metric column; use one of {metric_cols} or mean"
            )
        metric_cols = [target]
    metric_data = table[[c + "__metric" if c in columns else c for c in metric_cols]]
    require_filled(table, [*columns, *fidelity_columns], f"{mixtures.name} + {metrics.name}")
    require_metric_values(metric_data.set_axis(metric_cols, axis=1), metric_cols, metrics.name)
    return RunTable(
        mixtures=table[list(columns)].to_numpy(dtype=np.float64),
        fidelities=table[fidelity_columns].to_numpy(dtype=np.float64),
        metrics=metric_data.to_numpy(dtype=np.float64),
        domains=list(columns.values()),
        metric_names=metric_cols,
    )


def fidelity_space(names: list[str], *tables: RunTable) -> FidelitySpace:
    """Axes spanning every observed value; the target is the largest (the scale one wants to predict)."""
    if not names:
        return FidelitySpace()
    values = np.concatenate([t.fidelities for t in tables])
    return FidelitySpace(
        names=tuple(names), lower=values.min(axis=0), upper=values.max(axis=0), target=values.max(axis=0)
    )


def _progress(message: str) -> None:
    click.echo(f"  {message}", err=True)


@dataclass(frozen=True)
class Inputs:
    """The options both commands take (see :func:`_common`): the run tables and how to score laws."""

    train_mixtures: Path
    train_metrics: Path
    test_mixtures: Path | None
    test_metrics: Path | None
    target: str
    id_column: str
    mixture_prefix: str
    fidelity_columns: str
    law_names: str
    folds: int
    seed: int
    jobs: int
    maximize: bool
    as_json: bool


def _evaluate(train: RunTable, test: RunTable | None, space: FidelitySpace, inputs: Inputs) -> EvaluationReport:
    laws, folds = _law_names(inputs.law_names), inputs.folds

    def norm(t: RunTable) -> np.ndarray | None:
        return space.normalise(t.fidelities) if space.n_axes else None

    weights = np.full(len(train.metric_names), 1.0 / len(train.metric_names))
    heldout = None if test is None else (test.mixtures, norm(test), test.metrics)
    click.echo(
        f"scoring {len(laws)} laws on {_runs(train)} ({folds}-fold)"
        + ("" if test is None else f", held out: {_runs(test)}"),
        err=True,
    )
    return evaluate_laws(
        laws,
        train.mixtures,
        norm(train),
        train.metrics,
        weights,
        goal_sign=-1.0 if inputs.maximize else 1.0,
        folds=folds,
        heldout=heldout,
        seed=inputs.seed,
        n_jobs=inputs.jobs,
        progress=_progress,
    )


def _runs(table: RunTable) -> str:
    """``"N runs"``, and how many of them report every metric when some do not."""
    n, complete = len(table.metrics), int(np.isfinite(table.metrics).all(axis=1).sum())
    return f"{n} runs" + ("" if complete == n else f" ({complete} with every metric)")


def _table(report: EvaluationReport) -> str:
    """A readable summary: Spearman / MAE / R^2 per law and route, cross-validated and held out."""

    def fmt(value: float | None, places: int) -> str:
        return "nan" if value is None else f"{value:.{places}f}"

    def cell(scores: dict[str, Any] | None) -> str:
        if not scores:
            return f"{'-':>22}"
        rho, mae, r2 = scores.get("spearman"), scores.get("mae"), scores.get("r2")
        return f"{fmt(rho, 4):>8} {fmt(mae, 4):>7} {fmt(r2, 3):>6}"

    data = report.to_dict()
    sets = sorted({s for law in data["laws"] for s in (law["heldout"] or {})})
    head = f"{'law':<18} {'runs':>5} {'route':<12} {'cv: rho / MAE / R2':>22}" + "".join(
        f" {s + ': rho / MAE / R2':>22}" for s in sets
    )
    lines = [head, "-" * len(head)]
    for law in data["laws"]:
        if law["skipped"]:
            lines.append(f"{law['name']:<18} {law['n_runs']:>5} skipped: {law['skipped']}")
            continue
        for route in (FROM_METRICS, DIRECT):
            if route not in law["cv"]:
                continue
            mark = "*" if law["name"] == report.selected and route == FROM_METRICS else " "
            seen = law["n_complete_runs"] if route == DIRECT else law["n_runs"]
            row = f"{law['name'] + mark:<18} {seen if seen is not None else '-':>5} {route:<12} "
            row += cell(law["cv"][route])
            row += "".join(f" {cell((law['heldout'] or {}).get(s, {}).get(route))}" for s in sets)
            lines.append(row)
    lines.append(f"selected: {report.selected}   (scored on {report.n_complete} complete runs, "
                 f"{data['duration_s']:.1f} s)")
    return "\n".join(lines)


def _common(fn: Any) -> Any:
    """The shared options, handed to the command as one :class:`Inputs`; its own options follow it."""
    names = [f.name for f in fields(Inputs)]

    @functools.wraps(fn)
    def command(**kwargs: Any) -> Any:
        return fn(Inputs(**{name: kwargs.pop(name) for name in names}), **kwargs)

    options = [
        click.option(
            "--train-mixtures", type=CsvPath, required=True, help="CSV: id column + one column per domain"
        ),
        click.option("--train-metrics", type=CsvPath, required=True, help="CSV: id column + metric columns"),
        click.option("--test-mixtures", type=CsvPath, default=None, help="held-out mixtures (optional)"),
        click.option("--test-metrics", type=CsvPath, default=None, help="held-out metrics (optional)"),
        click.option("--target", required=True, help="a metric column, or 'mean' of all metric columns"),
        click.option("--id-column", default="index", show_default=True, help="column the files join on"),
        click.option(
            "--mixture-prefix",
            default="",
            help="only columns starting with this are domains, named without it (e.g. train_the_pile_)",
        ),
        click.option(
            "--fidelity-columns", default="", help="comma-separated fidelity columns of the metric file"
        ),
        click.option("--laws", "law_names", default="", help=f"comma-separated subset of: {', '.join(LAWS)}"),
        click.option("--folds", default=5, show_default=True, type=click.IntRange(2, 50)),
        click.option("--seed", default=0, show_default=True, type=int),
        click.option("--jobs", default=-1, show_default=True, type=int, help="processes (-1: all cores)"),
        click.option("--maximize", is_flag=True, help="the target is to be maximised (e.g. accuracy)"),
        click.option("--json", "as_json", is_flag=True, help="print JSON instead of a table"),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _load(inputs: Inputs) -> tuple[RunTable, RunTable | None, FidelitySpace]:
    if (inputs.test_mixtures is None) != (inputs.test_metrics is None):
        raise click.UsageError("give both --test-mixtures and --test-metrics, or neither")
    fid_cols = [c.strip() for c in inputs.fidelity_columns.split(",") if c.strip()]
    train = read_pair(inputs.train_mixtures, inputs.train_metrics, inputs.id_column, inputs.mixture_prefix,
                      inputs.target, fid_cols)
    test = None
    if inputs.test_mixtures is not None and inputs.test_metrics is not None:
        test = read_pair(inputs.test_mixtures, inputs.test_metrics, inputs.id_column, inputs.mixture_prefix,
                         inputs.target, fid_cols)
        if test.domains != train.domains:
            raise click.UsageError("train and test mixture files must have the same domain columns")
    space = fidelity_space(fid_cols, train, *([test] if test is not None else []))
    return train, test, space


def _law_names(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()] or list(DEFAULT_LAWS)
    unknown = [n for n in names if n not in LAWS]
    if unknown:
        raise click.UsageError(f"unknown laws: {', '.join(unknown)}; known: {', '.join(LAWS)}")
    return names


@click.group("laws")
def laws() -> None:
    """Fit and score mixing laws on proxy-run tables; recommend a mixture."""


@laws.command("evaluate")
@_common
def evaluate(inputs: Inputs) -> None:
    """Cross-validated (and held-out) Spearman, MAE and R^2 of every law, and the law it would select."""
    train, test, space = _load(inputs)
    report = _evaluate(train, test, space, inputs)
    if inputs.as_json:
        out = {
            "target": inputs.target,
            "metrics": train.metric_names,
            "n_train": len(train.mixtures),
            "n_test": 0 if test is None else len(test.mixtures),
            **report.to_dict(),
        }
        click.echo(json.dumps(out, indent=2))
    else:
        click.echo(_table(report))


@laws.command("optimize")
@_common
@click.option("--law", "law_name", default=None, help="use this law instead of the selected one")
@click.option("--min-weight", "min_weights", multiple=True, help="DOMAIN=VALUE lower bound (repeatable)")
@click.option("--max-weight", "max_weights", multiple=True, help="DOMAIN=VALUE upper bound (repeatable)")
@click.option("--candidates", "n_candidates", default=100_000, show_default=True, type=int)
def optimize(
    inputs: Inputs,
    law_name: str | None,
    min_weights: tuple[str, ...],
    max_weights: tuple[str, ...],
    n_candidates: int,
) -> None:
    """The recommended mixture: the selected (or given) law, fitted on the training runs, optimised.

    The search is centred on the mean training mixture (proxy designs are drawn around the prior).
    Test files, when given, only inform the selection's held-out scores.
    """
    train, test, space = _load(inputs)
    constraints = _constraints(min_weights, max_weights, train.domains)
    complete = train.complete()
    if len(complete.metrics) < len(train.metrics):
        click.echo(f"fitting on the {len(complete.metrics)} of {_runs(train)} that report every metric", err=True)
    target, maximize = inputs.target, inputs.maximize
    hints: dict[str, Any] = {}
    if law_name is None:
        report = _evaluate(train, test, space, inputs)
        hints = report.hints()
    elif law_name not in LAWS:
        raise click.UsageError(f"unknown law {law_name!r}; known: {', '.join(LAWS)}")
    else:
        hints = {"selected_law": law_name}
    d = len(train.domains)
    problem = Problem(
        domains=tuple(train.domains),
        constraints=constraints,
        metric_names=tuple(train.metric_names),
        metric_weights=np.full(len(train.metric_names), 1.0 / len(train.metric_names)),
        goal="maximize" if maximize else "minimize",
        prior=train.mixtures.mean(axis=0),
        fidelity=space,
    )
    n = len(complete.mixtures)
    obs = Observations(
        complete.mixtures / complete.mixtures.sum(axis=1, keepdims=True),
        complete.fidelities.reshape(n, -1),
        complete.metrics,
        np.zeros(n),
        np.zeros((0, d)),
        np.zeros((0, space.n_axes)),
    )
    click.echo(f"optimising {hints.get('selected_law')} over {d} domains", err=True)
    rec = LawMethod(n_candidates=n_candidates).recommend(
        SearchContext(problem, obs, np.random.default_rng(inputs.seed), hints)
    )
    out = {
        "target": target,
        "law": rec.details["law"],
        "mixture": dict(zip(train.domains, rec.mixture.tolist(), strict=True)),
        "predicted": rec.predicted.value,
        "lower": rec.predicted.lower,
        "upper": rec.predicted.upper,
        "fidelity": dict(zip(space.names, rec.fidelity.tolist(), strict=True)),
        "n_runs": rec.n_runs,
        "details": rec.details,
    }
    if inputs.as_json:
        click.echo(json.dumps(out, indent=2, default=float))
        return
    click.echo(
        f"law: {out['law']}   predicted {target}: {rec.predicted.value:.4f} "
        f"(90%: {rec.predicted.lower:.4f} .. {rec.predicted.upper:.4f})"
    )
    for domain, weight in sorted(out["mixture"].items(), key=lambda kv: -kv[1]):
        if weight >= 5e-4:
            click.echo(f"  {domain:<40} {weight:.4f}")


def _constraints(
    min_weights: tuple[str, ...], max_weights: tuple[str, ...], domains: list[str]
) -> SimplexConstraints:
    """The weight bounds, checked against the domains before anything is fitted."""
    bounds = []
    for items, option, default in ((min_weights, "--min-weight", 0.0), (max_weights, "--max-weight", 1.0)):
        out = np.full(len(domains), default)
        for name, value in name_values(items, option).items():
            if name not in domains:
                raise click.BadParameter(_not_a_domain(name, domains), param_hint=option)
            out[domains.index(name)] = value
        bounds.append(out)
    try:
        return SimplexConstraints(*bounds)
    except InfeasibleConstraintsError as exc:
        raise click.UsageError(f"weight bounds: {exc}") from exc


def _not_a_domain(name: str, domains: list[str]) -> str:
    """Why ``name`` is refused, with the prefix to strip when one domain column ends with it."""
    near = [d for d in domains if d.endswith(name)]
    hint = (
        f"; did you mean {near[0]!r}? (--mixture-prefix {near[0].removesuffix(name)!r} strips the shared prefix)"
        if len(near) == 1
        else f"; the domains are {', '.join(domains)}"
    )
    return f"{name!r} is not a domain{hint}"
