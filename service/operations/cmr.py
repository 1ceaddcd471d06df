"""The critical mixture ratio of an experiment declared as continual pretraining (its spec's ``continual``).

A completed run's domain ratio is its mixture's total weight on the ``domain_group`` domains, its tokens its
value on the tokens axis, its general and domain losses the means of ``general_metrics`` and
``domain_metrics``. The CMR law (:mod:`mixing.laws.cmr`) is fitted on them and asked for the CMR at the
target tokens, with a delta-method t interval (:mod:`mixing.continual`), and validated by K-fold
cross-validation and on the runs at the largest token count. Computed for the current runs on each call.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mixing.continual import CMRAnswer, CMRValidation, GroupErrors, critical_mixture_ratio, validate_cmr_law
from mixing.errors import FitError
from mixing.laws.cmr import CMRLaw, ToleranceKind
from service.errors import Conflict, ErrorCode
from service.operations.context import fittable
from service.schemas import ContinualSpec
from service.spec import spec_of
from service.store import Store
from service.store.models import Experiment
from service.validation import check_continual

__all__ = ["LEVEL", "CMRResult", "GroupErrors", "critical_ratio"]

#: Ratios closer than this are the same ratio (a domain group's weights sum to it in any order).
RATIO_DECIMALS = 9
#: Coverage of the intervals served.
LEVEL = 0.9


@dataclass(frozen=True)
class CMRResult:
    """The answer, how well the law fits these runs, and what it was computed from."""

    answer: CMRAnswer
    validation: CMRValidation
    continual: ContinualSpec
    target_tokens: float
    n_runs: int


def critical_ratio(store: Store, exp: Experiment, seed: int | None) -> CMRResult:
    """The experiment's CMR now; the same runs give the same answer (no seed is seed 0).

    Raises :class:`Conflict` ``not_continual`` when the experiment declares no continual block; the law's
    :class:`~mixing.errors.NotEnoughDataError` (409 ``not_enough_data``) before the runs span enough
    distinct (ratio, tokens); :class:`FitError` rather than serve a non-finite value.
    """
    spec = spec_of(exp)
    block = spec.continual
    if block is None:
        raise Conflict("the experiment is not declared as continual pretraining (its spec has no 'continual')",
                       field="continual", code=ErrorCode.not_continual)
    check_continual(spec)  # checked at creation; again for a spec imported in a bundle
    obs = fittable(store.snapshot(exp), exp.id).observations
    group = [spec.domain_names.index(d) for d in block.domain_group]
    metrics = spec.objective.metrics
    ratios = np.round(obs.mixtures[:, group].sum(axis=1), RATIO_DECIMALS).clip(0.0, 1.0)
    tokens = obs.fidelities[:, spec.axis_names.index(block.tokens_axis)]
    losses = np.column_stack([obs.metrics[:, [metrics.index(m) for m in names]].mean(axis=1)
                              for names in (block.general_metrics, block.domain_metrics)])
    law = CMRLaw()
    seed = seed or 0
    target = block.target_tokens or next(a.target for a in spec.fidelities if a.name == block.tokens_axis)
    answer = critical_mixture_ratio(ratios, tokens, losses, base_general_loss=block.base_general_loss,
                                    tolerance=block.tolerance, target_tokens=target,
                                    kind=ToleranceKind(block.tolerance_kind), law=law, level=LEVEL)
    validation = validate_cmr_law(ratios, tokens, losses, seed=seed, law=law)
    if not _finite(answer, validation):
        raise FitError("the CMR law gives non-finite values for these runs")
    return CMRResult(answer=answer, validation=validation, continual=block, target_tokens=float(target),
                     n_runs=obs.n)


def _finite(answer: CMRAnswer, validation: CMRValidation) -> bool:
    values = [answer.point.ratio, answer.point.general_loss, answer.point.domain_loss,
              *(getattr(i, side) for i in (answer.ratio_interval, answer.general_interval, answer.domain_interval)
                for side in ("lower", "upper")),
              *(v for p in answer.params.values() for v in p.as_dict().values()),
              *(getattr(e, g) for e in (validation.cv, validation.heldout) if e is not None
                for g in ("general", "domain"))]
    return bool(np.all(np.isfinite(values)))
