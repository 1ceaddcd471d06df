"""Tables with gaps: a run lacking a metric counts for the metrics it has; scores use the complete runs."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LinearRegression

from mixing.evaluation import DIRECT, FROM_METRICS, EvaluationReport, evaluate_laws, score
from mixing.laws.ensemble import ENSEMBLE
from mixing.laws.observed import EmptyMetricError, fit_observed
from mixing.laws.regmix import RegMixLinear
from tests.mixing.laws.synthetic import exp_law, mixtures

C = np.array([2.0, 1.5, 1.8, 2.2])
K = np.array([1.0, 0.5, 0.8, 0.6])
T = np.array([[-3.0, 0.5, 1.0], [0.3, -2.0, 0.1], [0.5, 0.5, -2.5], [-1.0, -1.0, 0.2]])
LAWS = ["regmix_linear", "aioli_loglinear"]


def _table(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    x = mixtures(n, 3, seed=seed)
    return x, exp_law(x, C, K, T) + np.random.default_rng(seed + 1).normal(0, 0.02, (n, len(C)))


def _blank(y: np.ndarray, share: float, seed: int) -> np.ndarray:
    """A copy of ``y`` with ``share`` of its cells (at least one) set to NaN."""
    out = y.copy()
    rng = np.random.default_rng(seed)
    cells = rng.choice(out.size, max(1, round(share * out.size)), replace=False)
    out.flat[cells] = np.nan
    return out


def _chosen(report: EvaluationReport) -> str | None:
    """The selected law; for the ensemble, its most trusted member (the two often tie within noise)."""
    if report.selected != ENSEMBLE or report.ensemble_weights is None:
        return report.selected
    return max(report.ensemble_weights, key=report.ensemble_weights.__getitem__)


@pytest.mark.parametrize("seed", [3, 4, 5])
def test_one_percent_blanked_cells_give_the_scores_and_selection_of_the_complete_table(seed: int) -> None:
    x, y = _table(300, 1)
    hx, hy = _table(150, 2)
    gy, ghy = _blank(y, 0.01, seed), _blank(hy, 0.01, seed + 10)
    complete = evaluate_laws(LAWS, x, None, y, folds=2, heldout=(hx, None, hy), seed=0)
    gaps = evaluate_laws(LAWS, x, None, gy, folds=2, heldout=(hx, None, ghy), seed=0)
    assert _chosen(gaps) == _chosen(complete)
    assert gaps.n_runs == 300 and gaps.n_complete == int(np.isfinite(gy).all(axis=1).sum()) < 300
    for name in LAWS:
        full, gap = complete.law(name), gaps.law(name)
        assert gap.skipped is None, gap.skipped
        assert gap.n_runs == 300 and gap.n_complete_runs == gaps.n_complete
        assert gap.n_runs_per_metric == np.isfinite(gy).sum(axis=0).tolist()
        for route in (FROM_METRICS, DIRECT):
            assert gap.cv[route].n == gaps.n_complete
            assert gap.cv[route].spearman == pytest.approx(full.cv[route].spearman, abs=0.02), (name, route)
            held, held_full = gap.heldout["heldout"][route], full.heldout["heldout"][route]
            assert held.n == int(np.isfinite(ghy).all(axis=1).sum()) < 150
            assert held.spearman == pytest.approx(held_full.spearman, abs=0.02), (name, route)
            assert held.mae == pytest.approx(held_full.mae, rel=0.1), (name, route)


def test_each_metric_is_fitted_on_the_runs_that_report_it() -> None:
    x, y = _table(60, 5)
    gy = y.copy()
    gy[[3, 7], 0] = np.nan
    gy[[10], 2] = np.nan
    fitted = fit_observed(RegMixLinear(), x, None, gy)
    pred = fitted.predict(x)
    for j in range(y.shape[1]):
        rows = np.isfinite(gy[:, j])
        expected = LinearRegression().fit(x[rows], gy[rows, j]).predict(x)
        np.testing.assert_allclose(pred[:, j], expected, atol=1e-10)
    assert len(fitted.laws) == 3  # metrics 1 and 3 are reported by every run: fitted together
    whole = fit_observed(RegMixLinear(), x, None, y)
    np.testing.assert_allclose(whole.predict(x), RegMixLinear().fit(x, None, y).predict(x), atol=1e-12)


def test_a_metric_no_run_reports_is_an_error_naming_its_column() -> None:
    x, y = _table(40, 6)
    y[:, 2] = np.nan
    with pytest.raises(EmptyMetricError, match=r"\[2\]"):
        evaluate_laws(LAWS, x, None, y, folds=2)


def test_scores_leave_out_runs_without_an_observed_value() -> None:
    pred, true = np.array([1.0, 2.0, 3.0, 4.0]), np.array([1.1, np.nan, 2.9, 4.2])
    got = score(pred, true, top_k=1)
    expected = score(pred[[0, 2, 3]], true[[0, 2, 3]], top_k=1)
    assert got == expected and got.n == 3
