"""The mixing-law registry: stable names (stored in Fit records) to estimator classes.

``make_law(name, **params)`` builds a law; ``DEFAULT_LAWS`` are the names scored by default in a fidelity
report. The stacked ensemble lives in :mod:`mixing.selection` and is registered here lazily, because it
builds its members through this registry.
"""

from __future__ import annotations

from typing import Any

from mixing.errors import MixingError
from mixing.laws.aioli import AioliLogLinear
from mixing.laws.base import MixingLaw
from mixing.laws.bimix import BiMixLaw
from mixing.laws.data_mixing_law import DataMixingLaw
from mixing.laws.gp import SimplexGP
from mixing.laws.regmix import RegMixLightGBM, RegMixLinear
from mixing.laws.scaling import ScalingAdditiveLaw, ScalingMixingLaw


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
        ScalingMixingLaw,
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
    try:
        cls = LAWS[name]
    except KeyError:
        raise UnknownLawError(f"unknown law {name!r}; known: {', '.join([*LAWS, 'ensemble'])}") from None
    return cls(**params)


def law_spec(law: MixingLaw) -> dict[str, Any]:
    """``{"name", "params"}``: enough to rebuild the law with :func:`make_law` (JSON-serialisable)."""
    params = {k: (v.tolist() if hasattr(v, "tolist") else v) for k, v in law.get_params(deep=False).items()}
    if law.name == "ensemble":
        params["members"] = [
            law_spec(m) if isinstance(m, MixingLaw) else m for m in params.get("members") or []
        ]
    return {"name": law.name, "params": params}


__all__ = ["LAWS", "DEFAULT_LAWS", "MixingLaw", "UnknownLawError", "law_spec", "make_law"]
