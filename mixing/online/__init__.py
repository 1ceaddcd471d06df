"""Online data mixing: methods that change the mixture while one model trains (DoReMi, Aioli), and the
fixed baselines they are compared with (stratified, static prior).

Usage from a training loop (or from the service, which stores ``state`` between HTTP calls)::

    state, d = start("aioli", n_domains=7)
    while training:
        train(d.weights, steps=d.train_steps)           # d.probe says when this is an Aioli probe
        state, d = observe(state, step, per_domain_losses)
    final_mixture = d.mixture
"""

from mixing.online.directive import Directive, Phase, Probe
from mixing.online.errors import (
    DomainMismatchError,
    HyperparameterError,
    InvalidWeightsError,
    NonFiniteValueError,
    OnlineInputError,
    StateError,
    StepOrderError,
    UnknownMethodError,
)
from mixing.online.session import (
    ONLINE_METHODS,
    STATE_SCHEMA,
    directive,
    observe,
    start,
    validate_hyperparameters,
)

__all__ = [
    "ONLINE_METHODS",
    "STATE_SCHEMA",
    "Directive",
    "DomainMismatchError",
    "HyperparameterError",
    "InvalidWeightsError",
    "NonFiniteValueError",
    "OnlineInputError",
    "Phase",
    "Probe",
    "StateError",
    "StepOrderError",
    "UnknownMethodError",
    "directive",
    "observe",
    "start",
    "validate_hyperparameters",
]
