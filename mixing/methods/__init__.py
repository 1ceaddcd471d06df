"""Registry of search methods and the ``auto`` policy that picks one for the data at hand.

Optional methods (the law engine, BO) register only if their modules import, so the core works
before they exist and picks them up when they do.
"""

from __future__ import annotations

import importlib

from mixing.methods.base import SearchContext, SearchMethod
from mixing.methods.design import DesignMethod, RandomMethod
from mixing.methods.regmix import RegMixMethod

_CORE: dict[str, type] = {"design": DesignMethod, "random": RandomMethod, "regmix": RegMixMethod}
_OPTIONAL = {"law": ("mixing.methods.law", "LawMethod"), "bo": ("mixing.methods.bo", "BayesOptMethod"),
             "single-fidelity-bo": ("mixing.methods.bo", "SingleFidelityBayesOptMethod")}


def available_methods() -> dict[str, type]:
    out = dict(_CORE)
    for name, (module, attr) in _OPTIONAL.items():
        try:
            out[name] = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError):
            continue
    return out


def method_names() -> list[str]:
    return ["auto", *available_methods()]


def initial_runs(ctx: SearchContext, configured: int | None) -> int:
    return configured if configured is not None else max(10, 2 * ctx.problem.n_domains)


def resolve_method(name: str, ctx: SearchContext, configured_initial: int | None = None) -> SearchMethod:
    """The method to run for ``name``; ``auto`` designs first, then BO across fidelities, else a law."""
    methods = available_methods()
    if name != "auto":
        return methods[name]()
    obs = ctx.observations
    if obs.n < initial_runs(ctx, configured_initial):
        return DesignMethod()
    if "bo" in methods and len(obs.distinct_fidelities()) > 1:
        return methods["bo"]()
    if "law" in methods:
        return methods["law"]()
    return RegMixMethod()


def resolve_recommender(name: str, ctx: SearchContext) -> SearchMethod:
    """The model used for recommendations and predictions when the caller names none."""
    methods = available_methods()
    if name != "auto":
        return methods[name]()
    if "bo" in methods and len(ctx.observations.distinct_fidelities()) > 1:
        return methods["bo"]()
    if "law" in methods:
        return methods["law"]()
    return RegMixMethod()
