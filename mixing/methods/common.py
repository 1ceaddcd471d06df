"""Helpers shared by search methods: data selection by fidelity, pending-point exclusion, pool choice."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.spatial import cKDTree

from mixing.problem import Observations, Problem, Proposal, same_fidelity
from mixing.simplex import FloatArray
from mixing.transfer import MIN_OWN_RUNS, TransferPrior, Transfers, fit_prior

#: Two mixtures closer than this (L1) are the same point for the purpose of "never suggest twice".
SAME_POINT_L1 = 1e-6
#: Rows of a candidate pool a model scores at once (see :func:`chunked`).
SCORE_ROWS = 8192


def nearest_fidelity_rows(problem: Problem, obs: Observations, target: FloatArray, min_rows: int) -> np.ndarray:
    """Rows of the observed fidelity level closest to ``target`` (normalised distance) with enough runs.

    Single-fidelity laws must be fitted on one level; the level nearest the target with at least
    ``min_rows`` runs is the most faithful one they can use. Falls back to the best-populated level.
    """
    if obs.n == 0 or problem.fidelity.n_axes == 0:
        return np.arange(obs.n)
    levels, inverse, counts = np.unique(obs.fidelities, axis=0, return_inverse=True, return_counts=True)
    inverse = inverse.reshape(-1)
    dist = np.abs(problem.fidelity.normalise(levels) - problem.fidelity.normalise(target)).sum(axis=1)
    order = np.argsort(dist)
    for i in order:
        if counts[i] >= min_rows:
            return np.flatnonzero(inverse == i)
    return np.flatnonzero(inverse == int(np.argmax(counts)))


def transfer_prior(transfers: Transfers | None, problem: Problem, obs: Observations, targets: FloatArray,
                   at: FloatArray | None = None) -> TransferPrior | None:
    """A warm start's prior for ``targets`` (n, k) of the completed runs (:func:`mixing.transfer.fit_prior`).

    The per-source maps are fitted on the observed level nearest ``at`` (default: the target fidelity),
    where the mixtures' ranking is the one to predict; levels differ by offsets the models handle
    themselves. None without transfers or enough own runs; check ``any_used`` before relying on it.
    """
    if transfers is None:
        return None
    rows = nearest_fidelity_rows(problem, obs, problem.fidelity.target if at is None else at, MIN_OWN_RUNS)
    return fit_prior(transfers, obs.mixtures[rows], np.asarray(targets)[rows])


def exclude_taken(points: FloatArray, fidelities: FloatArray, obs: Observations) -> np.ndarray:
    """Mask of ``points`` that are neither pending nor already observed at the same fidelity.

    A pending point must never be handed out twice; an observed one would only buy a repeat measurement.
    """
    taken_mix = np.concatenate([obs.pending_mixtures, obs.mixtures])
    taken_fid = np.concatenate([obs.pending_fidelities, obs.fidelities])
    keep = np.ones(len(points), dtype=bool)
    if len(taken_mix) == 0:
        return keep
    for i, (p, f) in enumerate(zip(points, fidelities, strict=True)):
        keep[i] = not _repeats(p, f, taken_mix, taken_fid)
    return keep


def first_free_distinct(points: FloatArray, fidelities: FloatArray, obs: Observations, k: int) -> np.ndarray:
    """Indices of the first ``k`` rows, in order, that are not taken and repeat no earlier row kept.

    A batch must hand out different runs: rows that are the same run -- a pool listing a mixture twice,
    or local moves that the projection put on the same vertex -- count once, so that they cannot crowd
    out the runs that would complete the batch. The scan stops as soon as ``k`` rows are found. Taken
    runs are looked up in a KD-tree (L1 ball of :data:`SAME_POINT_L1`), not compared row by row: every
    suggestion passes this check against all of an experiment's runs.
    """
    taken_mix = np.concatenate([obs.pending_mixtures, obs.mixtures])
    taken_fid = np.concatenate([obs.pending_fidelities, obs.fidelities])
    tree = cKDTree(taken_mix) if len(taken_mix) else None
    chosen: list[int] = []
    for i, (p, f) in enumerate(zip(points, fidelities, strict=True)):
        if len(chosen) == k:
            break
        near = tree.query_ball_point(p, SAME_POINT_L1, p=1.0) if tree is not None else []
        if near and _repeats(p, f, taken_mix[near], taken_fid[near]):
            continue
        if chosen and _repeats(p, f, points[chosen], fidelities[chosen]):
            continue
        chosen.append(i)
    return np.asarray(chosen, dtype=np.intp)


def new_runs(proposals: list[Proposal], obs: Observations) -> list[Proposal]:
    """``proposals`` less those that repeat a pending or observed run or an earlier proposal.

    The last check every suggestion passes, whatever the method: a seed fixes a method's sequence of draws,
    and a space with a single feasible mixture offers one point only, so neither may hand the same run to
    a second caller. What is left may be fewer runs than asked, or none (the space is exhausted).
    """
    if not proposals:
        return []
    keep = first_free_distinct(np.array([p.mixture for p in proposals]),
                               np.array([p.fidelity for p in proposals]).reshape(len(proposals), -1),
                               obs, len(proposals))
    return [proposals[i] for i in keep]


def _repeats(point: FloatArray, fidelity: FloatArray, mixtures: FloatArray, fidelities: FloatArray) -> bool:
    """Whether ``point`` at ``fidelity`` is the same run as a row of ``(mixtures, fidelities)``."""
    same_mix = np.abs(mixtures - point).sum(axis=1) < SAME_POINT_L1
    if not same_mix.any():
        return False
    return not fidelity.size or bool(np.any(same_fidelity(fidelities[same_mix], fidelity)))


def chunked(fn: Callable[[FloatArray], FloatArray], points: FloatArray) -> FloatArray:
    """``fn(points)`` computed :data:`SCORE_ROWS` rows at a time: the same values (each row is scored on its
    own), with a model's (rows, runs) intermediates -- a GP's cross-covariances -- bounded by the chunk
    instead of growing with the pool times the runs taken."""
    if len(points) <= SCORE_ROWS:
        return fn(points)
    return np.concatenate([fn(points[i:i + SCORE_ROWS]) for i in range(0, len(points), SCORE_ROWS)])


def best_candidate(loss: Callable[[FloatArray], FloatArray], candidates: FloatArray) -> tuple[FloatArray, float]:
    """(mixture, loss) of the candidate with the lowest predicted loss.

    A recommendation restricted to a pool is the pool's best point itself: averaging the top few, as the
    simplex optimisers do against one over-optimistic prediction, would leave the pool.
    """
    losses = chunked(loss, candidates)
    i = int(np.argmin(losses))
    return candidates[i], float(losses[i])


def members(mixtures: FloatArray, pool: FloatArray) -> np.ndarray:
    """Mask of ``mixtures`` that are rows of ``pool`` (within :data:`SAME_POINT_L1`)."""
    if len(mixtures) == 0 or len(pool) == 0:
        return np.zeros(len(mixtures), dtype=bool)
    dist, _ = cKDTree(pool).query(mixtures, k=1, p=1)  # pools run to 10^5 rows: no pairwise matrix
    return np.asarray(dist < SAME_POINT_L1)
