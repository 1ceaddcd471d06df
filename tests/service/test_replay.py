"""``mixopt replay`` end to end over HTTP on a small synthetic pool whose true optimum is known."""

from __future__ import annotations

import importlib
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from runtables.replay import Trajectory, summarise
from service.cli.replay import replay

DOMAINS = ("web", "code", "math")
LOW, HIGH = 1e6, 6e7
BEST = np.array([0.6, 0.3, 0.1])


def pool_csv(tmp: Path, n: int = 40) -> tuple[Path, pd.DataFrame]:
    """``n`` mixtures at both fidelities; the loss is a bowl around ``BEST``, 0.5 higher at the proxy."""
    rng = np.random.default_rng(0)
    mixtures = np.vstack([BEST, rng.dirichlet(np.ones(3), n - 1)])
    rows = []
    for params in (LOW, HIGH):
        loss = 2.0 + 4.0 * ((mixtures - BEST) ** 2).sum(axis=1) + (0.5 if params == LOW else 0.0)
        for w, y in zip(mixtures, loss, strict=True):
            rows.append({**{f"mix/{d}": v for d, v in zip(DOMAINS, w, strict=True)}, "params": params,
                         "cost": params / LOW, "loss": y})
    frame = pd.DataFrame(rows)
    path = tmp / "pool.csv"
    frame.to_csv(path, index=False)
    return path, frame


def strict_json(text: str) -> Any:
    """Parse JSON proper: Python's parser alone accepts the non-JSON tokens Infinity and NaN."""

    def reject(token: str) -> None:
        raise ValueError(f"{token} is not JSON")

    return json.loads(text, parse_constant=reject)


def run_cli(path: Path, out: Path, budget: int, seeds: int, methods: str, *extra: str) -> Any:
    """``mixopt replay`` on the pool at ``path``, writing ``out``; returns the parsed JSON."""
    result = CliRunner().invoke(replay, [
        "--runs", str(path), "--mixture-prefix", "mix/", "--fidelity-column", "params", "--cost-column", "cost",
        "--objective", "loss", "--target-fidelity", str(HIGH), "--budget", str(budget), "--seeds", str(seeds),
        "--methods", methods, *extra, "--out", str(out)])
    assert result.exit_code == 0, result.output
    return strict_json(out.read_text())


def test_replay_reports_trajectories_costs_and_regret(tmp_path: Path) -> None:
    path, frame = pool_csv(tmp_path)
    data = run_cli(path, tmp_path / "replay.json", 600, 2, "random,bo", "--batch", "4")
    target = frame[frame.params == HIGH].loss
    assert data["objective_best"] == target.min() and np.isclose(data["objective_range"], np.ptp(target))
    assert set(data["methods"]) == {"random", "bo"} and data["seeds"] == 2
    assert len(data["trajectories"]) == 4
    for t in data["trajectories"]:
        costs, values = np.array(t["costs"]), np.array(t["values"])
        assert len(costs) == len(values) > 0 and np.all(np.diff(costs) > 0)
        assert np.all(values >= data["objective_best"] - 1e-12)  # every value is a true pool value
        assert np.isclose(t["final_regret"], values[-1] - data["objective_best"])
        within = np.flatnonzero(values - data["objective_best"] <= 0.01 * data["objective_range"])
        assert t["cost_to_within"] == (costs[within[0]] if len(within) else None)
        outside = np.flatnonzero(values - data["objective_best"] > 0.01 * data["objective_range"])
        stays = None if len(outside) and outside[-1] == len(values) - 1 else \
            costs[outside[-1] + 1 if len(outside) else 0]
        assert t["cost_to_stay_within"] == stays
        if t["method"] == "random":  # model-free, at the target only: every run costs 60
            assert np.allclose(np.diff(np.concatenate([[0.0], costs])) % 60, 0)
    assert data["methods"]["bo"]["reached"] >= 1, "BO finds the bowl's bottom within the budget"


def test_censored_costs_stay_infinite_in_memory_and_are_written_as_null(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Random never gets within 1% on two seeds of three, and regmix never gets a recommendation."""
    reached = {("random", 0): None, ("random", 1): None, ("random", 2): 120.0,
               ("bo", 0): 12.0, ("bo", 1): 24.0, ("bo", 2): 36.0}

    def fake_replay(client: object, table: object, method: str, seed: int, *args: object,
                    **kwargs: object) -> Trajectory:
        if method == "regmix":
            return Trajectory(method, seed, n_runs=1)
        cost = reached[method, seed]
        return Trajectory(method, seed, [60.0, 120.0], [2.2, 2.0], cost, cost, 0.0 if cost else 0.2, 2, 0.1)

    # the package re-exports the command under the module's name, so fetch the module itself
    monkeypatch.setattr(importlib.import_module("service.cli.replay"), "run_replay", fake_replay)
    path, _ = pool_csv(tmp_path)
    written = run_cli(path, tmp_path / "replay.json", 600, 3, "random,bo,regmix", "--url", "http://127.0.0.1:9")
    trajectories = [fake_replay(None, None, m, s) for m in ("random", "bo", "regmix") for s in range(3)]
    in_memory = summarise(trajectories, 600.0)["methods"]
    assert in_memory["random"]["median_cost_to_within_1pct"] == math.inf
    assert math.isnan(in_memory["regmix"]["median_final_regret"])
    methods = written["methods"]
    assert methods["random"]["median_cost_to_within_1pct"] is None and methods["random"]["reached"] == 1
    assert methods["bo"]["median_cost_to_within_1pct"] == 24.0 and methods["bo"]["reached"] == 3
    assert methods["random"]["median_cost_to_stay_within_1pct"] is None and methods["random"]["stayed"] == 1
    assert methods["bo"]["median_cost_to_stay_within_1pct"] == 24.0
    assert methods["regmix"]["median_cost_to_within_1pct"] is None
    assert methods["regmix"]["median_final_regret"] is None


def test_a_replay_is_repeatable_and_its_seeds_differ(tmp_path: Path) -> None:
    """Every request carries a seed derived from the replay's, so the same seed gives the same trajectory."""
    path, _ = pool_csv(tmp_path)

    def trajectories(name: str) -> list[dict[str, Any]]:
        data = run_cli(path, tmp_path / name, 200, 2, "bo", "--batch", "4")
        return [{k: t[k] for k in ("seed", "costs", "values")} for t in data["trajectories"]]

    first, second = trajectories("a.json"), trajectories("b.json")
    assert first == second
    assert first[0]["costs"] != first[1]["costs"] or first[0]["values"] != first[1]["values"]


def test_declared_costs_reach_bo_before_it_runs_at_the_target(tmp_path: Path) -> None:
    """A target run costs 5 cheap ones, not the axis' 60. Declared, BO's second batch already holds a target
    run; undeclared, it takes one for 60 cheap ones and makes that batch four cheap runs."""
    path, frame = pool_csv(tmp_path)
    frame.loc[frame.params == HIGH, "cost"] = 5.0
    frame.to_csv(path, index=False)
    data = run_cli(path, tmp_path / "replay.json", 10, 1, "bo", "--declare-costs")
    assert data["declared_level_costs"] == [{"fidelity": LOW, "cost": 1.0}, {"fidelity": HIGH, "cost": 5.0}]
    (trajectory,) = data["trajectories"]
    first, second = trajectory["costs"][:2]
    assert second - first > 4, "the second batch was four cheap runs"
