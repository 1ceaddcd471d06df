"""Helpers shared by search methods: data selection by fidelity and pending-point exclusion."""

from __future__ import annotations

import numpy as np

from mixing.problem import Observations, Problem
from mixing.simplex import FloatArray

#: Two mixtures closer than this (L1) are the same point for the purpose of "never suggest twice".
SAME_POINT_L1 = 1e-6


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
        same_mix = np.abs(taken_mix - p).sum(axis=1) < SAME_POINT_L1
        if not same_mix.any():
            continue
        same_fid = np.all(np.isclose(taken_fid[same_mix], f, rtol=1e-9), axis=1) if f.size else True
        keep[i] = not np.any(same_fid)
    return keep
