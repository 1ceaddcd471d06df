"""``mixopt replay`` end to end over HTTP on a small synthetic pool whose true optimum is known."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from click.testing import CliRunner

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


def test_replay_reports_trajectories_costs_and_regret(tmp_path: Path) -> None:
    path, frame = pool_csv(tmp_path)
    out = tmp_path / "replay.json"
    result = CliRunner().invoke(replay, [
        "--runs", str(path), "--mixture-prefix", "mix/", "--fidelity-column", "params", "--cost-column", "cost",
        "--objective", "loss", "--target-fidelity", str(HIGH), "--budget", "600", "--seeds", "2",
        "--methods", "random,bo", "--batch", "4", "--out", str(out)])
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
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
        if t["method"] == "random":  # model-free, at the target only: every run costs 60
            assert np.allclose(np.diff(np.concatenate([[0.0], costs])) % 60, 0)
    assert data["methods"]["bo"]["reached"] >= 1, "BO finds the bowl's bottom within the budget"
