"""``mixopt experiments create/list/show``, ``suggest``, ``report`` and ``recommend`` against a live server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from mixopt_client import MixoptClient

from service.api.embedded import embedded_server
from service.cli import main
from service.settings import Settings
from tests.service.helpers import spec


def mixopt(live: str, *args: str, stdin: str | None = None) -> Result:
    result = CliRunner().invoke(main, [*args, "--url", live], input=stdin)
    assert result.exit_code == 0, result.output
    return result


def test_an_experiment_made_listed_and_shown_from_the_command_line(live: str, tmp_path: Path) -> None:
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(json.dumps({**spec("from-cli"), "search": {
        "level_costs": [{"fidelity": {"params": 6e7}, "cost": 48.5}]}}))
    exp_id = mixopt(live, "experiments", "create", "--from", str(spec_file)).stdout.strip()
    copy = json.loads(mixopt(live, "experiments", "create", "--from", "-", "--name", "copy", "--json",
                             stdin=json.dumps(spec("ignored"))).stdout)
    with MixoptClient(live) as client:
        assert client.get_experiment(exp_id)["name"] == "from-cli"
        assert client.get_experiment(copy["id"])["name"] == "copy"
    listed = mixopt(live, "experiments", "list").stdout.splitlines()
    assert listed[0].split()[:3] == ["id", "name", "state"]
    assert {line.split()[0] for line in listed[1:]} == {exp_id, copy["id"]}
    only = json.loads(mixopt(live, "experiments", "list", "--q", "from-", "--json").stdout)
    assert [e["id"] for e in only] == [exp_id]
    shown = mixopt(live, "experiments", "show", exp_id).stdout
    assert f"from-cli ({exp_id})" in shown and "web (prior 0.5)" in shown and "runs: none yet" in shown
    assert "declared cost of a run at params=6e+07: 48.5" in shown
    assert json.loads(mixopt(live, "experiments", "show", exp_id, "--json").stdout)["id"] == exp_id


def test_suggest_report_recommend_from_the_command_line(live: str) -> None:
    with MixoptClient(live) as client:
        exp = client.create_experiment(spec())
    runs = json.loads(mixopt(live, "suggest", exp["id"], "--count", "3", "--client-id", "trainer-1",
                             "--json").stdout)
    assert len(runs) == 3 and all(r["method"] == "design" and r["fidelity"] == {"params": 1e6} for r in runs)
    # The same trainer asking again gets its pending runs back, in the text form.
    again = mixopt(live, "suggest", exp["id"], "--count", "3", "--client-id", "trainer-1").stdout.splitlines()
    assert sorted(line.split()[0] for line in again) == sorted(r["id"] for r in runs)
    for i, run in enumerate(runs):
        out = mixopt(live, "report", exp["id"], "--run-id", run["id"], "--metric", f"loss/web={3 + i / 10}",
                     "--metric", "loss/code=3.5", "--cost", "1").stdout
        assert out.startswith(f"{run['id']} completed, objective {(3 + i / 10 + 3.5) / 2:.4f}")
    elsewhere = json.loads(mixopt(
        live, "report", exp["id"], "--mixture", "web=0.7", "--mixture", "code=0.1", "--mixture", "papers=0.1",
        "--mixture", "math=0.1", "--fidelity", "params=1e6", "--metric", "loss/web=2.5", "--metric",
        "loss/code=3.0", "--client-run-id", "job-7", "--json").stdout)
    assert elsewhere["mixture"]["web"] == 0.7 and elsewhere["client_run_id"] == "job-7"
    rec = json.loads(mixopt(live, "recommend", exp["id"], "--json").stdout)
    assert rec["n_runs"] == 4 and set(rec["mixture"]) == {"web", "code", "papers", "math"}
    text = mixopt(live, "recommend", exp["id"]).stdout
    assert text.startswith(f"{rec['method']}, from 4 runs: predicted {rec['predicted']['value']:.4f}")


def test_the_verbs_refuse_in_one_line(live: str, tmp_path: Path) -> None:
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(json.dumps(spec("twice")))
    mixopt(live, "experiments", "create", "--from", str(spec_file))
    taken = CliRunner().invoke(main, ["experiments", "create", "--from", str(spec_file), "--url", live])
    assert taken.exit_code == 1 and taken.stderr.splitlines()[-1].startswith("Error: the service answered 409")
    spec_file.write_text("{not json")
    broken = CliRunner().invoke(main, ["experiments", "create", "--from", str(spec_file), "--url", live])
    assert broken.exit_code == 1 and f"Error: {spec_file}: not JSON" in broken.stderr
    missing = CliRunner().invoke(main, ["recommend", "exp_nope", "--url", live])
    assert missing.exit_code == 1 and "404 not_found" in missing.stderr and "Traceback" not in missing.output
    neither = CliRunner().invoke(main, ["report", "exp_nope", "--metric", "loss/web=1", "--url", live])
    assert neither.exit_code == 2 and "either --run-id" in neither.stderr


def test_a_missing_token_is_one_line_naming_where_the_token_comes_from(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from service.settings import get_settings

    monkeypatch.delenv("MIXOPT_TOKEN", raising=False)
    get_settings.cache_clear()
    try:
        with embedded_server(Settings(database_url=f"sqlite:///{tmp_path}/auth.db", auth="required")) as url:
            result = CliRunner().invoke(main, ["experiments", "list", "--url", url])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 1, result.output
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("Error: the service answered 401 unauthenticated") and "MIXOPT_TOKEN" in line
