"""``mixopt replay``: the replay benchmark of search methods over HTTP against a table of real runs."""

from __future__ import annotations

import json
import math
import tempfile
from contextlib import ExitStack
from pathlib import Path

import click
from mixopt_client import MixoptClient

from runtables.replay import ReplayTable, run_replay, summarise
from service.cli.errors import read_csv
from service.jsonable import to_jsonable
from service.settings import Settings


@click.command()
@click.option("--runs", "runs_csv", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True,
              help="CSV: one row per (mixture, fidelity) with its measured objective and cost")
@click.option("--mixture-prefix", required=True, help="prefix of the mixture-weight columns")
@click.option("--fidelity-column", required=True)
@click.option("--cost-column", default=None, help="default: fidelity / min fidelity")
@click.option("--objective", "objective_column", required=True)
@click.option("--goal", type=click.Choice(["min", "max"]), default="min", show_default=True)
@click.option("--target-fidelity", type=float, required=True)
@click.option("--budget", type=float, required=True, help="total cost each method may spend")
@click.option("--seeds", type=int, default=5, show_default=True)
@click.option("--methods", default="bo,regmix,random,single-fidelity-bo", show_default=True)
@click.option("--batch", type=int, default=4, show_default=True, help="suggestions per round")
@click.option("--declare-costs", is_flag=True,
              help="declare each fidelity level's median run cost in the experiments (search.level_costs), as a "
                   "team that has timed its runs would; otherwise BO forecasts a level's cost from the fidelity "
                   "axis until it has run there")
@click.option("--url", default=None, help="service to drive (default: an embedded one on a temporary SQLite)")
@click.option("--json", "as_json", is_flag=True,
              help="print the full result as JSON (a cost to 1% never reached is null)")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="also write the JSON here")
def replay(runs_csv: Path, mixture_prefix: str, fidelity_column: str, cost_column: str | None,
           objective_column: str, goal: str, target_fidelity: float, budget: float, seeds: int, methods: str,
           batch: int, declare_costs: bool, url: str | None, as_json: bool, out: Path | None) -> None:
    """Replay search methods against a table of real runs, over the real HTTP API.

    Reports per method the median cost to recommend a mixture within 1% (of the objective's range) of the
    pool's best target-fidelity value, and the median regret at the full budget. In the JSON, a median
    cost of null means the median seed never got within 1% (censored), a median regret of null that no
    seed got a recommendation.
    """
    table = ReplayTable.from_frame(read_csv(runs_csv), mixture_prefix, fidelity_column, cost_column,
                                   objective_column)
    best, span = table.target_extent(target_fidelity, goal)
    trajectories = []
    with ExitStack() as stack:
        if url is None:
            from service.api.embedded import embedded_server

            tmp = stack.enter_context(tempfile.TemporaryDirectory())
            url = stack.enter_context(embedded_server(Settings(database_url=f"sqlite:///{tmp}/replay.db",
                                                               sync_budget_s=600.0)))
        client = stack.enter_context(MixoptClient(url, timeout_s=600.0))
        for method in [m.strip() for m in methods.split(",") if m.strip()]:
            for seed in range(seeds):
                trajectories.append(run_replay(client, table, method, seed, target_fidelity, budget, goal, batch,
                                               progress=lambda msg: click.echo(msg, err=True),
                                               declare_costs=declare_costs))
    result = {"objective": objective_column, "goal": goal, "target_fidelity": target_fidelity, "seeds": seeds,
              "objective_best": best, "objective_range": span,
              "declared_level_costs": [{"fidelity": level, "cost": cost} for level, cost in table.level_costs()]
              if declare_costs else [],
              **summarise(trajectories, budget)}
    text = json.dumps(to_jsonable(result), indent=2, allow_nan=False)
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
    if as_json:
        click.echo(text)
        return
    click.echo(f"{'method':<22}{'cost to 1%':>12}{'reached':>9}{'stays in 1% from':>18}{'stayed':>8}"
               f"{'final regret':>14}{'wall s':>9}")
    for name, row in result["methods"].items():
        click.echo(f"{name:<22}{_cost(row['median_cost_to_within_1pct']):>12}{row['reached']:>6}/{row['seeds']:<2}"
                   f"{_cost(row['median_cost_to_stay_within_1pct']):>18}{row['stayed']:>5}/{row['seeds']:<2}"
                   f"{row['median_final_regret']:>14.4f}{row['median_wall_s']:>9.1f}")


def _cost(value: float) -> str:
    """A median cost, or ``never`` where the median seed did not get there (inf; null in the JSON)."""
    return f"{value:.0f}" if math.isfinite(value) else "never"
