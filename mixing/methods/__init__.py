"""Registry of search methods and the ``auto`` policy that picks one for the data at hand.

Methods are registered by name and imported on first use: the BO methods pull in torch, which a process
that only validates method names (the CLI, a web worker answering reads) should not pay for.
"""

from __future__ import annotations

import functools
import importlib

from mixing.methods.base import PredictiveMethod, Predictor, SearchContext, SearchMethod

#: Method name -> (module, class). The order is the one method names are listed in.
_REGISTRY: dict[str, tuple[str, str]] = {
    "design": ("mixing.methods.design", "DesignMethod"),
    "random": ("mixing.methods.design", "RandomMethod"),
    "regmix": ("mixing.methods.regmix", "RegMixMethod"),
    "law": ("mixing.methods.law", "LawMethod"),
    "bo": ("mixing.methods.bo", "BayesOptMethod"),
    "single-fidelity-bo": ("mixing.methods.bo", "SingleFidelityBayesOptMethod"),
}
#: The model that answers predictions for a method that fits none (design, random).
FALLBACK_MODEL = "regmix"


@functools.cache
def method_class(name: str) -> type[SearchMethod]:
    """The class registered as ``name`` (KeyError for an unknown name)."""
    module, attr = _REGISTRY[name]
    cls: type[SearchMethod] = getattr(importlib.import_module(module), attr)
    return cls


def available_methods() -> dict[str, type[SearchMethod]]:
    """Every registered method by name (importing them all)."""
    return {name: method_class(name) for name in _REGISTRY}


def method_names() -> list[str]:
    """``auto`` and every registered name, without importing any method."""
    return ["auto", *_REGISTRY]


def as_predictive(method: SearchMethod) -> PredictiveMethod:
    """The method whose model answers predictions for ``method``: itself when it fits one, else RegMix."""
    if isinstance(method, PredictiveMethod):
        return method
    fallback = method_class(FALLBACK_MODEL)()
    assert isinstance(fallback, PredictiveMethod)
    return fallback


#: Design runs of ``auto`` for a warm-started experiment (one with transfers) that configures none: the
#: transfers' maps need a few own runs spread out (``bench/warm_start_replay.py`` uses 8), not ``2 x domains``.
WARM_INITIAL_RUNS = 8


def initial_runs(ctx: SearchContext, configured: int | None) -> int:
    if configured is not None:
        return configured
    return WARM_INITIAL_RUNS if ctx.transfers is not None else max(10, 2 * ctx.problem.n_domains)


def resolve_method(name: str, ctx: SearchContext, configured_initial: int | None = None) -> SearchMethod:
    """The method to run for ``name``; ``auto`` designs first, then BO across fidelities, else a law."""
    if name != "auto":
        return method_class(name)()
    if ctx.observations.n < initial_runs(ctx, configured_initial):
        return method_class("design")()
    return resolve_recommender(name, ctx)


def resolve_recommender(name: str, ctx: SearchContext) -> SearchMethod:
    """The model used for recommendations and predictions when the caller names none."""
    if name != "auto":
        return method_class(name)()
    if len(ctx.observations.distinct_fidelities()) > 1:
        return method_class("bo")()
    return method_class("law")()


__all__ = [
    "FALLBACK_MODEL",
    "WARM_INITIAL_RUNS",
    "PredictiveMethod",
    "Predictor",
    "SearchContext",
    "SearchMethod",
    "as_predictive",
    "available_methods",
    "initial_runs",
    "method_class",
    "method_names",
    "resolve_method",
    "resolve_recommender",
]
