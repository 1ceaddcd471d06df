"""How good is each law? K-fold cross-validation and held-out scores, measured on the runs at hand.

For every law the objective ``metrics @ weights`` is predicted two ways and both are scored:

* ``from_metrics``: the law is fitted per metric and the objective formed from its predictions, which is
  what the service uses (a weighted mean of per-domain losses is smoother per domain than in aggregate);
* ``direct``: the law is fitted on the objective itself (omitted when there is a single metric, where the
  two coincide, and for laws that only describe per-domain metrics).

Scores: Spearman rank correlation, MAE, R^2 and top-k hit (whether the k runs the law ranks best contain
the truly best run). The selected law is the one with the best cross-validated Spearman of the
``from_metrics`` route, or the stacked ensemble of all laws when its nested out-of-fold score is better
(see :mod:`mixing.selection`). Laws that cannot fit the data are reported as skipped with the reason.

Gaps: a non-finite cell of ``y`` is a metric that run did not report. Per-metric fits use every run
reporting that metric (see :mod:`mixing.laws.observed`); the objective, and so every score and the
``direct`` route, uses the complete runs only (a run lacking one metric has no objective). Each law's
entry says how many runs it saw (``n_runs``, and ``n_runs_per_metric``); a metric no run reports is an
:class:`~mixing.laws.observed.EmptyMetricError`. Held-out runs lacking a metric are left out of the scores.

Work is split into independent (law, route, fold) fits and run on ``n_jobs`` processes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from joblib import Parallel, delayed
from numpy.typing import ArrayLike
from sklearn.base import clone
from sklearn.model_selection import KFold

from mixing.errors import MixingError, NotEnoughDataError
from mixing.laws import DEFAULT_LAWS, law_spec, make_law
from mixing.laws.base import MixingLaw, as_mixtures, as_targets
from mixing.laws.ensemble import ENSEMBLE, stack_weights
from mixing.laws.observed import EmptyMetricError, empty_columns, fit_observed
from mixing.laws.threads import single_threaded
from mixing.selection import nested_stack, select_law
from mixing.simplex import FloatArray
from mixing.transfer import MIN_OWN_RUNS, Transfers, fit_prior, fit_sources, residual

FROM_METRICS = "from_metrics"
DIRECT = "direct"
#: Failures of one law that are reported (as "skipped") rather than raised.
LAW_FAILURES = (MixingError, ValueError, ArithmeticError, np.linalg.LinAlgError)

HeldOut = tuple[ArrayLike, ArrayLike | None, ArrayLike]
Progress = Callable[[str], None]


@dataclass(frozen=True)
class Scores:
    spearman: float
    mae: float
    r2: float
    top_k_hit: float
    n: int

    def to_dict(self) -> dict[str, float | int | None]:
        return {
            k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in asdict(self).items()
        }


@dataclass
class LawEvaluation:
    """One law's scores. ``cv``/``heldout[set]`` map a route (``from_metrics``, ``direct``) to scores."""

    name: str
    params: dict[str, Any]
    #: Runs the law was fitted on (reporting at least one metric), how many report each metric, and how
    #: many report every metric (those of the ``direct`` route).
    n_runs: int
    n_runs_per_metric: list[int] | None = None
    n_complete_runs: int | None = None
    cv: dict[str, Scores] = field(default_factory=dict)
    heldout: dict[str, dict[str, Scores]] | None = None
    #: Cross-validated Spearman of each metric separately (``from_metrics`` route), when k > 1.
    cv_per_metric_spearman: list[float] | None = None
    #: Wall time of one fit on all runs, and of everything done for this law (folds, both routes).
    fit_s: float = 0.0
    duration_s: float = 0.0
    skipped: str | None = None
    #: The objective predicted out of fold (``from_metrics`` route) at the report's scored runs, in their
    #: order; kept out of ``to_dict`` (a row per run), see :meth:`EvaluationReport.out_of_fold`.
    oof: FloatArray | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "params": self.params,
            "n_runs": self.n_runs,
            "n_runs_per_metric": self.n_runs_per_metric,
            "n_complete_runs": self.n_complete_runs,
            "skipped": self.skipped,
            "cv": {route: s.to_dict() for route, s in self.cv.items()},
            "heldout": None
            if self.heldout is None
            else {
                name: {route: s.to_dict() for route, s in routes.items()}
                for name, routes in self.heldout.items()
            },
            "cv_per_metric_spearman": None
            if self.cv_per_metric_spearman is None
            else [None if not np.isfinite(v) else float(v) for v in self.cv_per_metric_spearman],
            "fit_s": self.fit_s,
            "duration_s": self.duration_s,
        }


@dataclass
class EvaluationReport:
    laws: list[LawEvaluation]
    selected: str | None
    n_runs: int
    #: Runs reporting every metric: those the objective, and so every score, is computed on.
    n_complete: int
    folds: int
    top_k: int
    metric_weights: list[float]
    goal_sign: float
    duration_s: float
    #: Stacking weights of the ensemble (member name -> weight), when one was built.
    ensemble_weights: dict[str, float] | None = None
    #: The observed objective at the scored runs, in the order of every law's ``oof``.
    observed: FloatArray | None = None
    #: The selected law with and without a warm start's transferred runs (set by the caller that has them).
    transfer: TransferComparison | None = None

    def law(self, name: str) -> LawEvaluation:
        return next(entry for entry in self.laws if entry.name == name)

    def out_of_fold(self, name: str) -> dict[str, list[float | None]] | None:
        """``{"observed": [...], "predicted": [...]}`` of law ``name`` at the scored runs (non-finite values
        as None), for a predicted-against-observed plot; None when the law was not cross-validated."""
        oof = self.law(name).oof
        if oof is None or self.observed is None:
            return None
        return {key: [float(v) if np.isfinite(v) else None for v in values]
                for key, values in (("observed", self.observed), ("predicted", oof))}

    def hints(self) -> dict[str, Any]:
        """What a later ``LawMethod`` call needs to refit the selected law without re-selecting."""
        if self.selected is None:
            return {}
        hints: dict[str, Any] = {"selected_law": self.selected, "law_params": self.law(self.selected).params}
        if self.transfer is not None:
            hints["transfer_helps"] = self.transfer.helps
        return hints

    def to_dict(self) -> dict[str, Any]:
        return {
            "selected": self.selected,
            "n_runs": self.n_runs,
            "n_complete": self.n_complete,
            "folds": self.folds,
            "top_k": self.top_k,
            "metric_weights": self.metric_weights,
            "goal_sign": self.goal_sign,
            "duration_s": self.duration_s,
            "ensemble_weights": self.ensemble_weights,
            "laws": [entry.to_dict() for entry in self.laws],
            "transfer": None if self.transfer is None else self.transfer.to_dict(),
        }


@dataclass(frozen=True)
class TransferComparison:
    """One law cross-validated on this experiment's own runs with and without a warm start's prior
    (:mod:`mixing.transfer`): the prior is refitted on each training fold, so its help is measured on runs
    it never saw. ``helps``: the out-of-fold squared error of the objective is lower with it."""

    law: str
    without: Scores
    with_transfer: Scores
    mse_without: float
    mse_with: float
    n_transferred: int
    n_sources: int

    @property
    def helps(self) -> bool:
        return bool(self.mse_with < self.mse_without)

    def to_dict(self) -> dict[str, Any]:
        return {"law": self.law, "helps": self.helps, "without": self.without.to_dict(),
                "with": self.with_transfer.to_dict(), "mse_without": self.mse_without, "mse_with": self.mse_with,
                "n_transferred": self.n_transferred, "n_sources": self.n_sources}


@single_threaded
def compare_transfer(
    law: MixingLaw,
    mixtures: ArrayLike,
    fidelity: ArrayLike | None,
    y: ArrayLike,
    metric_weights: ArrayLike,
    transfers: Transfers,
    *,
    goal_sign: float = 1.0,
    folds: int = 5,
    seed: int = 0,
    prior_rows: np.ndarray | None = None,
) -> TransferComparison:
    """K-fold CV of ``law`` on the complete own runs ``(mixtures (n, d), fidelity (n, m) | None, y (n, k))``,
    once as it is and once fitted to what the transfer prior leaves (the prior added back).

    ``prior_rows``: the runs the prior's maps may be fitted on (the level nearest the target; default all).
    """
    x, t = as_mixtures(mixtures), as_targets(y)
    f = None if fidelity is None else np.asarray(fidelity, dtype=np.float64)
    w = np.asarray(metric_weights, dtype=np.float64).reshape(-1)
    complete = np.flatnonzero(np.all(np.isfinite(t), axis=1))
    if len(complete) < max(folds, MIN_OWN_RUNS + 1):
        raise NotEnoughDataError("comparing transfers needs complete runs", max(folds, MIN_OWN_RUNS + 1),
                                 len(complete))
    allowed = np.zeros(len(x), dtype=bool)
    allowed[complete if prior_rows is None else np.intersect1d(prior_rows, complete)] = True
    sources = fit_sources(transfers)
    pred = {False: np.full(len(x), np.nan), True: np.full(len(x), np.nan)}
    for train_i, test_i in KFold(n_splits=min(folds, len(complete)), shuffle=True,
                                 random_state=seed).split(complete):
        train, test = complete[train_i], complete[test_i]
        fit_on = train[allowed[train]]
        prior = fit_prior(transfers, x[fit_on], t[fit_on], sources) if len(fit_on) else None
        for use in (False, True):
            p = prior if use else None
            fitted = clone(law).fit(x[train], None if f is None else f[train], residual(p, x[train], t[train]))
            out = fitted.predict(x[test], None if f is None else f[test])
            if p is not None and p.any_used:
                out = out + p.predict(x[test])
            pred[use][test] = out @ w
    true = t[complete] @ w
    mse = {use: float(np.mean((pred[use][complete] - true) ** 2)) for use in (False, True)}
    return TransferComparison(law=law.name, without=score(pred[False][complete], true, goal_sign),
                              with_transfer=score(pred[True][complete], true, goal_sign),
                              mse_without=mse[False], mse_with=mse[True], n_transferred=transfers.n,
                              n_sources=transfers.n_sources)


# ------------------------------------------------------------------------------------------------ scoring
def rank(values: ArrayLike) -> FloatArray:
    """Ranks 1..n with ties sharing their average rank."""
    v = np.asarray(values, dtype=np.float64)
    order = np.argsort(v, kind="mergesort")
    sorted_v = v[order]
    starts = np.flatnonzero(np.r_[True, sorted_v[1:] != sorted_v[:-1]])
    ends = np.r_[starts[1:], len(v)]
    avg = (starts + ends + 1) / 2.0
    ranks = np.empty(len(v))
    ranks[order] = np.repeat(avg, ends - starts)
    return ranks


def score(pred: ArrayLike, true: ArrayLike, goal_sign: float = 1.0, top_k: int = 10) -> Scores:
    """Scores of predictions of the objective (user's orientation; ``goal_sign`` 1 = lower is better),
    over the runs whose observed value is finite (``n`` of them)."""
    p = np.asarray(pred, dtype=np.float64).reshape(-1)
    t = np.asarray(true, dtype=np.float64).reshape(-1)
    known = np.isfinite(t)
    p, t = p[known], t[known]
    err = p - t
    ss_tot = float(np.sum((t - t.mean()) ** 2))
    rp, rt = rank(p), rank(t)
    sp = np.std(rp) * np.std(rt)
    rho = float(np.mean((rp - rp.mean()) * (rt - rt.mean())) / sp) if sp > 0 else float("nan")
    k = int(min(max(top_k, 1), len(p)))
    best_true = int(np.argmin(goal_sign * t))
    top = np.argsort(goal_sign * p, kind="mergesort")[:k]
    return Scores(
        spearman=rho,
        mae=float(np.mean(np.abs(err))),
        r2=1.0 - float(np.sum(err**2)) / ss_tot if ss_tot > 0 else float("nan"),
        top_k_hit=float(best_true in top),
        n=len(p),
    )


# --------------------------------------------------------------------------------------------- evaluation
@dataclass(frozen=True)
class _Task:
    law: int
    route: str
    fold: int  # -1: fit on all runs


@dataclass(frozen=True)
class _TaskResult:
    task: _Task
    oof: FloatArray | None
    heldout: dict[str, FloatArray]
    seconds: float
    error: str | None


@dataclass
class _Objective:
    """Predicted objective of each law along one route: out of fold ``(n,)`` and per held-out set."""

    oof: dict[str, FloatArray] = field(default_factory=dict)
    heldout: dict[str, dict[str, FloatArray]] = field(default_factory=dict)


_Sets = dict[str, tuple[FloatArray, FloatArray | None, FloatArray]]


def evaluate_laws(
    laws: Sequence[MixingLaw | str] | None,
    mixtures: ArrayLike,
    fidelity: ArrayLike | None,
    y: ArrayLike,
    metric_weights: ArrayLike | None = None,
    *,
    goal_sign: float = 1.0,
    folds: int = 5,
    heldout: HeldOut | Mapping[str, HeldOut] | None = None,
    seed: int = 0,
    top_k: int = 10,
    n_jobs: int = 1,
    ensemble: bool = True,
    progress: Progress | None = None,
    score_rows: ArrayLike | None = None,
) -> EvaluationReport:
    """Cross-validate every law (default: all registered) and score it on held-out sets.

    ``y`` is ``(n, k)``, non-finite where a run lacks a metric; the objective is ``y @ metric_weights``
    (default: the mean), with ``goal_sign = -1`` when it is maximised. ``heldout`` is one
    ``(mixtures, fidelity, y)`` triple (reported as ``"heldout"``) or a mapping of named triples.
    ``n_jobs`` processes share the fits.

    ``score_rows`` (indices) are the runs the cross-validation predicts and scores, e.g. those at the
    fidelity where the law will be used; the folds split them, and each fold trains a fidelity-aware law
    on every other run but a fidelity-blind one on the other ``score_rows`` only -- each law as it
    would be fitted for real, so that the laws compete on the same predictions. Default: all runs.
    Only the complete ones among them are scored.
    """
    t0 = time.perf_counter()
    x, t = as_mixtures(mixtures), as_targets(y)
    n, k = t.shape
    if empty_columns(t):
        raise EmptyMetricError(empty_columns(t))
    seen = np.isfinite(t)
    given = np.arange(n) if score_rows is None else np.asarray(score_rows, dtype=np.int64).reshape(-1)
    scored = given[seen[given].all(axis=1)]
    if len(scored) < 4:
        raise NotEnoughDataError("a fidelity report needs complete runs to cross-validate", 4, len(scored))
    f = None if fidelity is None else np.asarray(fidelity, dtype=np.float64).reshape(n, -1)
    w = (
        np.full(k, 1.0 / k)
        if metric_weights is None
        else np.asarray(metric_weights, dtype=np.float64).reshape(k)
    )
    objective = t @ w
    law_list = [
        make_law(law) if isinstance(law, str) else law for law in (DEFAULT_LAWS if laws is None else laws)
    ]
    if len({law.name for law in law_list}) < len(law_list):
        raise ValueError("the laws of one report must have distinct names")
    sets = _heldout_sets(heldout)
    kfold = KFold(int(min(max(folds, 2), len(scored))), shuffle=True, random_state=seed)
    everything = np.arange(n)
    splits = [(np.setdiff1d(everything, scored[test]), scored[test]) for _, test in kfold.split(scored)]
    # The runs each law may train on: fidelity-blind laws only those at the scored runs' fidelity.
    universes = [None if score_rows is None or law.uses_fidelity else given for law in law_list]
    entries = [_entry(law, seen, universe) for law, universe in zip(law_list, universes, strict=True)]
    tasks = _plan(law_list, entries, splits, universes, seen, x.shape[1])
    targets = {FROM_METRICS: t, DIRECT: objective[:, None]}
    jobs = (
        delayed(_run_task)(task, law_list[task.law], x, f, targets[task.route], splits, universes[task.law],
                           sets)
        for task in tasks
    )
    results = (
        Parallel(n_jobs=n_jobs, return_as="generator_unordered")(jobs)
        if n_jobs != 1
        else (fn(*args, **kwargs) for fn, args, kwargs in jobs)
    )
    outputs: dict[tuple[int, str, int], _TaskResult] = {}
    for res in results:
        outputs[(res.task.law, res.task.route, res.task.fold)] = res
        if progress is not None:
            where = "all runs" if res.task.fold < 0 else f"fold {res.task.fold + 1}/{len(splits)}"
            progress(f"{law_list[res.task.law].name} {res.task.route} {where} ({len(outputs)}/{len(tasks)})")

    truths = {name: hy @ w for name, (_, _, hy) in sets.items()}
    routes = {FROM_METRICS: _Objective(), DIRECT: _Objective()}
    for i, entry in enumerate(entries):
        if entry.skipped is None:
            _collect(entry, i, outputs, splits, scored, t, w, routes)
            _score_entry(entry, routes, objective[scored], truths, goal_sign, top_k)

    ensemble_weights = None
    if ensemble and len(routes[FROM_METRICS].oof) >= 2:
        members = [law_spec(law) for law in law_list if law.name in routes[FROM_METRICS].oof]
        ens, ensemble_weights = _ensemble(members, routes, objective, splits, scored, truths, goal_sign, top_k)
        ens.fit_s = float(sum(e.fit_s for e in entries if e.name in ensemble_weights))
        members_seen = [e for e in entries if e.name in ensemble_weights]
        ens.n_runs = max(e.n_runs for e in members_seen)
        ens.n_complete_runs = max(e.n_complete_runs or 0 for e in members_seen)
        entries.append(ens)
    selected = select_law({e.name: _as_mapping(e.cv.get(FROM_METRICS)) for e in entries if e.skipped is None})
    return EvaluationReport(
        laws=entries,
        selected=selected,
        n_runs=n,
        n_complete=int(seen.all(axis=1).sum()),
        folds=len(splits),
        top_k=top_k,
        metric_weights=w.tolist(),
        goal_sign=float(goal_sign),
        duration_s=time.perf_counter() - t0,
        ensemble_weights=ensemble_weights,
        observed=objective[scored],
    )


def _entry(law: MixingLaw, seen: np.ndarray, universe: np.ndarray | None) -> LawEvaluation:
    """The law's entry, with the runs it is fitted on counted from the observed cells ``seen`` ``(n, k)``."""
    mine = seen if universe is None else seen[universe]
    return LawEvaluation(
        name=law.name,
        params=law_spec(law)["params"],
        n_runs=int(mine.any(axis=1).sum()),
        n_runs_per_metric=mine.sum(axis=0).tolist(),
        n_complete_runs=int(mine.all(axis=1).sum()),
    )


def _plan(
    laws: Sequence[MixingLaw],
    entries: Sequence[LawEvaluation],
    splits: list[tuple[np.ndarray, np.ndarray]],
    universes: Sequence[np.ndarray | None],
    seen: np.ndarray,
    d: int,
) -> list[_Task]:
    """Every (law, route, fold) fit to run; laws with too few runs per fold (for the least reported
    metric) are marked skipped instead."""
    tasks = []
    k = seen.shape[1]
    for i, law in enumerate(laws):
        min_train = min(
            int(seen[_training_rows(train, universes[i])].sum(axis=0).min()) for train, _ in splits
        )
        if min_train < law.min_runs(d):
            entries[i].skipped = f"needs {law.min_runs(d)} runs per training fold, has {min_train}"
            continue
        routes = [FROM_METRICS] + ([DIRECT] if k > 1 and law.fits_aggregate else [])
        tasks += [_Task(i, route, fold) for route in routes for fold in range(-1, len(splits))]
    return tasks


def _collect(
    entry: LawEvaluation,
    i: int,
    outputs: Mapping[tuple[int, str, int], _TaskResult],
    splits: list[tuple[np.ndarray, np.ndarray]],
    scored: np.ndarray,
    t: FloatArray,
    w: FloatArray,
    routes: Mapping[str, _Objective],
) -> None:
    """Assemble law ``i``'s out-of-fold (at the scored runs) and held-out objective predictions per route
    (or its failure)."""
    mine = {key: r for key, r in outputs.items() if key[0] == i}
    entry.duration_s = float(sum(r.seconds for r in mine.values()))
    failure = next((r.error for r in mine.values() if r.error and r.task.route == FROM_METRICS), None)
    if failure is not None:
        entry.skipped = failure
        return
    entry.fit_s = mine[(i, FROM_METRICS, -1)].seconds
    for route, weights in ((FROM_METRICS, w), (DIRECT, np.ones(1))):
        if (i, route, -1) not in mine or any(r.error for key, r in mine.items() if key[1] == route):
            continue
        pred = np.full((len(t), len(weights)), np.nan)
        for fold, (_, test) in enumerate(splits):
            oof = mine[(i, route, fold)].oof
            assert oof is not None
            pred[test] = oof.reshape(len(test), -1)
        pred = pred[scored]
        if route == FROM_METRICS and t.shape[1] > 1:
            entry.cv_per_metric_spearman = [
                score(pred[:, j], t[scored, j]).spearman for j in range(t.shape[1])
            ]
        routes[route].oof[entry.name] = pred @ weights
        if route == FROM_METRICS:
            entry.oof = routes[route].oof[entry.name]
        routes[route].heldout[entry.name] = {s: p @ weights for s, p in mine[(i, route, -1)].heldout.items()}


def _score_entry(
    entry: LawEvaluation,
    routes: Mapping[str, _Objective],
    objective: FloatArray,
    truths: Mapping[str, FloatArray],
    goal_sign: float,
    top_k: int,
) -> None:
    scored = [route for route in (FROM_METRICS, DIRECT) if entry.name in routes[route].oof]
    for route in scored:
        entry.cv[route] = score(routes[route].oof[entry.name], objective, goal_sign, top_k)
    if truths and scored:
        entry.heldout = {
            s: {r: score(routes[r].heldout[entry.name][s], truth, goal_sign, top_k) for r in scored}
            for s, truth in truths.items()
        }


def _ensemble(
    members: list[dict[str, Any]],
    routes: Mapping[str, _Objective],
    objective: FloatArray,
    splits: list[tuple[np.ndarray, np.ndarray]],
    scored: np.ndarray,
    truths: Mapping[str, FloatArray],
    goal_sign: float,
    top_k: int,
) -> tuple[LawEvaluation, dict[str, float]]:
    """The stacked ensemble's entry: nested out-of-fold scores, weights from all folds, held-out scores.

    Its ``params`` (members and ``from_metrics`` weights) rebuild it with ``make_law("ensemble", ...)``.
    """
    t0 = time.perf_counter()
    n = len(objective)
    fold_of = np.empty(n, dtype=int)
    for fold, (_, test) in enumerate(splits):
        fold_of[test] = fold
    fold_of, objective = fold_of[scored], objective[scored]
    entry = LawEvaluation(name=ENSEMBLE, n_runs=n, params={})
    weights: dict[str, dict[str, float]] = {}
    for route in (FROM_METRICS, DIRECT):
        names = list(routes[route].oof)
        if len(names) < 2:
            continue
        stack = np.stack([routes[route].oof[m] for m in names])
        w = stack_weights(stack, objective)
        weights[route] = dict(zip(names, w.tolist(), strict=True))
        nested = nested_stack(stack, objective, fold_of)
        entry.cv[route] = score(nested, objective, goal_sign, top_k)
        if route == FROM_METRICS:
            entry.oof = nested
        for s, truth in truths.items():
            pred = w @ np.stack([routes[route].heldout[m][s] for m in names])
            entry.heldout = entry.heldout or {}
            entry.heldout.setdefault(s, {})[route] = score(pred, truth, goal_sign, top_k)
    entry.params = {"members": members, "weights": [weights[FROM_METRICS][m["name"]] for m in members]}
    entry.duration_s = time.perf_counter() - t0
    return entry, weights[FROM_METRICS]


@single_threaded
def _run_task(
    task: _Task,
    law: MixingLaw,
    x: FloatArray,
    f: FloatArray | None,
    target: FloatArray,
    splits: list[tuple[np.ndarray, np.ndarray]],
    universe: np.ndarray | None,
    sets: _Sets,
) -> _TaskResult:
    """Fit one law on one fold (or all runs) and predict the left-out runs (or every held-out set)."""
    t0 = time.perf_counter()
    train = _training_rows(np.arange(len(x)) if task.fold < 0 else splits[task.fold][0], universe)

    def fidelity_of(rows: np.ndarray) -> FloatArray | None:
        return None if f is None else f[rows]

    try:
        fitted = fit_observed(law, x[train], fidelity_of(train), target[train])
        if task.fold >= 0:
            test = splits[task.fold][1]
            out = np.asarray(fitted.predict(x[test], fidelity_of(test)), dtype=np.float64)
            return _TaskResult(task, out, {}, time.perf_counter() - t0, None)
        held = {
            name: np.asarray(fitted.predict(hx, hf), dtype=np.float64) for name, (hx, hf, _) in sets.items()
        }
        return _TaskResult(task, None, held, time.perf_counter() - t0, None)
    except LAW_FAILURES as exc:
        return _TaskResult(task, None, {}, time.perf_counter() - t0, f"{type(exc).__name__}: {exc}")


def _training_rows(train: np.ndarray, universe: np.ndarray | None) -> np.ndarray:
    """The rows of ``train`` a law may fit on (all of them, or those in its ``universe``)."""
    return train if universe is None else np.intersect1d(train, universe)


def _heldout_sets(heldout: HeldOut | Mapping[str, HeldOut] | None) -> _Sets:
    if heldout is None:
        return {}
    named = dict(heldout) if isinstance(heldout, Mapping) else {"heldout": heldout}
    out = {}
    for name, (hx, hf, hy) in named.items():
        mx = as_mixtures(hx)
        hfid = None if hf is None else np.asarray(hf, dtype=np.float64).reshape(len(mx), -1)
        ht = as_targets(hy)
        if not np.isfinite(ht).all(axis=1).any():
            raise NotEnoughDataError(f"held-out set {name!r} needs complete runs to score", 1, 0)
        out[name] = (mx, hfid, ht)
    return out


def _as_mapping(scores: Scores | None) -> dict[str, float | int | None] | None:
    return None if scores is None else scores.to_dict()
