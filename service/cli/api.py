"""Everyday work against a running service: ``mixopt experiments create/list/show``, ``mixopt suggest``,
``mixopt report`` and ``mixopt recommend``, through the Python client.

Each prints a short human summary, or with ``--json`` the service's answer as JSON (for scripts and
``jq``). ``experiments create`` prints just the new id, so ``EXP=$(mixopt experiments create --from s.json)``
works.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import click
from mixopt_client import MixoptClient

from service.cli.errors import CliError
from service.cli.options import json_option, name_values, print_json, url_option
from service.cli.progress import elapsed
from service.store.models import ExperimentState, RunState

#: The states a report may give a run (a run becomes 'suggested' only by being suggested).
REPORTED_STATES = [state.value for state in RunState if state is not RunState.suggested]


def _weights(mixture: dict[str, float]) -> str:
    """``pile_cc=0.400 github=0.300 ...``, largest first."""
    return " ".join(f"{name}={weight:.3f}" for name, weight in sorted(mixture.items(), key=lambda kv: -kv[1]))


def _read_spec(path: Path) -> dict[str, Any]:
    text = click.get_text_stream("stdin").read() if str(path) == "-" else path.read_text(encoding="utf-8")
    try:
        spec = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CliError(f"{path}: not JSON ({exc})") from exc
    if not isinstance(spec, dict):
        raise CliError(f"{path}: an experiment spec is a JSON object, not {type(spec).__name__}")
    return spec


@click.group()
def experiments() -> None:
    """Create, list and show experiments; warm-start one from another's runs."""


@experiments.command("create")
@click.option("--from", "spec_path", required=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path, allow_dash=True),
              help="JSON body of POST /v1/experiments (name, domains, objective, fidelities, ...); '-' for stdin")
@click.option("--name", default=None, help="use this name instead of the spec's")
@url_option
@json_option
def create_experiment(spec_path: Path, name: str | None, url: str, as_json: bool) -> None:
    """Create an experiment from a JSON spec; print its id (or, with --json, the stored experiment)."""
    spec = _read_spec(spec_path)
    if name is not None:
        spec["name"] = name
    with MixoptClient(url) as client:
        exp = client.create_experiment(spec)
    if as_json:
        print_json(exp)
        return
    click.echo(f"created experiment {exp['name']!r} with {len(exp['domains'])} domains", err=True)
    click.echo(exp["id"])


@experiments.command("list")
@click.option("--state", type=click.Choice([state.value for state in ExperimentState]), default=None,
              help="only experiments in this state")
@click.option("--q", "query", default=None, help="only experiments whose name contains this")
@url_option
@json_option
def list_experiments(state: str | None, query: str | None, url: str, as_json: bool) -> None:
    """List experiments (every page): id, name, state, runs completed and pending."""
    with MixoptClient(url) as client:
        rows = list(client.iter_experiments(state=state, q=query))
    if as_json:
        print_json(rows)
        return
    table = [("id", "name", "state", "completed", "pending", "created")] + [
        (e["id"], e["name"], e["state"], str(e["run_counts"].get("completed", 0)),
         str(e["run_counts"].get("suggested", 0) + e["run_counts"].get("running", 0)), e["created_at"][:16])
        for e in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    for row in table:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


@experiments.command("show")
@click.argument("experiment_id")
@url_option
@json_option
def show_experiment(experiment_id: str, url: str, as_json: bool) -> None:
    """One experiment: its domains, objective, fidelities and runs by state."""
    with MixoptClient(url) as client:
        exp = client.get_experiment(experiment_id)
    if as_json:
        print_json(exp)
        return
    objective = exp["objective"]
    click.echo(f"{exp['name']} ({exp['id']}), {exp['state']}, created {exp['created_at'][:16]}")
    click.echo(f"objective: {objective['goal']} {objective['aggregate']} of {', '.join(objective['metrics'])}")
    for axis in exp["fidelities"]:
        click.echo(f"fidelity {axis['name']}: {axis['min']:g} .. {axis['max']:g}, target {axis['target']:g}")
    for level in exp["search"]["level_costs"]:
        at = ", ".join(f"{name}={value:g}" for name, value in level["fidelity"].items())
        click.echo(f"declared cost of a run at {at}: {level['cost']:g}")
    click.echo("domains: " + ", ".join(
        d["name"] + ("" if d["prior"] is None else f" (prior {d['prior']:g})") for d in exp["domains"]))
    click.echo("runs: " + (", ".join(f"{n} {state}" for state, n in exp["run_counts"].items() if n) or "none yet"))


@click.command()
@click.argument("experiment_id")
@click.option("--count", default=1, show_default=True, type=click.IntRange(min=1), help="mixtures to train")
@click.option("--method", default=None, help="auto (the experiment's default), design, random, regmix, law, bo, ...")
@click.option("--fidelity", "fidelity", multiple=True, help="AXIS=VALUE to train at (repeatable)")
@click.option("--client-id", default=None,
              help="this trainer's name: asking again returns its still-pending runs instead of new ones")
@click.option("--seed", type=int, default=None)
@url_option
@json_option
def suggest(experiment_id: str, count: int, method: str | None, fidelity: tuple[str, ...], client_id: str | None,
            seed: int | None, url: str, as_json: bool) -> None:
    """Ask for mixtures to train; each comes back as a run in state 'suggested' (report it by its id)."""
    with MixoptClient(url) as client:
        runs = client.suggest(experiment_id, count, method=method, fidelity=name_values(fidelity, "--fidelity"),
                              client_id=client_id, seed=seed)
    if as_json:
        print_json([asdict(run) for run in runs])
        return
    for run in runs:
        at = " ".join(f"{axis}={value:g}" for axis, value in run.fidelity.items())
        click.echo(f"{run.id}  {run.method or '-'}  {at + '  ' if at else ''}{_weights(run.mixture)}")


@click.command()
@click.argument("experiment_id")
@click.option("--metric", "metrics", multiple=True, required=True, help="NAME=VALUE measured (repeatable)")
@click.option("--run-id", default=None, help="the suggested run this reports")
@click.option("--mixture", "mixture", multiple=True, help="DOMAIN=WEIGHT of a run trained elsewhere (repeatable)")
@click.option("--fidelity", "fidelity", multiple=True, help="AXIS=VALUE the run was trained at (repeatable)")
@click.option("--cost", type=float, default=None, help="what the run cost (e.g. GPU hours)")
@click.option("--state", type=click.Choice(REPORTED_STATES), default=RunState.completed.value, show_default=True)
@click.option("--client-run-id", default=None,
              help="your id for the run: reporting it again returns the stored run instead of adding one")
@url_option
@json_option
def report(experiment_id: str, metrics: tuple[str, ...], run_id: str | None, mixture: tuple[str, ...],
           fidelity: tuple[str, ...], cost: float | None, state: str, client_run_id: str | None, url: str,
           as_json: bool) -> None:
    """Report a run's metrics: a suggested one (--run-id), or one trained elsewhere (--mixture)."""
    if (run_id is None) == (not mixture):
        raise click.UsageError("give either --run-id (a suggested run) or --mixture (a run trained elsewhere)")
    with MixoptClient(url) as client:
        run = client.report(experiment_id, metrics=name_values(metrics, "--metric"), run_id=run_id,
                            mixture=name_values(mixture, "--mixture") if mixture else None,
                            fidelity=name_values(fidelity, "--fidelity") or None, cost=cost, state=state,
                            client_run_id=client_run_id)
    if as_json:
        print_json(run)
        return
    objective = "" if run.get("objective") is None else f", objective {run['objective']:.4f}"
    click.echo(f"{run['id']} {run['state']}{objective}")


@click.command()
@click.argument("experiment_id")
@click.option("--refresh", is_flag=True, help="recompute now instead of the stored recommendation")
@url_option
@json_option
def recommend(experiment_id: str, refresh: bool, url: str, as_json: bool) -> None:
    """The best mixture at the target fidelity, its predicted objective with a 90% interval."""
    with MixoptClient(url) as client, elapsed("computing the recommendation" if refresh else
                                              "fetching the recommendation"):
        rec = client.recommendation(experiment_id, refresh=refresh)
    if as_json:
        print_json(rec)
        return
    predicted = rec["predicted"]
    interval = ("" if predicted.get("lower") is None
                else f" (90%: {predicted['lower']:.4f} .. {predicted['upper']:.4f})")
    click.echo(f"{rec['method']}, from {rec['n_runs']} runs: predicted {predicted['value']:.4f}{interval}")
    for name, weight in sorted(rec["mixture"].items(), key=lambda kv: -kv[1]):
        click.echo(f"  {name:<24} {weight:.4f}")
    for c in rec.get("constraints", []):
        click.echo(f"constraint {c['metric']} {c['op']} {c['bound']:.4f}: predicted {c['value']:.4f} "
                   f"(90%: {c['lower']:.4f} .. {c['upper']:.4f}), P(met) {c['probability']:.2f}")
