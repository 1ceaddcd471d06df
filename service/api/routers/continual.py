"""``GET /v1/experiments/{id}/cmr``: the critical mixture ratio of a continual-pretraining experiment."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field

from service.api.deps import ExperimentDep, State
from service.api.request_body import CheckedRoute
from service.operations.cmr import LEVEL, GroupErrors, critical_ratio
from service.schemas import PredictionOut

router = APIRouter(prefix="/v1/experiments/{experiment_id}", tags=["continual"], route_class=CheckedRoute)


class RatioInterval(BaseModel):
    lower: float
    upper: float


class GroupLaw(BaseModel):
    """One group's fitted ``E + A * T**-alpha * (share + offset)**-beta`` (``T`` in raw tokens)."""

    E: float
    A: float
    alpha: float
    beta: float


class GroupMAE(BaseModel):
    general: float
    domain: float


class CMRValidationOut(BaseModel):
    cv_mae: GroupMAE | None = Field(description="K-fold cross-validated mean absolute error of each group's "
                                                "loss; null when a fold has too few runs to fit")
    folds: int
    heldout_mae: GroupMAE | None = Field(description="error on the runs at the largest token count, fitted on "
                                                     "the smaller ones; null when those cannot be fitted")
    heldout_tokens: float
    n_heldout: int


class CMROut(BaseModel):
    cmr: float = Field(description="the largest domain ratio whose predicted general loss at target_tokens stays "
                                   "within the tolerance of base_general_loss (0 when none does)")
    interval: RatioInterval = Field(description="interval of the CMR at `level` (delta method, Student's t on "
                                                     "`residual_dof`), within [0, 1]")
    level: float
    feasible: bool = Field(description="whether some ratio keeps the general loss within the tolerance")
    general_loss: PredictionOut = Field(description="predicted general loss at the CMR, with its interval")
    domain_loss: PredictionOut = Field(description="predicted domain loss at the CMR, with its interval")
    target_tokens: float
    base_general_loss: float
    tolerance: float
    tolerance_kind: Literal["absolute", "relative"]
    params: dict[str, GroupLaw] = Field(description="the fitted law of each group, `general` and `domain`")
    validation: CMRValidationOut
    n_runs: int
    residual_dof: int = Field(description="residual degrees of freedom of each group's fit (runs minus four "
                                          "parameters): the intervals' t quantile has them")


@router.get("/cmr", response_model=CMROut)
def get_cmr(exp: ExperimentDep, st: State) -> CMROut:
    """The critical mixture ratio of an experiment declared as continual pretraining (`continual` in its
    spec): the CMR law fitted on the completed runs at several (domain ratio, tokens), the CMR at the target
    tokens with a 90% interval, the general and domain losses predicted there, the fitted
    parameters, and the law's cross-validated and larger-token held-out errors. 409 `not_continual` for
    an experiment without `continual`; 409 `not_enough_data` before runs at 6 distinct (ratio, tokens)
    spanning two token counts.
    """
    result = critical_ratio(st.store, exp, st.settings.seed)
    a, v, block = result.answer, result.validation, result.continual
    return CMROut(
        cmr=a.point.ratio, interval=RatioInterval(lower=a.ratio_interval.lower, upper=a.ratio_interval.upper),
        level=LEVEL, feasible=a.point.feasible,
        general_loss=PredictionOut(value=a.point.general_loss, lower=a.general_interval.lower,
                                   upper=a.general_interval.upper),
        domain_loss=PredictionOut(value=a.point.domain_loss, lower=a.domain_interval.lower,
                                  upper=a.domain_interval.upper),
        target_tokens=result.target_tokens, base_general_loss=block.base_general_loss, tolerance=block.tolerance,
        tolerance_kind=block.tolerance_kind,
        params={name: GroupLaw(**p.as_dict()) for name, p in a.params.items()},
        validation=CMRValidationOut(cv_mae=_mae(v.cv), folds=v.folds, heldout_mae=_mae(v.heldout),
                                    heldout_tokens=v.heldout_tokens, n_heldout=v.n_heldout),
        n_runs=result.n_runs, residual_dof=a.residual_dof)


def _mae(errors: GroupErrors | None) -> GroupMAE | None:
    return None if errors is None else GroupMAE(general=errors.general, domain=errors.domain)
