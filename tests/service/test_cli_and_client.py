"""The CLI (migrate, import, demo) and the client's safe retries, against live servers over real HTTP."""

from __future__ import annotations

import json
import logging
import socket
from pathlib import Path

import httpx
import numpy as np
import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result
from mixopt_client import MixoptClient

from runtables.regmix import load_split
from service.api.embedded import embedded_server
from service.cli import main
from service.settings import Settings
from tests.service.helpers import spec


def test_migrate_creates_the_schema(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path}/m.db"
    monkeypatch.setenv("MIXOPT_DATABASE_URL", url)
    from service.settings import get_settings

    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(main, ["migrate"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    tables = set(sa.inspect(sa.create_engine(url)).get_table_names())
    assert {"experiments", "runs", "jobs", "fits", "proposals", "alembic_version"} <= tables


def test_import_csv_is_idempotent(live: str, regmix_dir: Path) -> None:
    header = (regmix_dir / "train_mixture_1m.csv").read_text().splitlines()[0].strip().split(",")[1:]
    with MixoptClient(live) as client:
        exp = client.create_experiment({
            "name": "import", "domains": [{"name": c.removeprefix("train_the_pile_")} for c in header],
            "objective": {"metrics": ["metric/the_pile_pile_cc_val_loss"], "aggregate": "single"}})
        args = ["import", "--url", live, "--experiment", exp["id"],
                "--mixtures", str(regmix_dir / "train_mixture_1m.csv"),
                "--metrics", str(regmix_dir / "train_pile_loss_1m.csv"),
                "--mixture-prefix", "train_the_pile_", "--metric-prefix", "metric/", "--cost", "1"]
        first = CliRunner().invoke(main, args)
        assert first.exit_code == 0, first.output
        assert "created 512" in first.output
        second = CliRunner().invoke(main, args)
        assert "created 0, already present 512" in second.output
        assert client.get_experiment(exp["id"])["run_counts"]["completed"] == 512


def test_demo_runs_a_loop_end_to_end(live: str, regmix_dir: Path) -> None:
    result = CliRunner().invoke(main, ["demo", "--url", live, "--data", str(regmix_dir), "--rounds", "3",
                                       "--batch", "20"])
    assert result.exit_code == 0, result.output
    assert "recommended mixture" in result.output
    assert "pile_cc" in result.output.split("recommended mixture")[1]
    lines = result.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("round"))
    assert "best in round" in lines[header] and "best so far" in lines[header]
    rows = [line.split() for line in lines[header + 1 : header + 4]]
    assert [row[0] for row in rows] == ["1/3", "2/3", "3/3"]
    in_round, so_far = [float(row[3]) for row in rows], [float(row[4]) for row in rows]
    assert so_far == [min(in_round[: i + 1]) for i in range(3)]  # the running minimum of the rounds' bests
    pool_best = train_objective(regmix_dir).min()
    [summary] = [line for line in lines if line.startswith("best of all 512 RegMix runs")]
    assert f"{pool_best:.4f}" in summary
    if so_far[-1] <= pool_best:
        first = next(i + 1 for i, value in enumerate(so_far) if value <= pool_best)
        assert f"found in round {first} " in summary and "<- the pool's best" in lines[header + first]
    else:
        assert f"not found; the search's best is {so_far[-1] - pool_best:.4f} above it" in summary


def train_objective(regmix_dir: Path) -> np.ndarray:
    """The demo's default objective (pile_cc loss) of every 1M training run: the pool it searches."""
    return load_split(regmix_dir, "train_1m").losses["loss/pile_cc"].to_numpy()


def test_the_embedded_servers_open_auth_warning_names_its_real_port(
        database_url: str, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="mixopt.api"), \
            embedded_server(Settings(database_url=database_url, auto_migrate=True)) as url:
        warnings = [r.getMessage() for r in caplog.records if "auth disabled" in r.getMessage()]
    assert warnings and all(f"reach {url} " in message for message in warnings), (url, warnings)


class DropFirstResponse(httpx.HTTPTransport):
    """Forwards each request, but loses the first response to a POST on ``path_suffix``, as a flaky network
    would."""

    def __init__(self, path_suffix: str = "/runs") -> None:
        super().__init__()
        self.dropped = 0
        self.path_suffix = path_suffix

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        if request.method == "POST" and request.url.path.endswith(self.path_suffix) and self.dropped == 0:
            response.read()
            self.dropped += 1
            raise httpx.ReadError("connection reset after the server answered", request=request)
        return response


def test_client_retry_of_a_suggestion_request_hands_out_one_batch(live: str) -> None:
    transport = DropFirstResponse("/suggestions")
    with MixoptClient(live, transport=transport) as client:
        exp = client.create_experiment(spec())
        sugg = client.suggest(exp["id"], 3)
        assert transport.dropped == 1
        pending = client.list_runs(exp["id"], state=["suggested"])
        assert sorted(s.id for s in sugg) == sorted(r["id"] for r in pending) and len(pending) == 3
        assert len({r["client_id"] for r in pending}) == 1  # the call named itself
        again = client.suggest(exp["id"], 3)  # a new call: new runs
        assert not {s.id for s in again} & {s.id for s in sugg}


def test_client_retry_after_lost_response_stores_one_run(live: str) -> None:
    transport = DropFirstResponse()
    with MixoptClient(live, transport=transport) as client:
        exp = client.create_experiment(spec())
        run = client.report(exp["id"], mixture={"web": 0.5, "code": 0.2, "papers": 0.2, "math": 0.1004},
                            fidelity={"params": 1e6}, metrics={"loss/web": 3.0, "loss/code": 3.1})
        assert transport.dropped == 1
        assert [r["id"] for r in client.list_runs(exp["id"])] == [run["id"]]
        assert abs(sum(run["mixture"].values()) - 1) < 1e-12  # renormalised by the client (documented)
        sugg = client.suggest(exp["id"], 3)
        assert len(sugg) == 3 and all(s.method == "design" for s in sugg)


# ------------------------------------------------------------------------------------ expected failures
def _one_line_error(result: Result, *expected: str) -> None:
    """The command failed as a user should see it: exit code 1, one ``Error:`` line naming the problem,
    no traceback (an unexpected exception would be left in ``result.exception``)."""
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "Traceback" not in result.output, result.output
    for text in expected:
        assert text in errors[0], errors[0]


def _runs_csv(tmp_path: Path) -> Path:
    """Two runs of the helpers' four domains, mixture columns prefixed ``mix_``, metrics in the same file."""
    path = tmp_path / "runs.csv"
    path.write_text("index,mix_web,mix_code,mix_papers,mix_math,loss/web,loss/code\n"
                    "1,0.4,0.3,0.2,0.1,3.1,3.3\n2,0.25,0.25,0.25,0.25,3.2,3.4\n")
    return path


def test_import_against_a_server_that_is_down_prints_one_line(tmp_path: Path) -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    result = CliRunner().invoke(main, ["import", "--url", url, "--experiment", "exp_x",
                                       "--mixtures", str(_runs_csv(tmp_path)), "--mixture-prefix", "mix_"])
    _one_line_error(result, "cannot reach", url)


def test_import_into_an_unknown_experiment_prints_one_line(live: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["import", "--url", live, "--experiment", "exp_nope",
                                       "--mixtures", str(_runs_csv(tmp_path)), "--mixture-prefix", "mix_"])
    _one_line_error(result, "404 not_found", "exp_nope")


def test_import_without_the_mixture_prefix_prints_one_line(live: str, tmp_path: Path) -> None:
    with MixoptClient(live) as client:
        exp = client.create_experiment(spec())
        args = ["import", "--url", live, "--experiment", exp["id"], "--mixtures", str(_runs_csv(tmp_path))]
        _one_line_error(CliRunner().invoke(main, args), "422 invalid_mixture", "unknown domain")
        _one_line_error(CliRunner().invoke(main, [*args, "--mixture-prefix", "train_"]),
                        "no mixture column starts with 'train_'", "mix_web")
        assert client.get_experiment(exp["id"])["run_counts"].get("completed", 0) == 0
        imported = CliRunner().invoke(main, [*args, "--mixture-prefix", "mix_", "--metric-prefix", "loss/",
                                            "--fidelity", "params=1e6"])
        assert imported.exit_code == 0, imported.output
        assert client.get_experiment(exp["id"])["run_counts"]["completed"] == 2


def test_import_leaves_blank_metric_cells_out_and_skips_rows_lacking_an_objective_metric(
        live: str, tmp_path: Path) -> None:
    path = tmp_path / "gaps.csv"
    path.write_text("index,mix_web,mix_code,mix_papers,mix_math,loss/web,loss/code,loss/extra\n"
                    "1,0.4,0.3,0.2,0.1,3.1,3.3,2.0\n2,0.25,0.25,0.25,0.25,3.2,3.4,\n"
                    "3,0.1,0.2,0.3,0.4,,3.5,2.1\n")
    with MixoptClient(live) as client:
        exp = client.create_experiment(spec())
        args = ["import", "--url", live, "--experiment", exp["id"], "--mixtures", str(path),
                "--mixture-prefix", "mix_", "--fidelity", "params=1e6"]
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 0, result.output
        assert "not imported: 1 rows with a blank objective metric: loss/web (1 rows)" in result.stderr
        runs = sorted((r["metrics"] for r in client.list_runs(exp["id"])), key=lambda m: m["loss/web"])
        assert runs == [{"loss/web": 3.1, "loss/code": 3.3, "loss/extra": 2.0}, {"loss/web": 3.2, "loss/code": 3.4}]
        assert sorted(r["client_run_id"] for r in client.list_runs(exp["id"])) == ["gaps:1", "gaps:2"]
        path.write_text("index,mix_web,mix_code,mix_papers,mix_math,loss/web,loss/code\n"
                        "4,0.4,0.3,0.2,0.1,3.1,\n5,0.25,0.25,0.25,0.25,3.2,\n")
        _one_line_error(CliRunner().invoke(main, args), "gaps.csv", "'loss/code' have no value in any row")
        assert len(client.list_runs(exp["id"])) == 2


def test_import_of_a_file_that_is_not_csv_prints_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "runs.csv"
    bad.write_text('a,b\n1,2,3,4\n"unterminated\n')
    result = CliRunner().invoke(main, ["import", "--experiment", "exp_x", "--mixtures", str(bad)])
    _one_line_error(result, str(bad), "not a readable CSV")


@pytest.mark.parametrize("command", [["export", "exp_x"], ["import-bundle", "-"], ["token", "list"],
                                     ["token", "revoke", "tok_x"]])
def test_database_commands_never_create_a_database(command: list[str], tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Run from a directory without ./mixopt.db (the default database), they refuse and leave no file."""
    from service.settings import get_settings

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MIXOPT_DATABASE_URL", raising=False)
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(main, command, input="{}")
    finally:
        get_settings.cache_clear()
    _one_line_error(result, f"no database at {tmp_path.resolve() / 'mixopt.db'}", "MIXOPT_DATABASE_URL")
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------------------ mixopt laws
def _laws(regmix_dir: Path, command: str, *extra: str) -> Result:
    return CliRunner().invoke(main, [
        "laws", command, "--train-mixtures", str(regmix_dir / "train_mixture_1m.csv"),
        "--train-metrics", str(regmix_dir / "train_pile_loss_1m.csv"), "--target", "mean", *extra])


def test_laws_optimize_checks_bounds_against_the_domains_before_fitting(regmix_dir: Path) -> None:
    result = _laws(regmix_dir, "optimize", "--max-weight", "github=0.2")
    assert result.exit_code == 2 and "scoring" not in result.output, result.output  # refused before any law
    assert "'github' is not a domain" in result.stderr and "--mixture-prefix 'train_the_pile_'" in result.stderr
    unparsable = _laws(regmix_dir, "optimize", "--mixture-prefix", "train_the_pile_", "--max-weight", "github=x")
    assert unparsable.exit_code == 2 and "'github=x' is not NAME=VALUE" in unparsable.stderr


def test_laws_optimize_with_a_mixture_prefix_names_and_bounds_domains(regmix_dir: Path) -> None:
    result = _laws(regmix_dir, "optimize", "--mixture-prefix", "train_the_pile_", "--law", "regmix_linear",
                   "--candidates", "5000", "--min-weight", "github=0.3", "--json")
    assert result.exit_code == 0, result.output
    mixture = json.loads(result.stdout)["mixture"]
    assert "github" in mixture and len(mixture) == 17
    assert mixture["github"] >= 0.3 - 1e-9


def test_an_invalid_setting_is_named_by_its_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    from service.settings import get_settings

    monkeypatch.setenv("MIXOPT_PORT", "eighty")
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(main, ["migrate"])
    finally:
        get_settings.cache_clear()
    _one_line_error(result, "invalid settings: MIXOPT_PORT:")


def test_replay_refuses_a_table_without_its_columns_or_target_before_replaying(tmp_path: Path) -> None:
    pool = tmp_path / "pool.csv"
    pool.write_text("mix/a,mix/b,params,loss\n0.5,0.5,1000000,3.0\n0.2,0.8,1000000,3.1\n")

    def replay(objective: str, target: str) -> Result:
        return CliRunner().invoke(main, [
            "replay", "--runs", str(pool), "--mixture-prefix", "mix/", "--fidelity-column", "params",
            "--objective", objective, "--target-fidelity", target, "--budget", "4", "--seeds", "1"])

    _one_line_error(replay("accuracy", "1e6"), "no column 'accuracy'", "mix/a, mix/b, params, loss")
    _one_line_error(replay("loss", "6e7"), "no rows at the target fidelity 6e+07")
