"""How a (mixture, fidelity) pair becomes a GP input vector.

Mixtures live on a simplex: their coordinates sum to one, many are exactly zero, and the loss reacts far
more to a domain going from 0% to 1% than from 30% to 31%. Three encodings keep *all* d coordinates, so
no domain is singled out as the dropped "last" one and ARD gives every domain its own lengthscale:

* ``sqrt`` (default): ``sqrt(w)``, the Hellinger embedding of the simplex onto the positive orthant of
  the unit sphere. It is defined at zero (unlike log-ratio maps such as the isometric log-ratio, which
  need a pseudo-count that then dominates the geometry), symmetric in the domains, and stretches small
  weights where the loss is most sensitive.
* ``identity``: the raw weights.
* ``logit``: ``log(w + eps)`` with ``eps = 1e-3``, the closest to a log-ratio that survives zeros.

The default was chosen by held-out likelihood on data (see ``bench/bo_kernels.py`` and the
"Multi-fidelity Bayesian optimization" section of ``bench/RESULTS.md``); the others stay selectable
because other corpora may behave differently.
Fidelity axes are appended already normalised to [0, 1] by :meth:`FidelitySpace.normalise`.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from mixing.simplex import FloatArray

Encoding = Literal["sqrt", "identity", "logit"]
ENCODINGS: tuple[Encoding, ...] = ("sqrt", "identity", "logit")
_LOG_EPS = 1e-3


def encode_mixtures(mixtures: FloatArray, encoding: Encoding) -> FloatArray:
    """``(n, d)`` mixtures to ``(n, d)`` GP coordinates, rescaled to about [0, 1] per coordinate."""
    w = np.clip(np.asarray(mixtures, dtype=np.float64), 0.0, 1.0)
    if encoding == "sqrt":
        return np.sqrt(w)
    if encoding == "identity":
        return w
    if encoding == "logit":
        return (np.log(w + _LOG_EPS) - np.log(_LOG_EPS)) / (np.log(1.0 + _LOG_EPS) - np.log(_LOG_EPS))
    raise ValueError(f"unknown mixture encoding {encoding!r}; choose one of {ENCODINGS}")


def decode_mixtures(encoded: FloatArray, encoding: Encoding) -> FloatArray:
    """The inverse of :func:`encode_mixtures`: ``(n, d)`` GP coordinates back to mixture weights."""
    z = np.asarray(encoded, dtype=np.float64)
    if encoding == "sqrt":
        return np.square(z)
    if encoding == "identity":
        return z
    if encoding == "logit":
        return np.exp(z * (np.log(1.0 + _LOG_EPS) - np.log(_LOG_EPS)) + np.log(_LOG_EPS)) - _LOG_EPS
    raise ValueError(f"unknown mixture encoding {encoding!r}; choose one of {ENCODINGS}")


def encode(mixtures: FloatArray, normalised_fidelities: FloatArray, encoding: Encoding) -> FloatArray:
    """GP inputs ``[encoded mixture | normalised fidelity axes]``, shape ``(n, d + m)``."""
    fid = np.asarray(normalised_fidelities, dtype=np.float64)
    if fid.ndim != 2:  # one row per mixture; an empty (0, m) block stays as it is (reshape(0, -1) cannot)
        fid = fid.reshape(len(mixtures), -1)
    return np.concatenate([encode_mixtures(mixtures, encoding), fid], axis=1)
