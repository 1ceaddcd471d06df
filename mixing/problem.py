"""The array-only description of a mixture search that every method consumes.

The service translates its stored experiment and runs into these objects; nothing in here knows about
databases, HTTP or job queues. Objectives are always exposed to methods as *lower is better*: a maximised
metric is negated once, here, so no method has to remember the goal.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike

from mixing.simplex import FloatArray, SimplexConstraints

Goal = Literal["minimize", "maximize"]


@dataclass(frozen=True)
class FidelitySpace:
    """Named numeric axes (e.g. ``params``, ``tokens``) with their range and the target value.

    Axes whose range spans more than a factor of 10 are treated on a log scale by models that care.
    """

    names: tuple[str, ...] = ()
    lower: FloatArray = field(default_factory=lambda: np.zeros(0))
    upper: FloatArray = field(default_factory=lambda: np.zeros(0))
    target: FloatArray = field(default_factory=lambda: np.zeros(0))

    def __post_init__(self) -> None:
        for name in ("lower", "upper", "target"):
            object.__setattr__(self, name, np.asarray(getattr(self, name), dtype=np.float64).reshape(-1))

    @property
    def n_axes(self) -> int:
        return len(self.names)

    @property
    def log_scale(self) -> np.ndarray:
        return (self.lower > 0) & (self.upper / np.maximum(self.lower, 1e-300) > 10.0)

    def normalise(self, values: ArrayLike) -> FloatArray:
        """Map fidelity values to [0, 1] per axis (1 = target end), in log space where the axis is."""
        v = np.atleast_2d(np.asarray(values, dtype=np.float64))
        if self.n_axes == 0:
            return np.zeros((v.shape[0], 0))
        lo, hi = self.lower.copy(), self.upper.copy()
        vv = v.copy()
        log = self.log_scale
        vv[:, log] = np.log(vv[:, log])
        lo[log], hi[log] = np.log(lo[log]), np.log(hi[log])
        span = np.where(hi > lo, hi - lo, 1.0)
        return (vv - lo) / span

    def cheapest(self) -> FloatArray:
        return self.lower.copy()


#: Relative tolerance of :func:`same_fidelity`: equal up to float round-off, and no absolute slack, since
#: fidelity axes range from fractions to billions of tokens.
FIDELITY_RTOL = 1e-9


def same_fidelity(fidelities: ArrayLike, fidelity: ArrayLike) -> NDMask:
    """Whether each row of ``fidelities`` (..., k) is ``fidelity`` (k,) on every axis; True for k = 0.

    The one comparison of fidelities: a run, a candidate or a pool row is "at" a fidelity by this test.
    """
    return np.all(np.isclose(np.asarray(fidelities, dtype=np.float64), np.asarray(fidelity, dtype=np.float64),
                             rtol=FIDELITY_RTOL, atol=0.0), axis=-1)


@dataclass(frozen=True)
class OutcomeConstraint:
    """A bound on one predicted metric at the target fidelity: ``metric <= bound`` (``upper``) or ``>=``.

    The bound is absolute (``bound``), or relative to the metric's value at a ``baseline`` mixture
    ``(d,)``: ``value + slack * |value|`` for an upper bound, ``value - slack * |value|`` for a lower one.
    :func:`mixing.outcomes.resolve` turns a relative bound into an absolute one.
    """

    #: Column of the metric in :attr:`Problem.metric_names`.
    metric: int
    upper: bool
    bound: float | None = None
    baseline: FloatArray | None = None
    slack: float = 0.0

    def __post_init__(self) -> None:
        if (self.bound is None) == (self.baseline is None):
            raise ValueError("an outcome constraint takes exactly one of bound and baseline")
        if not self.slack >= 0.0:
            raise ValueError("slack must be non-negative")


@dataclass(frozen=True)
class TradeOff:
    """A further objective of the trade-off front (not of the recommendation): metric column and direction."""

    metric: int
    minimize: bool = True


@dataclass(frozen=True)
class Problem:
    """What is being optimised: domains, feasible mixtures, the objective and the fidelity axes.

    ``metric_names`` are every metric a model fits: the objective's, then those only outcome constraints
    name (weight 0 in ``metric_weights``, so they never enter the objective). A recommendation must be
    feasible for every :class:`OutcomeConstraint` with probability at least ``feasibility_probability``.
    """

    domains: tuple[str, ...]
    constraints: SimplexConstraints
    metric_names: tuple[str, ...]
    metric_weights: FloatArray
    goal: Goal = "minimize"
    prior: FloatArray | None = None
    fidelity: FidelitySpace = field(default_factory=FidelitySpace)
    outcome_constraints: tuple[OutcomeConstraint, ...] = ()
    feasibility_probability: float = 0.9
    #: Further objectives: trade-off fronts show them (:mod:`mixing.pareto`) and BO's suggestions aim at the
    #: front's hypervolume with them (:class:`mixing.bo.engine.FrontAcquisition`); recommendations still
    #: optimise the objective alone.
    trade_offs: tuple[TradeOff, ...] = ()
    #: Known costs ``(k, n_axes + 1)``: fidelity values then the cost of a run there (cost models use them
    #: for levels no run has reported a cost at yet); None when the caller knows none.
    declared_costs: FloatArray | None = None

    def __post_init__(self) -> None:
        w = np.asarray(self.metric_weights, dtype=np.float64).reshape(-1)
        object.__setattr__(self, "metric_weights", w)
        if len(self.metric_names) != w.size:
            raise ValueError("one objective weight per metric is required")
        if len(self.domains) != self.constraints.n_domains:
            raise ValueError("constraints must have one bound per domain")
        columns = [c.metric for c in self.outcome_constraints] + [t.metric for t in self.trade_offs]
        if any(not 0 <= j < w.size for j in columns):
            raise ValueError("an outcome constraint or trade-off names a metric column the problem does not have")
        if not 0.0 < self.feasibility_probability < 1.0:
            raise ValueError("feasibility_probability must lie in (0, 1)")

    @property
    def constrained_metrics(self) -> np.ndarray:
        """Metric columns ``(c,)`` of the outcome constraints, in their order."""
        return np.array([c.metric for c in self.outcome_constraints], dtype=np.intp)

    @property
    def n_domains(self) -> int:
        return len(self.domains)

    @property
    def sign(self) -> float:
        return 1.0 if self.goal == "minimize" else -1.0

    def objective(self, metrics: ArrayLike) -> FloatArray:
        """The user's objective (in its own orientation) from an ``(n, k)`` metric matrix."""
        return np.atleast_2d(np.asarray(metrics, dtype=np.float64)) @ self.metric_weights

    def loss(self, metrics: ArrayLike) -> FloatArray:
        """The objective oriented so that lower is better: what every method minimises."""
        return self.sign * self.objective(metrics)


@dataclass(frozen=True)
class Observations:
    """Runs with results (``metrics``) and runs still in flight (``pending_*``), as arrays."""

    mixtures: FloatArray
    fidelities: FloatArray
    metrics: FloatArray
    costs: FloatArray
    pending_mixtures: FloatArray
    pending_fidelities: FloatArray

    @classmethod
    def empty(cls, n_domains: int, n_axes: int, n_metrics: int) -> Observations:
        return cls(
            np.zeros((0, n_domains)),
            np.zeros((0, n_axes)),
            np.zeros((0, n_metrics)),
            np.zeros(0),
            np.zeros((0, n_domains)),
            np.zeros((0, n_axes)),
        )

    @property
    def n(self) -> int:
        return int(self.mixtures.shape[0])

    def at_fidelity(self, fidelity: ArrayLike) -> NDMask:
        """Rows observed at this fidelity (:func:`same_fidelity`)."""
        return same_fidelity(self.fidelities, fidelity)

    def completed_subset(self, rows: NDMask) -> Observations:
        """These completed runs only; pending runs are kept, they are still in flight."""
        return Observations(
            self.mixtures[rows],
            self.fidelities[rows],
            self.metrics[rows],
            self.costs[rows],
            self.pending_mixtures,
            self.pending_fidelities,
        )

    def distinct_fidelities(self) -> FloatArray:
        if self.n == 0:
            return np.zeros((0, self.fidelities.shape[1]))
        return np.unique(self.fidelities, axis=0)


NDMask = np.ndarray


@dataclass(frozen=True)
class Prediction:
    """A predicted objective (in the user's orientation) with a central interval, when one is known."""

    value: float
    lower: float | None = None
    upper: float | None = None


@dataclass(frozen=True)
class OutcomePrediction:
    """One outcome constraint at a recommended mixture: its absolute bound, the metric's predicted value
    with a 90% interval, and the probability that the bound holds."""

    metric: str
    op: Literal["<=", ">="]
    bound: float
    value: float
    lower: float
    upper: float
    probability: float


@dataclass(frozen=True)
class Candidates:
    """A finite pool to choose from instead of the simplex; NaN fidelity means "method chooses"."""

    mixtures: FloatArray
    fidelities: FloatArray


@dataclass(frozen=True)
class Proposal:
    """One point a method wants trained next."""

    mixture: FloatArray
    fidelity: FloatArray
    method: str
    predicted: Prediction | None = None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Recommendation:
    """The best mixture for the target fidelity according to one model."""

    mixture: FloatArray
    fidelity: FloatArray
    predicted: Prediction
    method: str
    n_runs: int
    details: dict[str, Any] = field(default_factory=dict)
    #: Each outcome constraint as predicted at the mixture (empty without constraints).
    outcomes: tuple[OutcomePrediction, ...] = ()
