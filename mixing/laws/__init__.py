"""The mixing-law registry: stable names (stored in Fit records) to estimator classes.

``make_law(name, **params)`` builds a law; ``DEFAULT_LAWS`` are the names scored by default in a fidelity
report. The single laws are registered in :mod:`mixing.laws.registry`; the stacked ensemble
(:mod:`mixing.laws.ensemble`) builds its members there.
"""

from __future__ import annotations

from typing import Any

from mixing.laws.aioli import AioliLogLinear
from mixing.laws.base import MixingLaw
from mixing.laws.bimix import BiMixLaw
from mixing.laws.data_mixing_law import DataMixingLaw
from mixing.laws.ensemble import ENSEMBLE, StackedEnsemble
from mixing.laws.gp import SimplexGP
from mixing.laws.registry import DEFAULT_LAWS, LAWS, UnknownLawError, make_single_law
from mixing.laws.regmix import RegMixLightGBM, RegMixLinear
from mixing.laws.scaling import ScalingAdditiveLaw, ScalingJointLaw, ScalingMixingLaw


def make_law(name: str, **params: Any) -> MixingLaw:
    """A new, unfitted law (``"ensemble"`` takes ``members``: names, specs or laws; and ``weights``)."""
    if name == ENSEMBLE:
        return StackedEnsemble(**params)
    return make_single_law(name, **params)


def law_spec(law: MixingLaw) -> dict[str, Any]:
    """``{"name", "params"}``: enough to rebuild the law with :func:`make_law` (JSON-serialisable)."""
    params = {k: (v.tolist() if hasattr(v, "tolist") else v) for k, v in law.get_params(deep=False).items()}
    if law.name == ENSEMBLE:
        params["members"] = [
            law_spec(m) if isinstance(m, MixingLaw) else m for m in params.get("members") or []
        ]
    return {"name": law.name, "params": params}


__all__ = [
    "DEFAULT_LAWS",
    "ENSEMBLE",
    "LAWS",
    "AioliLogLinear",
    "BiMixLaw",
    "DataMixingLaw",
    "MixingLaw",
    "RegMixLightGBM",
    "RegMixLinear",
    "ScalingAdditiveLaw",
    "ScalingJointLaw",
    "ScalingMixingLaw",
    "SimplexGP",
    "StackedEnsemble",
    "UnknownLawError",
    "law_spec",
    "make_law",
]
