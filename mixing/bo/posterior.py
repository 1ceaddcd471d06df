"""Exact GP posterior with fixed hyperparameters, written for large candidate pools.

Scoring tens of thousands of candidates needs only marginal variances and a few cross-covariances, never
the full ``N x N`` test covariance that a generic posterior object builds lazily. Holding the Cholesky
factor ``L`` of ``K + noise I`` and computing ``V = L^-1 k(X, Z)`` per chunk gives every quantity the
acquisition needs with one triangular solve per candidate, on whichever device the tensors live.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields

import torch
from gpytorch.kernels import Kernel

from mixing.errors import FitError

#: Candidate rows handled per triangular solve; bounds memory at ``n_train x CHUNK`` floats.
CHUNK = 4096
_JITTERS = (0.0, 1e-8, 1e-6, 1e-4)
_MIN_VAR = 1e-12


def robust_cholesky(matrix: torch.Tensor) -> torch.Tensor:
    """Lower Cholesky factor, adding growing diagonal jitter when near-duplicate inputs make it fail."""
    eye = torch.eye(matrix.shape[-1], dtype=matrix.dtype, device=matrix.device)
    scale = float(matrix.diagonal().mean()) if matrix.numel() else 1.0
    for jitter in _JITTERS:
        factor, info = torch.linalg.cholesky_ex(matrix + jitter * scale * eye)
        if int(info) == 0:
            return factor
    raise FitError("GP covariance matrix is not positive definite even with jitter")


@dataclass(frozen=True)
class PairedStats:
    """Posterior statistics of row-aligned pairs: a run (``z``) and its mixture at a reference fidelity
    (``z_ref``, the target). Every field has shape ``(n,)``; variances are latent (without noise)."""

    mean: torch.Tensor
    var: torch.Tensor
    ref_mean: torch.Tensor
    ref_var: torch.Tensor
    cov: torch.Tensor

    def concat(self, other: PairedStats) -> PairedStats:
        return PairedStats(*(torch.cat([getattr(self, f.name), getattr(other, f.name)]) for f in fields(self)))

    @staticmethod
    def empty(n: int, like: torch.Tensor) -> PairedStats:
        """Uninitialised statistics for ``n`` pairs, on ``like``'s device and dtype, to fill by index."""
        return PairedStats(*(torch.empty(n, dtype=like.dtype, device=like.device) for _ in fields(PairedStats)))

    def put(self, index: torch.Tensor, part: PairedStats) -> None:
        """Write ``part`` into the rows ``index`` (in place)."""
        for f in fields(self):
            getattr(self, f.name)[index] = getattr(part, f.name)


#: A prior mean function of GP inputs ``(n, p) -> (n,)``, in the GP's standardised output units.
MeanFn = Callable[[torch.Tensor], torch.Tensor]


class ExactPosterior:
    """``f | data`` for a GP with homoscedastic Gaussian noise and mean ``constant + mean_fn(z)`` (the
    constant alone without ``mean_fn``; a warm start's transfer prior otherwise, see :mod:`mixing.transfer`)."""

    def __init__(
        self, kernel: Kernel, constant: float, noise: float, x: torch.Tensor, y: torch.Tensor,
        mean_fn: MeanFn | None = None,
    ) -> None:
        self.kernel, self.constant, self.noise = kernel, constant, noise
        self.x, self.y, self.mean_fn = x, y, mean_fn
        with torch.no_grad():
            k = self.kernel(x, x).to_dense()
            k.diagonal().add_(noise)
            self.chol = robust_cholesky(k)
            self.alpha = torch.cholesky_solve((y - self._mean(x)).unsqueeze(-1), self.chol).squeeze(-1)

    def _mean(self, z: torch.Tensor) -> torch.Tensor:
        """The prior mean at the rows of ``z``."""
        return self.constant + self.mean_fn(z) if self.mean_fn is not None else torch.full_like(z[:, 0], self.constant)

    def _moments(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(mean, latent variance, ``L^-1 k(X, z)``) for one chunk of test points."""
        kxz = self.kernel(self.x, z).to_dense()
        v = torch.linalg.solve_triangular(self.chol, kxz, upper=False)
        var = (self.kernel(z, z, diag=True) - (v * v).sum(0)).clamp_min(_MIN_VAR)
        return self._mean(z) + kxz.T @ self.alpha, var, v

    @torch.no_grad()
    def loo_residuals(self) -> torch.Tensor:
        """Exact leave-one-out residuals ``y_i - E[y_i | y_-i]`` at the training rows (same hyperparameters):
        ``alpha_i / [K^-1]_ii``, with ``K`` including the noise."""
        return self.alpha / torch.cholesky_inverse(self.chol).diagonal()

    @staticmethod
    def _chunks(*tensors: torch.Tensor) -> Iterator[tuple[torch.Tensor, ...]]:
        for i in range(0, tensors[0].shape[0], CHUNK):
            yield tuple(t[i : i + CHUNK] for t in tensors)

    @torch.no_grad()
    def mean_var(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior mean and latent (noise-free) variance at each row of ``z``."""
        parts = [self._moments(c)[:2] for (c,) in self._chunks(z)]
        return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])

    @torch.no_grad()
    def paired(self, z: torch.Tensor, z_ref: torch.Tensor) -> PairedStats:
        """For row-aligned ``z`` and ``z_ref``: (mean, var) at both and the covariance between them.

        This is what a multi-fidelity acquisition needs per candidate: the point it would observe
        (``z``, at some fidelity) and the same mixture at the target fidelity (``z_ref``).
        """
        parts = []
        for a, b in self._chunks(z, z_ref):
            mean_a, var_a, va = self._moments(a)
            mean_b, var_b, vb = self._moments(b)
            parts.append(PairedStats(mean_a, var_a, mean_b, var_b, self.kernel(a, b, diag=True) - (va * vb).sum(0)))
        out = parts[0]
        for part in parts[1:]:
            out = out.concat(part)
        return out

    @torch.no_grad()
    def joint(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean ``(m,)`` and full latent covariance ``(m, m)`` of a small set of points."""
        mean, _, v = self._moments(z)
        return mean, self.kernel(z, z).to_dense() - v.T @ v

    @torch.no_grad()
    def believe(self, z: torch.Tensor) -> ExactPosterior:
        """The posterior after observing ``z`` at its current mean ("kriging believer").

        The mean is unchanged and the variance shrinks exactly as if ``z`` had been run, which is how
        pending runs and earlier members of a batch stop the acquisition from proposing them again.
        """
        if z.shape[0] == 0:
            return self
        mean, _ = self.mean_var(z)
        return ExactPosterior(
            self.kernel, self.constant, self.noise, torch.cat([self.x, z]), torch.cat([self.y, mean]), self.mean_fn
        )
