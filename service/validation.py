"""Checks that need the experiment's spec: domain names, sums, bounds, fidelity ranges, metrics.

Each failure raises :class:`InvalidInput` naming the field path, before anything is written, so a rejected
request changes nothing stored.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from mixing.errors import InfeasibleConstraintsError
from mixing.laws import LAWS
from mixing.methods import method_names
from mixing.problem import Candidates, FidelitySpace, OutcomeConstraint, Problem, TradeOff
from mixing.simplex import SUM_TOLERANCE, SimplexConstraints
from service.errors import ErrorCode, InvalidInput
from service.schemas import PRIOR_BASELINE, CandidateIn, ObjectiveSpec
from service.spec import ExperimentSpec

#: Mixtures must sum to 1 within this tolerance (after the client's own rounding: the Python client
#: renormalises rows it reads from CSV; see README "Mixture tolerance").
MIXTURE_SUM_TOLERANCE = SUM_TOLERANCE


def constraints_from_spec(spec: ExperimentSpec) -> SimplexConstraints:
    tokens = [d.tokens_available for d in spec.domains]
    has_tokens = any(t is not None for t in tokens)
    try:
        return SimplexConstraints.from_spec(
            len(spec.domains),
            min_weight=[d.min_weight for d in spec.domains],
            max_weight=[d.max_weight for d in spec.domains],
            tokens_available=[math.nan if t is None else t for t in tokens] if has_tokens else None,
            max_epochs=spec.budget.max_epochs,
            target_tokens=spec.budget.target_tokens,
        )
    except InfeasibleConstraintsError as exc:
        raise InvalidInput(f"no mixture satisfies the domain bounds: {exc}", field="domains",
                           code=ErrorCode.infeasible_constraints) from exc


def metric_weights(objective: ObjectiveSpec) -> np.ndarray:
    """The objective's metric weights, summing to 1 (a weighted mean's ``weights`` are required at creation)."""
    if objective.aggregate == "weighted_mean" and objective.weights is not None:
        return scaled_to_sum_one(objective.weights)
    return np.full(len(objective.metrics), 1.0 / len(objective.metrics))


def scaled_to_sum_one(values: Sequence[float]) -> np.ndarray:
    """Non-negative ``values`` (not all zero) divided by their sum, taken after dividing by the largest.

    Requests cap weights and priors (README "Magnitudes"), but a spec stored before, or imported, may hold
    ``[1e308, 1e308]``, whose plain sum overflows and would turn every weight into 0.
    """
    w = np.asarray(values, dtype=np.float64)
    w = w / w.max()
    return w / w.sum()


def prior_mixture(spec: ExperimentSpec) -> np.ndarray | None:
    """The domains' priors as a mixture; None when none is declared."""
    priors = [d.prior for d in spec.domains]
    given = [p or 0.0 for p in priors]
    return None if all(p is None for p in priors) or max(given) <= 0 else scaled_to_sum_one(given)


def problem_from_spec(spec: ExperimentSpec, baseline_runs: Mapping[str, Sequence[float]] | None = None) -> Problem:
    """The spec as a :class:`Problem`. ``baseline_runs`` maps the run ids that outcome constraints are
    relative to onto those runs' mixtures; a constraint whose run is not in it is left out (callers that
    recommend resolve them all, see :func:`service.operations.context.search_context`)."""
    prior = prior_mixture(spec)
    axes = spec.fidelities
    names = spec.model_metrics
    weights = np.zeros(len(names))
    weights[: len(spec.objective.metrics)] = metric_weights(spec.objective)
    outcomes = []
    for c in spec.objective.constraints:
        baseline = prior if c.relative_to == PRIOR_BASELINE else (baseline_runs or {}).get(c.relative_to or "")
        if c.relative_to is not None and baseline is None:
            continue
        outcomes.append(OutcomeConstraint(
            metric=names.index(c.metric), upper=c.op == "<=", bound=c.bound, slack=c.slack,
            baseline=None if baseline is None else np.asarray(baseline, dtype=np.float64)))
    return Problem(
        domains=tuple(spec.domain_names),
        constraints=constraints_from_spec(spec),
        metric_names=tuple(names),
        metric_weights=weights,
        goal=spec.objective.goal,
        prior=prior,
        fidelity=FidelitySpace(
            names=tuple(spec.axis_names),
            lower=np.array([a.min for a in axes], dtype=np.float64),
            upper=np.array([a.max for a in axes], dtype=np.float64),
            target=np.array([a.target for a in axes], dtype=np.float64),
        ),
        outcome_constraints=tuple(outcomes),
        feasibility_probability=spec.objective.feasibility_probability,
        trade_offs=tuple(TradeOff(metric=names.index(t.metric), minimize=t.goal == "minimize")
                         for t in spec.objective.tradeoffs),
        declared_costs=declared_costs(spec),
    )


def baseline_run_ids(spec: ExperimentSpec) -> list[tuple[int, str]]:
    """(constraint index, run id) of each outcome constraint relative to a run."""
    return [(i, c.relative_to) for i, c in enumerate(spec.objective.constraints)
            if c.relative_to is not None and c.relative_to != PRIOR_BASELINE]


def check_outcome_constraints(spec: ExperimentSpec) -> None:
    """A constraint relative to the prior needs the domains' priors (a 422 on its ``relative_to``)."""
    for i, c in enumerate(spec.objective.constraints):
        if c.relative_to == PRIOR_BASELINE and prior_mixture(spec) is None:
            raise InvalidInput(f'relative_to "{PRIOR_BASELINE}" needs a prior on the domains',
                               field=f"objective.constraints[{i}].relative_to")


def check_level_costs(spec: ExperimentSpec) -> None:
    """Each declared level cost is a fidelity as a run report's is (every axis, nothing else, within its
    range: :meth:`ReportRules.fidelity`), and names its level once (422s naming the field)."""
    rules = ReportRules.of(spec)
    seen: set[tuple[float, ...]] = set()
    for i, level in enumerate(spec.search.level_costs):
        field = f"search.level_costs[{i}].fidelity"
        key = tuple(rules.fidelity(level.fidelity, field))
        if key in seen:
            raise InvalidInput("this level's cost is already declared", field=field)
        seen.add(key)


def declared_costs(spec: ExperimentSpec) -> np.ndarray | None:
    """``(k, n_axes + 1)``: each declared level's fidelity values in axis order, then its cost (a level not
    naming exactly the axes, which only an unchecked imported spec can hold, is left out)."""
    rows = [[lc.fidelity[a] for a in spec.axis_names] + [lc.cost] for lc in spec.search.level_costs
            if set(lc.fidelity) == set(spec.axis_names)]
    return np.array(rows, dtype=np.float64) if rows else None


def default_fidelity(spec: ExperimentSpec) -> list[float]:
    return [float(a.default if a.default is not None else a.min) for a in spec.fidelities]


def check_bounds(constraints: SimplexConstraints, domains: Sequence[str], vector: list[float], field: str) -> None:
    """Reject a mixture that breaks a min/max weight or the epoch cap (applies to suggested points).

    Takes the constraints rather than the spec: a pool of candidates is checked against one
    :func:`constraints_from_spec`, not one per candidate.
    """
    c = constraints
    for i, x in enumerate(vector):
        if x < c.lower[i] - MIXTURE_SUM_TOLERANCE:
            raise InvalidInput(f"weight {x:.6g} is below the domain's minimum {c.lower[i]:.6g}",
                               field=f"{field}.{domains[i]}", code=ErrorCode.constraint_violation)
        if x > c.upper[i] + MIXTURE_SUM_TOLERANCE:
            raise InvalidInput(f"weight {x:.6g} exceeds the domain's maximum {c.upper[i]:.6g} "
                               "(max_weight or tokens_available x max_epochs / target_tokens)",
                               field=f"{field}.{domains[i]}", code=ErrorCode.constraint_violation)


@dataclass(frozen=True)
class ReportRules:
    """What a run report (or a candidate, or a mixture to predict) is checked against, read once from a spec.

    Domains, fidelity axes and objective metrics never change after an experiment is created, so callers
    build this once per experiment or request (a 10,000-run batch, 200,000 candidates, every report the
    single-report cache serves) instead of re-reading the spec for every item.
    """

    domains: tuple[str, ...]
    domain_set: frozenset[str]
    #: (name, min, max) per fidelity axis, in axis order.
    axes: tuple[tuple[str, float, float], ...]
    axis_set: frozenset[str]
    default_fidelity: tuple[float, ...]
    metrics: tuple[str, ...]
    _in_domain_order: Callable[[dict[str, float]], tuple[float, ...]] = field(init=False, repr=False,
                                                                              compare=False)

    def __post_init__(self) -> None:
        # One C call per mixture instead of a Python loop over the domains (a tuple even for one domain).
        pick = operator.itemgetter(*self.domains)
        object.__setattr__(self, "_in_domain_order",
                           pick if len(self.domains) > 1 else lambda m: (pick(m),))

    @classmethod
    def of(cls, spec: ExperimentSpec) -> ReportRules:
        names = tuple(spec.domain_names)
        return cls(domains=names, domain_set=frozenset(names),
                   axes=tuple((a.name, a.min, a.max) for a in spec.fidelities),
                   axis_set=frozenset(spec.axis_names),
                   default_fidelity=tuple(default_fidelity(spec)), metrics=tuple(spec.model_metrics))

    def mixture(self, mixture: dict[str, float], field: str) -> list[float]:
        """The mixture as a list in domain order, renormalised to sum exactly to 1."""
        if mixture.keys() != self.domain_set:
            unknown = sorted(set(mixture) - self.domain_set)
            if unknown:
                raise InvalidInput(f"unknown domain {unknown[0]!r}; the experiment's domains are "
                                   f"{list(self.domains[:20])}", field=f"{field}.{unknown[0]}",
                                   code=ErrorCode.invalid_mixture)
            missing = next(n for n in self.domains if n not in mixture)
            raise InvalidInput(f"missing weight for domain {missing!r} (every domain needs a weight, 0 allowed)",
                               field=f"{field}.{missing}", code=ErrorCode.invalid_mixture)
        w = self._in_domain_order(mixture)
        total = math.fsum(w)
        if not math.isfinite(total) or min(w) < 0:  # one scan in C; find the culprit only on failure
            for n, x in zip(self.domains, w, strict=True):
                if not math.isfinite(x):
                    raise InvalidInput("weight must be a finite number", field=f"{field}.{n}",
                                       code=ErrorCode.invalid_mixture)
                if x < 0:
                    raise InvalidInput(f"weight {x} is negative", field=f"{field}.{n}", code=ErrorCode.invalid_mixture)
        if abs(total - 1.0) > MIXTURE_SUM_TOLERANCE:
            raise InvalidInput(f"weights sum to {total:.9g}, not 1 (tolerance {MIXTURE_SUM_TOLERANCE:g})",
                               field=field, code=ErrorCode.invalid_mixture)
        return [x / total for x in w]

    def fidelity(self, fidelity: dict[str, float] | None, field: str, *, allow_partial: bool = False
                 ) -> list[float]:
        """Fidelity values in axis order; each must lie in its declared [min, max].

        A missing axis takes the axis default when ``allow_partial`` (suggestion requests), else is an error,
        except that an experiment without axes accepts an empty or missing fidelity.
        """
        given = fidelity or {}
        if not given.keys() <= self.axis_set:
            unknown = sorted(set(given) - self.axis_set)
            raise InvalidInput(f"unknown fidelity axis {unknown[0]!r}; declared axes are "
                               f"{[a[0] for a in self.axes]}", field=f"{field}.{unknown[0]}",
                               code=ErrorCode.invalid_fidelity)
        out: list[float] = []
        for (name, lo, hi), dflt in zip(self.axes, self.default_fidelity, strict=True):
            if name not in given:
                if allow_partial:
                    out.append(dflt)
                    continue
                raise InvalidInput(f"missing value for fidelity axis {name!r}", field=f"{field}.{name}",
                                   code=ErrorCode.invalid_fidelity)
            v = float(given[name])
            if not (lo <= v <= hi):
                raise InvalidInput(f"{v:g} is outside the declared range [{lo:g}, {hi:g}]",
                                   field=f"{field}.{name}", code=ErrorCode.invalid_fidelity)
            out.append(v)
        return out

    def check_metrics_complete(self, metrics: dict[str, float], field: str) -> None:
        """A completed run must report every metric the objective and its outcome constraints are built from."""
        for m in self.metrics:
            if m not in metrics:
                raise InvalidInput(f"a completed run must report metric {m!r} (objective or outcome constraint)",
                                   field=f"{field}.{m}", code=ErrorCode.missing_metric)


def check_method(name: str, field: str = "method") -> str:
    """``name`` when it names a search method, else a 422 ``unknown_method`` on ``field``."""
    if name not in method_names():
        raise InvalidInput(f"unknown method {name!r}; available: {method_names()}", field=field,
                           code=ErrorCode.unknown_method)
    return name


def check_laws(names: list[str] | None) -> list[str] | None:
    """``names`` when each names a mixing law, else a 422 ``unknown_law`` on the first that does not."""
    for i, name in enumerate(names or []):
        if name not in LAWS:
            raise InvalidInput(f"unknown law {name!r}; known: {sorted(LAWS)}", field=f"laws[{i}]",
                               code=ErrorCode.unknown_law)
    return names


def check_continual(spec: ExperimentSpec) -> None:
    """A ``continual`` block names the experiment's own domains (leaving some general), objective metrics
    and a tokens axis of positive values; else a 422 naming the field."""
    block = spec.continual
    if block is None:
        return
    domains, metrics = set(spec.domain_names), set(spec.objective.metrics)
    for key, names, known, what in (("domain_group", block.domain_group, domains, "domain"),
                                    ("general_metrics", block.general_metrics, metrics, "objective metric"),
                                    ("domain_metrics", block.domain_metrics, metrics, "objective metric")):
        for i, name in enumerate(names):
            if name not in known:
                raise InvalidInput(f"{name!r} is not a {what} of the experiment; known: {sorted(known)}",
                                   field=f"continual.{key}[{i}]")
        if len(set(names)) != len(names):
            raise InvalidInput(f"{key} must not repeat a name", field=f"continual.{key}")
    if set(block.domain_group) == domains:
        raise InvalidInput("domain_group takes every domain: leave at least one for the general data",
                           field="continual.domain_group")
    axis = next((a for a in spec.fidelities if a.name == block.tokens_axis), None)
    if axis is None:
        raise InvalidInput(f"{block.tokens_axis!r} is not a fidelity axis of the experiment; known: "
                           f"{spec.axis_names}", field="continual.tokens_axis")
    if axis.min <= 0:
        raise InvalidInput(f"the tokens axis {axis.name!r} must count tokens (min > 0), got min {axis.min:g}",
                           field="continual.tokens_axis")


def feasible_mixture(rules: ReportRules, constraints: SimplexConstraints, given: dict[str, float],
                     field: str) -> list[float]:
    """A candidate mixture in domain order, valid and within the experiment's bounds (else a 422 on ``field``)."""
    vec = rules.mixture(given, field)
    check_bounds(constraints, rules.domains, vec, field)
    return vec


def candidate_pool(spec: ExperimentSpec, given: list[CandidateIn]) -> Candidates:
    """Validated pool as arrays in domain and axis order; NaN where a candidate gives no fidelity (the
    method chooses). Filled row by row: lists of Python floats cost ~15 times the array."""
    rules = ReportRules.of(spec)
    constraints = constraints_from_spec(spec)
    mixtures = np.empty((len(given), len(rules.domains)))
    fidelities = np.full((len(given), len(rules.axes)), np.nan)
    for i, c in enumerate(given):
        mixtures[i] = feasible_mixture(rules, constraints, c.mixture, f"candidates[{i}].mixture")
        if c.fidelity is not None:
            fidelities[i] = rules.fidelity(c.fidelity, f"candidates[{i}].fidelity")
    return Candidates(mixtures=mixtures, fidelities=fidelities)
