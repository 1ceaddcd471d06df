"""Exact GP posterior with fixed hyperparameters, written for large candidate pools.

Scoring tens of thousands of candidates needs only marginal variances and a few cross-covariances, never
the full ``N x N`` test covariance that a generic posterior object builds lazily. Holding the Cholesky
factor ``L`` of ``K + noise I`` and computing ``L^-1 k(X, Z)`` per chunk gives every quantity the
acquisition needs with one triangular solve per candidate, on whichever device the tensors live.

Two processes share the data: ``f`` (what a run observes, up to noise; its kernel is ``kernel``) and the
*target* ``h`` (the part of ``f`` whose minimum the search is after; kernel ``target_kernel``, a summand of
``kernel``, so ``Cov(f, h) = k_h``). Predictions use ``f``; the acquisition asks about ``h``.
"""

from __future__ import annotations

from collections.abc import Iterator

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


class ExactPosterior:
    """``f | data`` (and ``h | data``) for a constant-mean GP with homoscedastic Gaussian noise."""

    def __init__(
        self,
        kernel: Kernel,
        constant: float,
        noise: float,
        x: torch.Tensor,
        y: torch.Tensor,
        target_kernel: Kernel | None = None,
    ) -> None:
        self.kernel, self.constant, self.noise = kernel, constant, noise
        self.target_kernel = target_kernel if target_kernel is not None else kernel
        self.x, self.y = x, y
        with torch.no_grad():
            k = self._k(self.kernel, x, x)
            k.diagonal().add_(noise)
            self.chol = robust_cholesky(k)
            resid = (y - constant).unsqueeze(-1)
            self.alpha = torch.cholesky_solve(resid, self.chol).squeeze(-1)

    @staticmethod
    def _k(kernel: Kernel, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return kernel(a, b).to_dense()

    def _solve(self, kernel: Kernel, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(k(X, z), L^-1 k(X, z))`` for one chunk of test points."""
        kxz = self._k(kernel, self.x, z)
        return kxz, torch.linalg.solve_triangular(self.chol, kxz, upper=False)

    def _moments(self, kernel: Kernel, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(mean, variance, ``L^-1 k(X, z)``) of the process with ``kernel`` at one chunk."""
        kxz, v = self._solve(kernel, z)
        var = (kernel(z, z, diag=True) - (v * v).sum(0)).clamp_min(_MIN_VAR)
        return self.constant + kxz.T @ self.alpha, var, v

    @staticmethod
    def _chunks(*tensors: torch.Tensor) -> Iterator[tuple[torch.Tensor, ...]]:
        for i in range(0, tensors[0].shape[0], CHUNK):
            yield tuple(t[i : i + CHUNK] for t in tensors)

    @torch.no_grad()
    def mean_var(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior mean and latent (noise-free) variance of ``f`` at each row of ``z``."""
        parts = [self._moments(self.kernel, c)[:2] for (c,) in self._chunks(z)]
        return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])

    @torch.no_grad()
    def paired(self, z: torch.Tensor, z_ref: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """For row-aligned ``z`` and ``z_ref``: mean and variance of ``f(z)`` and ``h(z_ref)``, and
        ``Cov(f(z), h(z_ref))`` -- the run a candidate would observe against the target it informs."""
        out: list[list[torch.Tensor]] = [[] for _ in range(5)]
        for a, b in self._chunks(z, z_ref):
            mean_a, var_a, va = self._moments(self.kernel, a)
            mean_b, var_b, vb = self._moments(self.target_kernel, b)
            cov = self.target_kernel(a, b, diag=True) - (va * vb).sum(0)
            for store, part in zip(out, (mean_a, var_a, mean_b, var_b, cov), strict=True):
                store.append(part)
        return tuple(torch.cat(parts) for parts in out)

    @torch.no_grad()
    def target_joint(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean ``(m,)`` and full covariance ``(m, m)`` of ``h`` at a small set of points."""
        kxz, v = self._solve(self.target_kernel, z)
        return self.constant + kxz.T @ self.alpha, self._k(self.target_kernel, z, z) - v.T @ v

    @torch.no_grad()
    def cross(self, z: torch.Tensor, z_ref: torch.Tensor) -> torch.Tensor:
        """``Cov(f(z_i), h(z_ref_j))``, shape ``(len(z), len(z_ref))``, in chunks of ``z``."""
        _, w = self._solve(self.target_kernel, z_ref)
        parts = []
        for (a,) in self._chunks(z):
            _, v = self._solve(self.kernel, a)
            parts.append(self._k(self.target_kernel, a, z_ref) - v.T @ w)
        return torch.cat(parts)

    @torch.no_grad()
    def joint(self, z: torch.Tensor, z_ref: torch.Tensor) -> torch.Tensor:
        """Joint covariance of ``[f(z); h(z_ref)]`` for small sets, shape ``(m + m', m + m')``."""
        _, v = self._solve(self.kernel, z)
        _, w = self._solve(self.target_kernel, z_ref)
        ff = self._k(self.kernel, z, z) - v.T @ v
        fh = self._k(self.target_kernel, z, z_ref) - v.T @ w
        hh = self._k(self.target_kernel, z_ref, z_ref) - w.T @ w
        return torch.cat([torch.cat([ff, fh], 1), torch.cat([fh.T, hh], 1)], 0)

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
            self.kernel,
            self.constant,
            self.noise,
            torch.cat([self.x, z]),
            torch.cat([self.y, mean]),
            self.target_kernel,
        )
