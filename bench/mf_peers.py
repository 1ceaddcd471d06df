"""Peer methods for the replay family of ``bench/mf_family.py``: Optuna's samplers and ADMIRE-BayesOpt's MF-MES.

Each runner drives one :class:`bench.mf_family.Replay` (the pool, the spend and the scoring, shared with
mixopt's own methods) and spends its budget the way its original does; ``bench/RESULTS.md`` lists every
way a re-implementation here differs from the original.

* Optuna (TPE or GPSampler), as a practitioner would use it on a pool: one float in [0, 1] per domain,
  normalised to a mixture, snapped to the nearest unused target row (L1), told that row's loss; four trials
  asked per batch; recommending the best measured.
* MF-MES, after ``mfbayesopt_maxvalue.py`` of ADMIRE-BayesOpt (botorch 0.10 there): inputs are the mixture
  and one fidelity column whose value is the run's cost relative to a target run; BoTorch's
  ``SingleTaskMultiFidelityGP`` (linear-truncated fidelity kernel, no outcome transform) on the negated
  loss; ``qMultiFidelityMaxValueEntropy`` with one max-value sample drawn on the runs made so far,
  projected to the target, weighted by the inverse of an affine cost model (cost = the fidelity column);
  one run at a time, the pool row with the largest acquisition value, removed from the pool once taken;
  one random cheap row to start. Its own recommendation is the target row with the largest acquisition
  value (``get_recommendation`` there); the best measured target run is scored alongside as a second
  method from the same trajectory.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from bench.mf_family import Replay

BATCH = 4
#: Run counts at which MF-MES refits its GP hyperparameters (a doubling schedule); between refits the GP
#: conditions on every run with the last hyperparameters. The original refits from scratch before every
#: run, which costs 2-9 s per fit at 50-250 runs on this VM: about 30 minutes per replay.
_REFIT_AT = frozenset(2**k for k in range(12))


def run_optuna(r: Replay, sampler: str) -> None:
    """Optuna ``sampler`` ("tpe" or "gp") on the target rows, as described in the module docstring."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    seed = int(r.rng.integers(2**31))
    chosen = optuna.samplers.TPESampler(seed=seed) if sampler == "tpe" else optuna.samplers.GPSampler(seed=seed)
    study = optuna.create_study(sampler=chosen)
    names = r.fp.problem.domains
    p = r.fp.pool
    while r.spent() < r.budget and len(r.free(r.high_rows)):
        trials = [study.ask() for _ in range(BATCH)]
        for trial in trials:
            free = r.free(r.high_rows)
            if len(free) == 0:
                study.tell(trial, state=optuna.trial.TrialState.FAIL)
                continue
            raw = np.array([trial.suggest_float(d, 0.0, 1.0) for d in names])
            w = raw / raw.sum() if raw.sum() > 0 else np.full(len(raw), 1.0 / len(raw))
            row = int(free[np.argmin(np.abs(p.mixtures[free] - w).sum(axis=1))])
            r.take([row])
            study.tell(trial, float(p.objective[row]))
        r.score(r.best_measured())


def run_mfmes(r: Replay, best_observed: Replay) -> None:
    """ADMIRE-BayesOpt's MF-MES on the pool; ``best_observed`` shares the runs and scores the best one."""
    import torch
    from botorch.acquisition.cost_aware import InverseCostWeightedUtility
    from botorch.acquisition.max_value_entropy_search import qMultiFidelityMaxValueEntropy
    from botorch.acquisition.utils import project_to_target_fidelity
    from botorch.exceptions.errors import ModelFittingError
    from botorch.fit import fit_gpytorch_mll
    from botorch.models import SingleTaskMultiFidelityGP
    from botorch.models.cost import AffineFidelityCostModel
    from gpytorch.mlls import ExactMarginalLogLikelihood

    torch.manual_seed(int(r.rng.integers(2**31)))
    p = r.fp.pool
    d = p.mixtures.shape[1]
    relative_cost = p.cost / p.cost[r.high_rows].max()
    x_all = torch.as_tensor(np.column_stack([p.mixtures, relative_cost]), dtype=torch.float64)
    y_all = torch.as_tensor(-p.objective, dtype=torch.float64)[:, None]
    cost_model = AffineFidelityCostModel(fidelity_weights={d: 1.0}, fixed_cost=0.0)
    utility = InverseCostWeightedUtility(cost_model=cost_model)

    def project(x: torch.Tensor) -> torch.Tensor:
        return project_to_target_fidelity(x, {d: 1.0}, d + 1)

    low = np.flatnonzero(~r.is_high)
    r.take([int(r.rng.choice(low))])
    state: dict[str, Any] | None = None
    acquisition = None
    while r.spent() < r.budget and len(r.free(np.arange(len(p.objective)))):
        for _ in range(BATCH):
            free = r.free(np.arange(len(p.objective)))
            if len(free) == 0 or r.spent() >= r.budget:
                break
            rows = torch.as_tensor(r.rows)
            model = SingleTaskMultiFidelityGP(x_all[rows], y_all[rows], data_fidelities=[d], outcome_transform=None)
            if state is not None:
                model.load_state_dict(state, strict=False)
            if state is None or len(r.rows) in _REFIT_AT:
                try:
                    fit_gpytorch_mll(ExactMarginalLogLikelihood(model.likelihood, model))
                except ModelFittingError:
                    if state is not None:
                        model.load_state_dict(state, strict=False)
                state = {k: v for k, v in model.state_dict().items() if not k.startswith("train_")}
            model.eval()
            acquisition = qMultiFidelityMaxValueEntropy(
                model,
                candidate_set=x_all[rows],
                num_mv_samples=1,
                cost_aware_utility=utility,
                project=project,
            )
            with torch.no_grad():
                values = acquisition(x_all[torch.as_tensor(free)].unsqueeze(1))
            r.take([int(free[int(torch.argmax(values))])])
        if acquisition is not None:
            targets = x_all[torch.as_tensor(r.high_rows)].clone()
            targets[:, d] = 1.0
            with torch.no_grad():
                r.score(r.target_mixtures[int(torch.argmax(acquisition(targets.unsqueeze(1))))])
        measured = best_observed.best_measured()
        if measured is not None:
            best_observed.score(measured)
