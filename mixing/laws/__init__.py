"""The mixing-law registry: stable names (stored in Fit records) to estimator classes.

``make_law(name, **params)`` builds a law; ``DEFAULT_LAWS`` are the names scored by default in a fidelity
report. The stacked ensemble lives in :mod:`mixing.selection` and is registered here lazily, because it
builds its members through this registry.
"""

from __future__ import annotations

from typing import Any

from mixing.errors import InvalidParameterError, MixingError
from mixing.laws.aioli import AioliLogLinear
from mixing.laws.base import MixingLaw
from mixing.laws.bimix import BiMixLaw
from mixing.laws.data_mixing_law import DataMixingLaw
from mixing.laws.gp import SimplexGP
from mixing.laws.regmix import RegMixLightGBM, RegMixLinear
from mixing.laws.scaling import ScalingAdditiveLaw, ScalingJointLaw, ScalingMixingLaw


class UnknownLawError(MixingError):
    """No law is registered under the requested name."""


LAWS: dict[str, type[MixingLaw]] = {
    cls.name: cls
    for cls in (
        RegMixLinear,
        RegMixLightGBM,
        DataMixingLaw,
        AioliLogLinear,
        BiMixLaw,
        ScalingAdditiveLaw,
        ScalingJointLaw,
        SimplexGP,
    )
}

#: Scored by default (every registered law; the ensemble is built from their out-of-fold predictions).
DEFAULT_LAWS: tuple[str, ...] = tuple(LAWS)


def make_law(name: str, **params: Any) -> MixingLaw:
    """A new, unfitted law (``"ensemble"`` takes ``members``: names, specs or laws; and ``weights``)."""
    if name == "ensemble":
        from mixing.selection import StackedEnsemble

        return StackedEnsemble(**params)
    name, params = _scaling_form(name, params)
    try:
        cls = LAWS[name]
    except KeyError:
        raise UnknownLawError(f"unknown law {name!r}; known: {', '.join([*LAWS, 'ensemble'])}") from None
    return cls(**params)


#: The scaling law's form as a ``variant`` parameter, which specs stored in Fit records and experiment hints
#: still carry, and the class that is that form.
_SCALING_VARIANTS: dict[str, str] = {"additive": ScalingAdditiveLaw.name, "joint": ScalingJointLaw.name}


def _scaling_form(name: str, params: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """A scaling-law spec with a ``variant`` parameter, as the registry name of that form and the rest."""
    if name not in _SCALING_VARIANTS.values() or "variant" not in params:
        return name, params
    rest = {k: v for k, v in params.items() if k != "variant"}
    try:
        return _SCALING_VARIANTS[params["variant"]], rest
    except (KeyError, TypeError):
        known = sorted(_SCALING_VARIANTS)
        raise InvalidParameterError(
            f"the 'variant' parameter of {name} must be one of {known}; got {params['variant']!r}"
        ) from None


def law_spec(law: MixingLaw) -> dict[str, Any]:
    """``{"name", "params"}``: enough to rebuild the law with :func:`make_law` (JSON-serialisable)."""
    params = {k: (v.tolist() if hasattr(v, "tolist") else v) for k, v in law.get_params(deep=False).items()}
    if law.name == "ensemble":
        params["members"] = [
            law_spec(m) if isinstance(m, MixingLaw) else m for m in params.get("members") or []
        ]
    return {"name": law.name, "params": params}


__all__ = [
    "DEFAULT_LAWS",
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
    "UnknownLawError",
    "law_spec",
    "make_law",
]
