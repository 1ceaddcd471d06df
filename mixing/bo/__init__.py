"""Multi-fidelity Bayesian optimisation of data mixtures (BoTorch/GPyTorch models, pure tensors in and out).

Modules, one job each: :mod:`~mixing.bo.device` (where tensors live), :mod:`~mixing.bo.encoding`
(simplex to GP inputs), :mod:`~mixing.bo.kernel` (the multi-fidelity covariance),
:mod:`~mixing.bo.surrogate` (fitting), :mod:`~mixing.bo.posterior` (exact posterior over big pools),
:mod:`~mixing.bo.cost` (run-cost model), :mod:`~mixing.bo.acquisition` (cost-aware information gain and
greedy batches), :mod:`~mixing.bo.pool` (feasible candidate pools) and :mod:`~mixing.bo.engine` (the
suggest / recommend loops that :mod:`mixing.methods.bo` exposes to the service).
"""
