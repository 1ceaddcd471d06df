"""The tiny-LM continual-pretraining script's analysis, on runs drawn from the CMR law (no training): what it
reports is the law's validation and its CMR, and a misfit shows in the held-out error it reports."""

from __future__ import annotations

import json

import numpy as np
import pytest

from examples.tiny_lm.continual import Plan, Run, analyse, report
from mixing.laws.cmr import ToleranceKind
from tests.mixing.laws.synthetic import cmr_losses, cmr_runs, true_cmr

BASE = float(cmr_losses(np.zeros(1), np.array([1e8]))[0, 0])
PLAN = Plan(tolerance=0.02, kind=ToleranceKind.absolute)


def runs(noise: float, seed: int) -> list[Run]:
    r, t, y = cmr_runs(noise, seed)
    return [Run(float(a), int(b), float(g), float(d)) for a, b, (g, d) in zip(r, t, y, strict=True)]


def test_the_analysis_recovers_the_cmr_and_reports_json() -> None:
    analysis = analyse(runs(0.005, 0), base_general=BASE, plan=PLAN, target_tokens=4e9)
    assert analysis.limit == pytest.approx(BASE + 0.02)
    assert analysis.answer.point.ratio == pytest.approx(true_cmr(BASE + 0.02, 4e9), abs=0.05)
    out = report(analysis, BASE, PLAN)
    assert json.loads(json.dumps(out)) == out
    assert out["heldout_mae"]["general"] < 0.02 and out["n_heldout"] == 5
    lo, hi = out["cmr_interval"]
    assert lo <= out["cmr"] <= hi


def test_a_relative_tolerance_is_read_against_the_base_loss() -> None:
    plan = Plan(tolerance=0.01, kind=ToleranceKind.relative)
    assert analyse(runs(0.005, 0), base_general=BASE, plan=plan, target_tokens=4e9).limit == pytest.approx(BASE * 1.01)


def test_losses_that_stop_following_the_law_show_in_the_reported_held_out_error() -> None:
    bent = [Run(r.ratio, r.tokens, r.general + (0.3 if r.tokens == 8e8 else 0.0), r.domain) for r in runs(0.005, 1)]
    out = report(analyse(bent, base_general=BASE, plan=PLAN, target_tokens=4e9), BASE, PLAN)
    assert out["heldout_mae"]["general"] > 0.1
