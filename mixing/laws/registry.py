"""The registry of single laws: stable names (stored in Fit records) to estimator classes.

The stacked ensemble (:mod:`mixing.laws.ensemble`) builds its members here; :func:`mixing.laws.make_law`
builds any law, the ensemble included.
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
from mixing.laws.scaling import ScalingAdditiveLaw, ScalingJointLaw


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


def make_single_law(name: str, **params: Any) -> MixingLaw:
    """A new, unfitted law registered under ``name`` (the ensemble is not one: see :func:`mixing.laws.make_law`)."""
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
