"""``mixopt experiments transfer/transferred``, ``mixopt pareto``, ``mixopt cmr`` and the constraints of
``mixopt recommend``, against a live server: the text a person reads agrees with the service's answer."""

from __future__ import annotations

import json

import numpy as np
from click.testing import CliRunner, Result
from mixopt_client import MixoptClient

from service.cli import main
from tests.mixing.laws.synthetic import cmr_runs
from tests.service.helpers import continual_runs, continual_spec, spec, synthetic_losses


def mixopt(live: str, *args: str) -> Result:
    result = CliRunner().invoke(main, [*args, "--url", live])
    assert result.exit_code == 0, result.output
    return result


def completed(n: int, seed: int) -> list[dict[str, object]]:
    rng = np.random.default_rng(seed)
    domains = ("web", "code", "papers", "math")
    return [{"mixture": dict(zip(domains, w.tolist(), strict=True)), "fidelity": {"params": 1e9},
             "metrics": synthetic_losses(w)} for w in rng.dirichlet(np.ones(4), n)]


def test_a_warm_start_from_the_command_line_brings_runs_in_once(live: str) -> None:
    with MixoptClient(live) as client:
        old = client.create_experiment(spec("last-month"))
        client.import_runs(old["id"], completed(6, 0))
        new = client.create_experiment(spec("this-month"))
    text = mixopt(live, "experiments", "transfer", new["id"], old["id"], "--weight", "0.5").stdout
    assert text.strip() == f"6 runs brought in from {old['id']} (weight 0.5)"
    again = json.loads(mixopt(live, "experiments", "transfer", new["id"], old["id"], "--json").stdout)
    assert again["transferred"] == 0 and again["skipped"]["already_transferred"] == 6
    listed = mixopt(live, "experiments", "transferred", new["id"]).stdout.splitlines()
    assert listed == [f"{old['id']}  6 runs  weight 1  target objective"]
    runs = json.loads(mixopt(live, "experiments", "transferred", new["id"], "--source", old["id"], "--json").stdout)
    assert len(runs) == 6 and {r["source_experiment_id"] for r in runs} == {old["id"]}
    refused = CliRunner().invoke(main, ["experiments", "transfer", new["id"], new["id"], "--url", live])
    assert refused.exit_code == 1 and "422" in refused.stderr and "Traceback" not in refused.output
    bad_weight = CliRunner().invoke(main, ["experiments", "transfer", new["id"], old["id"], "--weight", "0",
                                           "--url", live])
    assert bad_weight.exit_code == 2 and "--weight" in bad_weight.stderr


def test_constraints_and_the_front_from_the_command_line(live: str) -> None:
    body = spec("code-within-web", objective={
        "metrics": ["loss/code"], "aggregate": "single",
        "constraints": [{"metric": "loss/web", "op": "<=", "relative_to": "prior", "slack": 0.05}]})
    with MixoptClient(live) as client:
        exp = client.create_experiment(body)
        client.import_runs(exp["id"], completed(30, 1))
        rec = client.recommendation(exp["id"], refresh=True)
        front = client.pareto(exp["id"], method="regmix", candidates=500, seed=0)
    [c] = rec["constraints"]
    lines = mixopt(live, "recommend", exp["id"]).stdout.splitlines()
    assert lines[-1] == (f"constraint loss/web <= {c['bound']:.4f}: predicted {c['value']:.4f} "
                         f"(90%: {c['lower']:.4f} .. {c['upper']:.4f}), P(met) {c['probability']:.2f}")
    text = mixopt(live, "pareto", exp["id"], "--method", "regmix", "--candidates", "500", "--seed", "0").stdout
    head, axes, *points = text.splitlines()
    assert head.startswith(f"regmix, from 30 runs over 500 candidates: {len(front['front'])} predicted front points")
    assert axes == f"axes: objective (min), loss/web (min, bound {front['axes'][1]['bound']:.4f})"
    assert len(points) == min(12, len(front["front"])) >= 2
    first = front["front"][0]
    assert points[0].startswith(f"  {first['values'][0]:.4f} [{first['lower'][0]:.4f}, {first['upper'][0]:.4f}]")
    assert json.loads(mixopt(live, "pareto", exp["id"], "--method", "regmix", "--candidates", "500", "--seed", "0",
                             "--json").stdout) == front


def test_the_cmr_from_the_command_line(live: str) -> None:
    with MixoptClient(live) as client:
        exp = client.create_experiment(continual_spec())
        client.import_runs(exp["id"], continual_runs(*cmr_runs(0.005, 1)))
        answer = client.cmr(exp["id"])
    lines = mixopt(live, "cmr", exp["id"]).stdout.splitlines()
    interval = answer["interval"]
    assert lines[0] == (f"CMR {answer['cmr']:.4f} (90%: {interval['lower']:.4f} .. {interval['upper']:.4f}) "
                        f"at 4e+09 tokens, from 20 runs")
    assert lines[1].startswith(f"general loss there: {answer['general_loss']['value']:.4f}")
    assert lines[3].startswith("held out at 8e+08 tokens: MAE general ")
    plain = CliRunner().invoke(main, ["cmr", exp["id"].replace("exp_", "exp_x"), "--url", live])
    assert plain.exit_code == 1 and "404" in plain.stderr
