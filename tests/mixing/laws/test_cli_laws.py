"""``mixopt laws evaluate|optimize`` on small CSV files: joins, targets, JSON, bounds, errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from service.cli import main
from service.cli.laws import laws
from tests.mixing.laws.synthetic import exp_law, mixtures

DOMAINS = ["web", "code", "books"]
C = np.array([2.0, 1.5])
K = np.array([1.0, 0.5])
T = np.array([[-3.0, 0.5, 1.0], [0.3, -2.0, 0.1]])


def write_pair(
    tmp: Path, name: str, n: int, seed: int, tokens: list[float] | None = None
) -> tuple[Path, Path]:
    x = mixtures(n, 3, seed=seed)
    y = exp_law(x, C, K, T) + np.random.default_rng(seed).normal(0, 0.01, (n, 2))
    ids = np.arange(n) + 1000 * seed
    mix = pd.DataFrame(x, columns=DOMAINS).assign(index=ids)[["index", *DOMAINS]]
    met = pd.DataFrame(y, columns=["loss_web", "loss_code"]).assign(index=ids)
    if tokens is not None:
        met["tokens"] = np.resize(tokens, n)
        met[["loss_web", "loss_code"]] += 0.1 * np.log10(1e9 / met[["tokens"]].to_numpy())
    met = met.sample(frac=1.0, random_state=seed)  # rows must be joined on the id, not by position
    paths = tmp / f"{name}_mix.csv", tmp / f"{name}_met.csv"
    mix.to_csv(paths[0], index=False)
    met.to_csv(paths[1], index=False)
    return paths


def run(args: list[str]) -> tuple[int, str]:
    result = CliRunner().invoke(laws, args)
    return result.exit_code, result.output if result.exit_code else result.stdout


@pytest.fixture()
def files(tmp_path: Path) -> dict[str, Path]:
    tm, tr = write_pair(tmp_path, "train", 60, 1)
    hm, hr = write_pair(tmp_path, "test", 30, 2)
    return {"train_mix": tm, "train_met": tr, "test_mix": hm, "test_met": hr}


def base(files: dict[str, Path], target: str) -> list[str]:
    return [
        "--train-mixtures",
        str(files["train_mix"]),
        "--train-metrics",
        str(files["train_met"]),
        "--test-mixtures",
        str(files["test_mix"]),
        "--test-metrics",
        str(files["test_met"]),
        "--target",
        target,
        "--laws",
        "regmix_linear,data_mixing_law",
        "--jobs",
        "1",
    ]


def test_evaluate_json_reports_every_law_with_cv_and_heldout_scores(files: dict[str, Path]) -> None:
    code, out = run(["evaluate", *base(files, "mean"), "--json"])
    assert code == 0, out
    data = json.loads(out)
    assert data["n_train"] == 60 and data["n_test"] == 30 and data["metrics"] == ["loss_web", "loss_code"]
    names = [law["name"] for law in data["laws"]]
    assert names == ["regmix_linear", "data_mixing_law", "ensemble"]
    assert data["selected"] in names
    for law in data["laws"]:
        for route in ("from_metrics", "direct"):
            for scores in (law["cv"][route], law["heldout"]["heldout"][route]):
                assert set(scores) >= {"spearman", "mae", "r2", "top_k_hit"}
    dml = next(law for law in data["laws"] if law["name"] == "data_mixing_law")
    assert dml["heldout"]["heldout"]["from_metrics"]["spearman"] > 0.95  # the data follow this law


def test_evaluate_single_column_target_and_readable_table(files: dict[str, Path]) -> None:
    code, out = run(["evaluate", *base(files, "loss_code")])
    assert code == 0, out
    assert "selected:" in out and "data_mixing_law" in out and "direct" not in out


def test_optimize_respects_bounds_and_uses_the_named_law(files: dict[str, Path]) -> None:
    code, out = run(
        [
            "optimize",
            *base(files, "mean"),
            "--law",
            "data_mixing_law",
            "--max-weight",
            "web=0.3",
            "--min-weight",
            "books=0.2",
            "--candidates",
            "3000",
            "--json",
        ]
    )
    assert code == 0, out
    data = json.loads(out)
    mix = data["mixture"]
    assert sum(mix.values()) == pytest.approx(1.0, abs=1e-6)
    assert mix["web"] <= 0.3 + 1e-6 and mix["books"] >= 0.2 - 1e-6
    assert data["law"] == "data_mixing_law" and data["lower"] < data["predicted"] < data["upper"]


def test_optimize_selects_a_law_when_none_is_named(files: dict[str, Path]) -> None:
    code, out = run(["optimize", *base(files, "loss_web"), "--candidates", "2000"])
    assert code == 0, out
    assert "law:" in out and "web" in out


def test_fidelity_columns_feed_fidelity_aware_laws(tmp_path: Path) -> None:
    tm, tr = write_pair(tmp_path, "train", 90, 3, tokens=[1e8, 1e9, 1e10])
    code, out = run(
        [
            "evaluate",
            "--train-mixtures",
            str(tm),
            "--train-metrics",
            str(tr),
            "--target",
            "mean",
            "--fidelity-columns",
            "tokens",
            "--laws",
            "gp,regmix_linear",
            "--jobs",
            "1",
            "--json",
        ]
    )
    assert code == 0, out
    data = json.loads(out)
    assert data["metrics"] == ["loss_web", "loss_code"]
    gp = next(law for law in data["laws"] if law["name"] == "gp")
    lin = next(law for law in data["laws"] if law["name"] == "regmix_linear")
    assert gp["cv"]["from_metrics"]["r2"] > 0.9 > lin["cv"]["from_metrics"]["r2"]


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--target", "nope"], "not a metric column"),
        (["--target", "mean", "--laws", "magic"], "unknown laws"),
        (["--target", "mean", "--fidelity-columns", "params"], "fidelity columns not in the metric file"),
    ],
)
def test_bad_inputs_are_usage_errors(files: dict[str, Path], extra: list[str], message: str) -> None:
    args = [
        "evaluate",
        "--train-mixtures",
        str(files["train_mix"]),
        "--train-metrics",
        str(files["train_met"]),
        *extra,
    ]
    code, out = run(args)
    assert code == 2 and message in out


def _with_gaps(path: Path, blanks: dict[str, list[int]]) -> Path:
    """A copy of the metric file ``path`` with the given rows (by position) of each column blank."""
    met = pd.read_csv(path)
    for column, rows in blanks.items():
        met.loc[rows, column] = np.nan
    out = path.with_name("gaps_" + path.name)
    met.to_csv(out, index=False)
    return out


def test_evaluate_counts_runs_lacking_a_metric_for_the_metrics_they_have(files: dict[str, Path]) -> None:
    train = _with_gaps(files["train_met"], {"loss_web": [3, 17], "loss_code": [40]})
    test = _with_gaps(files["test_met"], {"loss_code": [5]})
    args = [*base({**files, "train_met": train, "test_met": test}, "mean"), "--folds", "2"]
    code, out = run(["evaluate", *args, "--json"])
    assert code == 0, out
    data = json.loads(out)
    assert data["n_train"] == 60 and data["n_complete"] == 57
    for law in data["laws"]:
        assert law["skipped"] is None, law
        assert law["n_runs"] == 60 and law["n_complete_runs"] == 57
        assert law["cv"]["from_metrics"]["n"] == 57 and law["heldout"]["heldout"]["from_metrics"]["n"] == 29
        assert law["cv"]["from_metrics"]["spearman"] > 0.9
    assert [law["n_runs_per_metric"] for law in data["laws"][:2]] == [[58, 59]] * 2
    code, out = run(["evaluate", *args])
    assert code == 0, out
    assert "57 complete runs" in out and " 60 from_metrics" in out and " 57 direct" in out
    code, out = run(["optimize", *args, "--law", "regmix_linear", "--json"])
    assert code == 0, out
    assert json.loads(out)["n_runs"] == 57


def test_a_metric_column_blank_in_every_row_is_an_error_naming_it(files: dict[str, Path]) -> None:
    train = _with_gaps(files["train_met"], {"loss_code": list(range(60))})
    args = ["laws", "evaluate", *base({**files, "train_met": train}, "mean")]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1 and "'loss_code' have no value in any row" in result.output, result.output
    assert "gaps_train_met.csv" in result.output
    code, out = run(["evaluate", *base({**files, "train_met": train}, "loss_web"), "--folds", "2"])
    assert code == 0, out  # a target that does not use the column is unaffected


def test_a_blank_mixture_weight_is_an_error_naming_its_column(files: dict[str, Path]) -> None:
    mix = pd.read_csv(files["train_mix"])
    mix.loc[[2, 9], "code"] = np.nan
    mix.to_csv(files["train_mix"], index=False)
    result = CliRunner().invoke(main, ["laws", "evaluate", *base(files, "mean")])
    assert result.exit_code == 1 and "blank cells in 'code' (2 rows)" in result.output, result.output
