"""The fidelity report: scores equal an independent scipy/scikit-learn computation; skips, selection, JSON."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import rankdata, spearmanr
from sklearn.linear_model import LinearRegression
from sklearn.metrics import mean_absolute_error, r2_score
from sklearn.model_selection import KFold

from mixing.errors import NotEnoughDataError
from mixing.evaluation import DIRECT, FROM_METRICS, evaluate_laws, rank, score
from mixing.laws.ensemble import ENSEMBLE, stack_weights
from mixing.laws.regmix import RegMixLinear
from mixing.selection import nested_stack, select_law
from tests.mixing.laws.synthetic import exp_law, mixtures

C = np.array([2.0, 1.5])
K = np.array([1.0, 0.5])
T = np.array([[-3.0, 0.5, 1.0], [0.3, -2.0, 0.1]])


def _data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    x = mixtures(n, 3, seed=seed)
    return x, exp_law(x, C, K, T) + np.random.default_rng(seed + 1).normal(0, 0.02, (n, 2))


def _independent(pred: np.ndarray, true: np.ndarray, k: int) -> dict[str, float]:
    """The same four scores, from scipy and scikit-learn."""
    best = int(np.argmin(true))
    return {
        "spearman": spearmanr(pred, true).statistic,
        "mae": mean_absolute_error(true, pred),
        "r2": r2_score(true, pred),
        "top_k_hit": float(best in np.argsort(pred)[:k]),
    }


def test_cv_and_heldout_scores_match_an_independent_computation() -> None:
    x, y = _data(80, 1)
    hx, hy = _data(50, 2)
    w = np.array([0.3, 0.7])
    report = evaluate_laws(["regmix_linear"], x, None, y, w, folds=4, seed=7, heldout=(hx, None, hy), top_k=5)
    entry = report.law("regmix_linear")
    oof = np.empty_like(y)
    direct_oof = np.empty(len(y))
    for train, test in KFold(4, shuffle=True, random_state=7).split(x):
        oof[test] = LinearRegression().fit(x[train], y[train]).predict(x[test])
        direct_oof[test] = LinearRegression().fit(x[train], y[train] @ w).predict(x[test])
    for route, pred in ((FROM_METRICS, oof @ w), (DIRECT, direct_oof)):
        expected = _independent(pred, y @ w, 5)
        got = entry.cv[route]
        for key, value in expected.items():
            assert getattr(got, key) == pytest.approx(value, abs=1e-10), (route, key)
    full = LinearRegression().fit(x, y).predict(hx) @ w
    expected = _independent(full, hy @ w, 5)
    assert entry.heldout is not None
    for key, value in expected.items():
        assert getattr(entry.heldout["heldout"][FROM_METRICS], key) == pytest.approx(value, abs=1e-10)
    per_metric = [spearmanr(oof[:, j], y[:, j]).statistic for j in range(2)]
    assert entry.cv_per_metric_spearman == pytest.approx(per_metric, abs=1e-10)


def test_maximised_objectives_rank_the_top_k_the_other_way() -> None:
    true = np.array([1.0, 5.0, 3.0, 4.0])
    pred = np.array([1.1, 4.0, 3.2, 4.5])
    assert score(pred, true, goal_sign=1.0, top_k=1).top_k_hit == 1.0
    assert score(pred, true, goal_sign=-1.0, top_k=1).top_k_hit == 0.0
    assert score(pred, true, goal_sign=-1.0, top_k=2).top_k_hit == 1.0


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(-5, 5), min_size=2, max_size=40))
def test_rank_matches_scipy_with_ties(values: list[int]) -> None:
    assert np.allclose(rank(values), rankdata(values))


def test_laws_that_cannot_fit_are_skipped_with_a_reason_and_the_report_is_json() -> None:
    x, y = _data(40, 3)
    report = evaluate_laws(
        ["regmix_linear", "scaling_joint", "bimix", "data_mixing_law"], x, None, y, folds=5
    )
    assert "fidelity" in (report.law("scaling_joint").skipped or "")
    assert report.law("regmix_linear").skipped is None
    assert DIRECT not in report.law("bimix").cv  # a per-domain law has no aggregate fit
    text = json.dumps(report.to_dict(), allow_nan=False)
    back = json.loads(text)
    assert back["selected"] == report.selected
    assert {e["name"] for e in back["laws"]} >= {"regmix_linear", "scaling_joint", ENSEMBLE}
    tiny = evaluate_laws(["data_mixing_law", "regmix_linear"], x[:6], None, y[:6], folds=3)
    assert "runs" in (tiny.law("data_mixing_law").skipped or "")
    with pytest.raises(NotEnoughDataError):
        evaluate_laws(["regmix_linear"], x[:3], None, y[:3])


def test_selection_picks_the_best_cross_validated_spearman_and_the_ensemble_when_better() -> None:
    x, y = _data(120, 4)
    report = evaluate_laws(["regmix_linear", "data_mixing_law"], x, None, y, folds=5, n_jobs=2)
    scores = {e.name: e.cv[FROM_METRICS].spearman for e in report.laws}
    assert report.selected == max(scores, key=lambda name: scores[name])
    assert report.ensemble_weights is not None
    assert sum(report.ensemble_weights.values()) == pytest.approx(1.0)
    assert report.ensemble_weights["data_mixing_law"] > report.ensemble_weights["regmix_linear"]
    assert report.hints()["selected_law"] == report.selected


def test_selection_rule_breaks_ties_by_mae_and_ignores_missing_scores() -> None:
    assert (
        select_law({"a": {"spearman": 0.9, "mae": 0.2}, "b": {"spearman": 0.9, "mae": 0.1}, "c": None}) == "b"
    )
    assert (
        select_law({"a": {"spearman": float("nan"), "mae": 0.1}, "b": {"spearman": 0.1, "mae": 9.0}}) == "b"
    )
    assert select_law({}) is None


def test_selection_passes_over_a_law_that_diverged_out_of_fold() -> None:
    """The tiny-LM search's report: the ensemble ranked best but carried a diverged member (MAE 2e10)."""
    scores = {"ensemble": {"spearman": 0.715, "mae": 2.15e10, "r2": -3.31e23},
              "gp": {"spearman": 0.616, "mae": 0.0807, "r2": 0.752},
              "offset": {"spearman": 0.60, "mae": 0.5, "r2": -20.0}}
    assert select_law(scores) == "gp"
    assert select_law({k: v for k, v in scores.items() if k != "gp"}) == "offset"  # offset, not diverged
    assert select_law({"ensemble": scores["ensemble"]}) == "ensemble"  # nothing better: still a choice


def test_stacking_weights_are_convex_and_nested_stacking_is_out_of_fold() -> None:
    rng = np.random.default_rng(5)
    target = rng.normal(size=200)
    good, bad = target + rng.normal(0, 0.1, 200), rng.normal(size=200)
    w = stack_weights(np.stack([bad, good]), target)
    assert np.all(w >= 0) and w.sum() == pytest.approx(1.0) and w[1] > 0.9
    folds = np.arange(200) % 5
    oof = nested_stack(np.stack([bad, good]), target, folds)
    for f in range(5):
        test = folds == f
        wf = stack_weights(np.stack([bad, good])[:, ~test], target[~test])
        assert np.allclose(oof[test], wf @ np.stack([bad, good])[:, test])


def test_law_instances_and_parallel_runs_give_the_same_report() -> None:
    x, y = _data(60, 6)
    one = evaluate_laws([RegMixLinear(), "aioli_loglinear"], x, None, y, seed=3, n_jobs=1, ensemble=False)
    two = evaluate_laws([RegMixLinear(), "aioli_loglinear"], x, None, y, seed=3, n_jobs=2, ensemble=False)
    for a, b in zip(one.laws, two.laws, strict=True):
        assert a.cv[FROM_METRICS].spearman == pytest.approx(b.cv[FROM_METRICS].spearman, abs=1e-12)


def test_stacking_gives_no_weight_to_a_member_that_extrapolates_wildly() -> None:
    """A diverged member (one fold predicting 1e10) must not leak into the ensemble through NNLS."""
    from mixing.laws.ensemble import stack_weights
    from mixing.selection import nested_stack

    rng = np.random.default_rng(0)
    t = rng.normal(3.0, 0.2, 60)
    good = t + rng.normal(0, 0.05, 60)
    fair = t + rng.normal(0, 0.1, 60)
    wild = t.copy()
    wild[:12] = 1e10  # fold 0 only
    stack = np.stack([good, fair, wild])
    w = stack_weights(stack, t)
    assert w[2] == 0.0 and np.isclose(w.sum(), 1.0)
    fold_of = np.repeat(np.arange(5), 12)
    assert np.abs(nested_stack(stack, t, fold_of) - t).max() < 1.0


def test_scored_rows_are_predicted_as_each_law_is_used_at_that_fidelity() -> None:
    """Scoring at one level: a fidelity-blind law trains on that level's runs only, so its report equals the
    report on those runs alone; a fidelity-aware law also learns from the other level's runs."""
    x_hi, y_hi = _data(40, 3)
    x_lo, y_lo = _data(60, 4)
    y_lo = y_lo + 1.0 - 0.8 * x_lo[:, :1]  # small runs: higher and ranked differently
    x, y = np.vstack([x_lo, x_hi]), np.vstack([y_lo, y_hi])
    fid = np.r_[np.zeros(60), np.ones(40)][:, None]
    high = np.arange(60, 100)
    laws = ["regmix_linear", "scaling_additive"]
    at_high = evaluate_laws(laws, x, fid, y, seed=5, score_rows=high, ensemble=False)
    alone = evaluate_laws(["regmix_linear"], x_hi, None, y_hi, seed=5, ensemble=False)
    blind, aware = at_high.law("regmix_linear"), at_high.law("scaling_additive")
    assert blind.cv[FROM_METRICS] == alone.law("regmix_linear").cv[FROM_METRICS]
    assert blind.cv[FROM_METRICS].n == aware.cv[FROM_METRICS].n == 40
    assert aware.skipped is None
    # Pooled over both levels (the default), the blind law is scored on 100 runs it cannot tell apart.
    pooled = evaluate_laws(["regmix_linear"], x, fid, y, seed=5, ensemble=False).law("regmix_linear")
    assert pooled.cv[FROM_METRICS].n == 100
