"""The tiny-LM replay pool without training: its mixtures, its nested target subset, and its CSV loading into
``bench/mf_family.py``'s pool structure, replayed by one method with the family's scoring."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import spearmanr

from bench.mf_family import Replay, load_csv_pool, run_random
from examples.tiny_lm.pool import pool_mixtures, size_spearman, target_subset

DOMAINS = ("code", "man", "legal", "changelog")


def test_pool_mixtures_start_with_the_baselines_and_are_seeded() -> None:
    natural = {"code": 0.1, "man": 0.6, "legal": 0.1, "changelog": 0.2}
    mixtures = pool_mixtures(list(DOMAINS), natural, 12, seed=3)
    assert [label for label, _ in mixtures[:3]] == ["uniform", "natural", "only code"]
    assert len(mixtures) == 12
    assert all(sum(m.values()) == pytest.approx(1.0) for _, m in mixtures)
    assert mixtures == pool_mixtures(list(DOMAINS), natural, 12, seed=3)
    assert pool_mixtures(list(DOMAINS), natural, 20, seed=3)[:12] == mixtures  # a larger pool extends it
    assert mixtures[6:] != pool_mixtures(list(DOMAINS), natural, 12, seed=4)[6:]


def test_the_target_subset_is_a_seeded_quarter_that_a_larger_pool_keeps() -> None:
    subset = target_subset(32, seed=11)
    assert len(subset) == 8
    assert [i // 4 for i in subset] == list(range(8))  # one of every 4 consecutive mixtures
    assert target_subset(64, seed=11)[:8] == subset
    assert subset == target_subset(32, seed=11) != target_subset(32, seed=12)


def _write_pool(path: Path, n: int, at_target: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A two-level table in the pool script's columns: cheap rows cost 2.0 (device-seconds), target rows 30."""
    w = rng.dirichlet(np.ones(len(DOMAINS)), n)
    cheap = w @ np.array([1.0, 2.0, 3.0, 4.0]) + 0.1 * rng.standard_normal(n)
    target = w @ np.array([4.0, 1.0, 2.0, 3.0])
    high = list(range(0, n, n // at_target))[:at_target]
    with path.open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["index", "label", *DOMAINS, "size", "params", "cost", "objective"])
        for i in range(n):
            out.writerow([i, f"m{i}", *w[i], "xs", 124672, 2.0, cheap[i]])
        for i in high:
            out.writerow([i, f"m{i}", *w[i], "s", 644224, 30.0, target[i]])
    return cheap[high], target[high]


def test_a_csv_pool_loads_as_a_family_pool_and_replays(tmp_path: Path) -> None:
    path = tmp_path / "pool.csv"
    cheap, target = _write_pool(path, 24, 6, np.random.default_rng(0))
    fp = load_csv_pool(path, DOMAINS)

    assert (fp.low, fp.high) == (124672.0, 644224.0)
    assert fp.cost_ratio == pytest.approx(15.0)
    assert sorted(set(fp.pool.cost)) == pytest.approx([1.0, 15.0])
    assert fp.spearman == pytest.approx(spearmanr(cheap, target)[0])
    assert fp.requested == fp.spearman and fp.theta is None
    assert fp.describe()["target_mixtures"] == 6
    by_cost = load_csv_pool(path, DOMAINS, fidelity="cost")
    assert (by_cost.low, by_cost.high) == (2.0, 30.0) and by_cost.spearman == fp.spearman

    replay = Replay(fp, "random", seed=0, budget=60.0)
    run_random(replay)
    trace = replay.finish(0.0)
    assert trace.runs_high == 4 and trace.runs_low == 0  # one batch of 4 target runs spends the budget
    assert trace.values and min(trace.values) >= target.min()


def test_a_csv_pool_needs_its_columns_and_two_levels(tmp_path: Path) -> None:
    path = tmp_path / "pool.csv"
    _write_pool(path, 8, 2, np.random.default_rng(1))
    with pytest.raises(ValueError, match="'words'"):
        load_csv_pool(path, (*DOMAINS, "words"))
    one_level = tmp_path / "one.csv"
    one_level.write_text("code,man,legal,changelog,params,cost,objective\n1,0,0,0,5,1,3.0\n0,1,0,0,5,1,2.0\n")
    with pytest.raises(ValueError, match="two values"):
        load_csv_pool(one_level, DOMAINS)


def test_size_spearman_uses_only_the_mixtures_at_both_sizes() -> None:
    rows = [{"index": i, "size": "xs", "objective": float(i)} for i in range(5)]
    rows += [{"index": i, "size": "s", "objective": float(-i)} for i in (1, 3, 4)]
    assert size_spearman(rows, "xs", "s") == (pytest.approx(-1.0), 3)
