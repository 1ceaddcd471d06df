"""Cost-aware multi-fidelity max-value entropy search, in GIBBON's closed form, with greedy batches.

For a candidate run at fidelity s, the information it carries about the minimum ``f*`` of the objective
at the *target* fidelity is approximated as in GIBBON (Moss et al., JMLR 2021; BoTorch's
``qLowerBoundMultiFidelityMaxValueEntropy``)::

    alpha(x, s) = mean_k  -1/2 log(1 - rho^2 * r(gamma_k)),   gamma_k = (mu_T(x) - f*_k) / sigma_T(x)
    r(g) = lambda (g + lambda),  lambda = phi(g) / Phi(g)

where ``rho`` is the correlation between the noisy observation ``y_s(x)`` and the target-fidelity value
``f_T(x)``, and ``f*_k`` are samples of the target minimum. A cheap, biased proxy scores a low ``rho``;
the target itself scores its full information. Dividing by the predicted cost of fidelity s gives the
inverse-cost utility: information per unit of compute. A test checks the formula against BoTorch.

Batches are built greedily: after each pick, the joint Gaussian of the remaining candidates is conditioned
on the picked run's noisy observation (a rank-one update; its value is taken at the posterior mean, the
"kriging believer", under which the mean does not move). Variance near the pick -- at every fidelity --
shrinks, so the next pick goes where information is left. Pending runs enter the same way, earlier, via
:meth:`~mixing.bo.posterior.ExactPosterior.believe`.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

from mixing.bo.device import as_tensor
from mixing.bo.posterior import ExactPosterior, robust_cholesky

_CLAMP = 1e-10


def sample_min_values(
    posterior: ExactPosterior, support: torch.Tensor, n_samples: int, rng: np.random.Generator
) -> torch.Tensor:
    """``n_samples`` draws of the minimum of ``f`` over ``support`` (points at the target fidelity).

    Joint samples over a support chosen for low lower-confidence bounds keep the correlations that the
    independent Gumbel approximation ignores. Normals come from the numpy generator so CPU and CUDA draw
    the same numbers.
    """
    mean, cov = posterior.joint(support)
    chol = robust_cholesky(cov)
    eps = as_tensor(rng.standard_normal((support.shape[0], n_samples)), support.device)
    return (mean.unsqueeze(-1) + chol @ eps).min(dim=0).values


def information_gain(
    mean_t: torch.Tensor,
    var_t: torch.Tensor,
    var_obs: torch.Tensor,
    cov_obs_t: torch.Tensor,
    min_values: torch.Tensor,
) -> torch.Tensor:
    """GIBBON's information gain (nats) about the target minimum from one observation per candidate.

    ``mean_t, var_t``: latent posterior at the candidate's mixture at the target fidelity; ``var_obs``:
    variance of the noisy observation at the candidate's own fidelity; ``cov_obs_t``: their covariance.
    All shaped ``(n,)``.
    """
    sd_t = var_t.clamp_min(_CLAMP).sqrt()
    gamma = (mean_t.unsqueeze(-1) - min_values.unsqueeze(0)) / sd_t.unsqueeze(-1)
    log_pdf = -0.5 * gamma * gamma - 0.5 * math.log(2.0 * math.pi)
    lam = torch.exp(log_pdf - torch.special.log_ndtr(gamma))
    rho2 = (cov_obs_t * cov_obs_t / (var_obs.clamp_min(_CLAMP) * var_t.clamp_min(_CLAMP))).clamp(0.0, 1.0)
    inner = 1.0 - rho2.unsqueeze(-1) * lam * (gamma + lam)
    return (-0.5 * inner.clamp_min(_CLAMP).log()).mean(dim=-1)


def greedy_batch(
    gain: Callable[[torch.Tensor], torch.Tensor],
    cov: torch.Tensor,
    noise: float,
    cost: torch.Tensor,
    count: int,
) -> list[tuple[int, float, float]]:
    """Pick ``min(count, m)`` of ``m`` distinct candidate runs; returns ``(index, gain, gain / cost)`` per pick.

    ``cov`` is the joint latent covariance of ``[the m candidate runs; the target points the gain looks
    at]``; ``gain(cov)`` scores all candidates under it. After each pick ``cov`` is conditioned on
    the picked run's noisy observation, and the pick leaves the candidates. The caller removes repeated
    runs beforehand (see :func:`~mixing.methods.common.first_free_distinct`), so every pick is a new run.
    """
    m = cost.shape[0]
    cov = cov.clone()
    allowed = torch.ones(m, dtype=torch.bool, device=cov.device)
    picks: list[tuple[int, float, float]] = []
    for _ in range(min(count, m)):
        value = gain(cov)
        utility = torch.where(allowed, value / cost, torch.full_like(value, -math.inf))
        best = int(torch.argmax(utility))
        picks.append((best, float(value[best]), float(utility[best])))
        allowed[best] = False
        column = cov[:, best].clone()
        cov -= torch.outer(column, column) / (column[best] + noise)
    return picks


def expected_hypervolume_improvement(mean: torch.Tensor, sd: torch.Tensor, cells: torch.Tensor) -> torch.Tensor:
    """Expected hypervolume improvement ``(n,)`` of one new point per row, exact for independent Gaussian axes.

    ``mean, sd`` ``(n, m)``: each candidate's Gaussian per axis, *higher is better* (BoTorch's orientation);
    ``cells`` ``(2, C, m)``: lower and upper corners of the boxes that tile the region the current front does
    not dominate above the reference point (BoTorch's ``FastNondominatedPartitioning.get_hypercell_bounds``;
    upper corners may be ``inf``). A point ``y`` improves the hypervolume by ``sum_c prod_j clip(y_j - l_cj,
    0, u_cj - l_cj)``; with independent axes the expectation of each product is the product of
    ``E[(Y_j - l)^+] - E[(Y_j - u)^+]``, and ``E[(Y - a)^+] = sd phi(z) + (mean - a) Phi(z)``, ``z = (mean -
    a) / sd`` -- the closed form of Yang et al. (2019) that BoTorch's analytic ``ExpectedHypervolumeImprovement``
    evaluates on the same boxes.
    """
    mu, s = mean.unsqueeze(1), sd.clamp_min(_CLAMP).unsqueeze(1)
    normal = torch.distributions.Normal(torch.zeros((), dtype=mu.dtype, device=mu.device), 1.0)

    def above(a: torch.Tensor) -> torch.Tensor:
        finite = torch.isfinite(a)
        z = (mu - torch.where(finite, a, 0.0)) / s
        value = s * normal.log_prob(z).exp() + (mu - torch.where(finite, a, 0.0)) * normal.cdf(z)
        return torch.where(finite, value, torch.zeros_like(value))

    lower, upper = cells[0].unsqueeze(0), cells[1].unsqueeze(0)
    return (above(lower) - above(upper)).clamp_min(0.0).prod(dim=-1).sum(dim=-1)
