"""The multi-fidelity covariance over (encoded mixture x, normalised fidelity s).

    k((x, s), (x', s')) = a^2 k_off(s, s') + b^2 k_mix(x, x') k_fid(s, s') exp(beta . (s + s'))

* ``k_mix``: Matern-5/2 with one lengthscale per domain (ARD) -- the mixture effect.
* ``k_fid``: RBF over the fidelity axes -- how far the mixture effect carries from one scale to another
  (its lengthscale is the learned "how faithful are cheap runs").
* ``exp(beta . (s + s'))``: the mixture effect's amplitude may grow or shrink with scale (on RegMix the
  spread of losses across mixtures is ~20% smaller at 60M than at 1M); without it that change could only
  be explained by a lower cross-scale correlation, which undervalues cheap runs.
* ``k_off``: RBF over the fidelity axes alone -- the mixture-independent shift between scales (small
  proxies have much higher loss everywhere). Without it the shift would have to be explained by the
  mixture term and would wreck its lengthscales.

This is the structure of the downsampling / linear-truncated kernels (a shared part plus a part that
varies with fidelity) at a fraction of their cost: BoTorch's ``LinearTruncatedFidelityKernel`` builds two
Matern kernels plus polynomial fidelity terms per evaluation, which is what made
``SingleTaskMultiFidelityGP`` take 11 s to fit at 250 runs. With no fidelity axes the kernel reduces to
``b^2 k_mix``, i.e. single-fidelity BO.

Priors: the dimension-scaled LogNormal lengthscale prior of Hvarfner et al. (2024) on ``k_mix`` (BoTorch's
default), a LogNormal with mode 1.5 on the fidelity lengthscales (see :data:`FIDELITY_LENGTHSCALE`),
Normal(0, 1) on ``beta`` and Gamma(2, 1) on the output scales (targets are standardised). Priors keep the
marginal likelihood well-conditioned, which is what allows a single short L-BFGS run instead of restarts.
The fidelity prior matters most before any target-scale run exists: the likelihood then says nothing about
the cross-scale correlation, and the fit sits at the prior's mode. A prior whose mode meant "proxies are
unrelated to the target" (LogNormal(0, 1) has its mode at 0.37, correlation 0.03) made the acquisition
open with target-scale runs at arbitrary mixtures; scaling studies (RegMix, data mixing laws) find mixture
rankings largely stable across scales, which is what the chosen mode encodes.
"""

from __future__ import annotations

from math import log, sqrt

import torch
from gpytorch.constraints import GreaterThan
from gpytorch.kernels import Kernel, MaternKernel, RBFKernel, ScaleKernel
from gpytorch.priors import GammaPrior, LogNormalPrior, NormalPrior

#: Mode of the fidelity lengthscale prior, in units of the normalised fidelity range, and the prior's
#: log-sd. A mode of 1.5 puts the prior correlation of the mixture effect between the cheapest and the target
#: fidelity at exp(-1 / (2 * 1.5^2)) = 0.8: proxies are assumed informative until data say otherwise.
FIDELITY_LENGTHSCALE = 1.5
FIDELITY_LOG_SD = 0.5


class FidelityAmplitude(Kernel):
    """Rank-one kernel ``exp(beta . (s + s'))`` on the fidelity axes (see module docstring)."""

    def __init__(self, n_axes: int, active_dims: tuple[int, ...]) -> None:
        super().__init__(active_dims=active_dims)
        self.register_parameter("beta", torch.nn.Parameter(torch.zeros(n_axes)))
        self.register_prior("beta_prior", NormalPrior(0.0, 1.0), _beta)

    def forward(
        self, x1: torch.Tensor, x2: torch.Tensor, diag: bool = False, **params: object
    ) -> torch.Tensor:
        a1, a2 = torch.exp(x1 @ self.beta), torch.exp(x2 @ self.beta)
        return a1 * a2 if diag else a1.unsqueeze(-1) * a2.unsqueeze(-2)


def _beta(kernel: FidelityAmplitude) -> torch.Tensor:
    """The prior's closure: a named function, so a fitted kernel pickles (stored models, see mixing.methods)."""
    return kernel.beta


def multi_fidelity_kernel(n_domains: int, n_axes: int) -> Kernel:
    """The kernel above for inputs ``[x (n_domains) | s (n_axes)]``."""
    ls_prior = LogNormalPrior(loc=sqrt(2.0) + 0.5 * log(n_domains), scale=sqrt(3.0))
    k_mix = MaternKernel(
        nu=2.5,
        ard_num_dims=n_domains,
        active_dims=tuple(range(n_domains)),
        lengthscale_prior=ls_prior,
        lengthscale_constraint=GreaterThan(2.5e-2, transform=None, initial_value=ls_prior.mode),
    )
    if n_axes == 0:
        return ScaleKernel(k_mix, outputscale_prior=GammaPrior(2.0, 1.0))
    s_dims = tuple(range(n_domains, n_domains + n_axes))
    signal = k_mix * _fidelity_rbf(n_axes, s_dims) * FidelityAmplitude(n_axes, s_dims)
    offset = _fidelity_rbf(n_axes, s_dims)
    return ScaleKernel(offset, outputscale_prior=GammaPrior(2.0, 1.0)) + ScaleKernel(
        signal, outputscale_prior=GammaPrior(2.0, 1.0)
    )


def _fidelity_rbf(n_axes: int, dims: tuple[int, ...]) -> RBFKernel:
    prior = LogNormalPrior(loc=log(FIDELITY_LENGTHSCALE) + FIDELITY_LOG_SD**2, scale=FIDELITY_LOG_SD)
    return RBFKernel(
        ard_num_dims=n_axes,
        active_dims=dims,
        lengthscale_prior=prior,
        lengthscale_constraint=GreaterThan(1e-2, transform=None, initial_value=FIDELITY_LENGTHSCALE),
    )
