"""The tiny-LM study's pure logic (statistics, target objective, mixtures, RegMix's top-k) and one miniature
study end to end against an embedded service (tiny models, a few thousand tokens per run)."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from mixopt_client import MixoptClient
from scipy import stats as scipy_stats

from examples.tiny_lm import orchestrate, report
from examples.tiny_lm.connection import connect
from examples.tiny_lm.corpus import Domain, as_target, load_corpus
from examples.tiny_lm.stats import compare, mean, pooled_sd, sample_sd, spearman, standard_error
from examples.tiny_lm.study import (
    STRATEGIES,
    Study,
    StudyPlan,
    baseline_mixtures,
    comparisons,
    noise_summary,
    random_mixtures,
    top_k_average,
)
from examples.tiny_lm.train import TrainConfig

CPU = torch.device("cpu")


def test_standard_error_and_pooled_sd() -> None:
    xs = [1.0, 2.0, 4.0]
    assert mean(xs) == pytest.approx(7 / 3)
    assert sample_sd(xs) == pytest.approx(float(torch.tensor(xs).std()))
    assert standard_error(xs) == pytest.approx(sample_sd(xs) / math.sqrt(3))
    assert sample_sd([5.0]) == 0.0
    # Pooled over groups: deviations from each group's own mean, n - 1 degrees of freedom per group.
    assert pooled_sd([[1.0, 3.0], [10.0, 12.0, 14.0], [7.0]]) == pytest.approx(math.sqrt((2 + 8) / 3))
    with pytest.raises(ValueError):
        pooled_sd([[1.0], [2.0]])


def test_spearman_matches_scipy_with_ties() -> None:
    a = [3.0, 1.0, 2.0, 2.0, 5.0, 4.0]
    b = [2.9, 1.5, 2.5, 2.0, 4.0, 4.5]
    assert spearman(a, b) == pytest.approx(scipy_stats.spearmanr(a, b).statistic)
    assert spearman([1.0, 2.0, 3.0], [3.0, 2.0, 1.0]) == pytest.approx(-1.0)
    assert spearman([1.0, 1.0, 1.0], [1.0, 2.0, 3.0]) == 0.0


def test_compare_needs_more_than_two_standard_errors() -> None:
    better = compare([1.0, 1.1, 0.9], [2.0, 2.1, 1.9])
    se = 0.1 / math.sqrt(3)
    assert better.diff == pytest.approx(-1.0) and better.se == pytest.approx(math.hypot(se, se))
    assert better.better and better.z < -2
    close = compare([1.0, 1.1, 0.9], [1.1, 1.2, 1.0])  # 0.1 apart with an SE of 0.08: not significant
    assert close.diff < 0 and not close.better
    assert not compare([2.0, 2.0], [1.0, 1.0]).better


def test_target_objective_and_held_out_domain_in_the_spec() -> None:
    plan = orchestrate.Plan(
        sizes=["xxs", "xs"], tokens=[100, 200], rounds=1, per_round=1, initial=2, initial_larger=1,
        final_seeds=1, objective_domains=("pydoc", "code"), held_out=("pydoc",),
        unit_cost_s={"xxs": 0.5, "xs": 2.0},
    )
    losses = {"code": 2.0, "man": 3.0, "pydoc": 4.0}
    assert plan.objective(losses) == pytest.approx(3.0)
    assert orchestrate.Plan(**{**plan.__dict__, "objective_domains": ()}).objective(losses) == pytest.approx(2.5)
    empty = torch.zeros(300, dtype=torch.uint8)
    domains = [Domain(n, empty, empty, 1.0 + i, 1) for i, n in enumerate(["code", "man", "pydoc"])]
    spec = orchestrate.experiment_spec("t", domains, plan, "cpu")
    assert [d["name"] for d in spec["domains"]] == ["code", "man"]  # the held-out domain is not mixed
    assert sum(d["prior"] for d in spec["domains"]) == pytest.approx(1.0)
    assert spec["objective"] == {"metrics": ["loss/pydoc", "loss/code"], "aggregate": "mean", "goal": "minimize"}


def test_as_target_scores_all_of_a_held_out_domain() -> None:
    d = Domain("pydoc", torch.arange(10, dtype=torch.uint8), torch.arange(10, 13, dtype=torch.uint8), 1.0, 1)
    t = as_target(d)
    assert t.val.tolist() == list(range(13)) and torch.equal(t.train, d.train)


def test_mixtures_and_regmix_top_k() -> None:
    names = ["a", "b", "c"]
    base = baseline_mixtures(names, {"a": 0.5, "b": 0.3, "c": 0.2})
    assert list(base) == ["uniform", "natural", "only a", "only b", "only c"]
    assert base["only b"] == {"a": 0.0, "b": 1.0, "c": 0.0}
    rand = random_mixtures(names, 50)
    assert rand == random_mixtures(names, 50) and rand != random_mixtures(names, 50, seed=8)
    assert all(sum(m.values()) == pytest.approx(1.0) and min(m.values()) >= 0 for m in rand)
    cands = [{"a": 1.0, "b": 0.0, "c": 0.0}, {"a": 0.0, "b": 1.0, "c": 0.0}, {"a": 0.0, "b": 0.0, "c": 1.0}]
    assert top_k_average(cands, [0.3, 0.1, 0.2], 2) == {"a": 0.0, "b": 0.5, "c": 0.5}
    assert top_k_average(cands, [0.3, 0.1, 0.2], 1) == cands[1]


def test_noise_summary_and_comparisons() -> None:
    runs = [{"label": k, "objective": v} for k, vs in {"u": [2.0, 2.2], "n": [3.0, 3.2]}.items() for v in vs]
    s = noise_summary(runs)
    assert s["spread"] == pytest.approx(1.0) and s["pooled_sd"] == pytest.approx(math.sqrt(0.02))
    assert s["ratio"] == pytest.approx(1.0 / math.sqrt(0.02))
    finals = {"service": [1.0, 1.01, 0.99], "regmix": [1.5, 1.4, 1.6], "uniform": [1.0, 1.2, 0.8]}
    out = comparisons(finals, ["uniform", "natural", "service", "regmix"])
    assert set(out) == {"service", "regmix"}  # random did not run; natural is not in the finals
    assert out["service"]["regmix"]["better"] and not out["service"]["uniform"]["better"]
    assert "service" not in out["service"]


@pytest.fixture(scope="module")
def client() -> Iterator[MixoptClient]:
    with connect(None) as c:
        yield c


@pytest.mark.slow
def test_study_end_to_end(client: MixoptClient, tmp_path: Path) -> None:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        domains = load_corpus(["code", "pydoc", "legal"], cap_bytes=60_000, log=lambda _: None)
        plan = StudyPlan(
            sizes=["xxs", "xs"], tokens=[2048, 4096], objective_domains=("pydoc", "code"), held_out=("pydoc",),
            seeds=2, random_mixtures=1, budget_s=0.05, initial=8, initial_larger=1, per_round=1,
            regmix_candidates=200, regmix_top_k=8, online_hp={"probe_steps": 1, "sweeps": 1, "exploit_steps": 2},
            observe_windows=2, base=TrainConfig("xxs", 2048, context=32, batch=4, eval_windows=4),
        )
        data = Study(client, domains, plan, CPU, tmp_path, log=lambda _: None).run_all()
    finally:
        torch.set_num_threads(before)

    assert list(json.loads((tmp_path / "study.json").read_text())) == [
        "setup", "calibration", "noise", "correlation", "search/service", "search/regmix", "search/random",
        "finals", "online",
    ]
    assert data["setup"]["domains"] == ["code", "legal"]  # pydoc is held out
    assert len(data["noise"]["runs"]) == 4 * 2 and data["noise"]["summary"]["pooled_sd"] > 0
    assert data["correlation"]["spearman"]["xs"]["xs"] == pytest.approx(1.0)
    budget = data["search/service"]["cost_s"]
    for s in ("regmix", "random"):
        runs = data[f"search/{s}"]["runs"]
        assert {r["size"] for r in runs} == {"xxs" if s == "regmix" else "xs"}
        step = runs[0]["cost_s"]
        assert data[f"search/{s}"]["cost_s"] <= budget + step / 2  # the same budget, to half a run
    for s in STRATEGIES:
        mixture = data[f"search/{s}"]["recommendation"]["mixture"]
        assert set(mixture) == {"code", "legal"} and sum(mixture.values()) == pytest.approx(1.0)
    assert data["finals"]["summary"]["service"]["n"] == 2
    assert set(data["finals"]["comparisons"]["service"]) >= {"uniform", "natural", "regmix", "random"}
    assert data["online"]["posted_steps"][-1] == data["online"]["steps"]
    text = report.study_tables(data)
    assert "done-when" in text and "Spearman" in text
    assert (tmp_path / "study-search.png").exists() and (tmp_path / "study-compare.png").exists()
