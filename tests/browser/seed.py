"""Seeding a live server with the RegMix proxy runs, for the browser tests and the screenshot script."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from mixopt_client import MixoptClient

from runtables.regmix import domain_specs, load_split
from service.db import make_engine, make_session_factory
from service.operations.recommend import recommend
from service.store import Store

#: The paper's target metric. A single-metric objective keeps each model fit to a few seconds on 2 cores;
#: every run still reports all 13 losses, so tables and comparisons show them.
OBJECTIVE = "loss/pile_cc"
#: Cost of a run in units of one 1M-parameter proxy (compute grows with parameters at fixed tokens).
COST_PER_PARAM = 1e-6
SPLITS = ("train_1m", "test_60m")


def regmix_runs(data_dir: Path, splits: tuple[str, ...] = SPLITS) -> list[dict[str, Any]]:
    """Run reports for ``splits`` (512 runs at 1M and 256 at 60M by default), with a ``params`` fidelity."""
    runs: list[dict[str, Any]] = []
    for split in splits:
        data = load_split(data_dir, split)
        for (index, mix), (_, loss) in zip(data.mixtures.iterrows(), data.losses.iterrows(), strict=True):
            runs.append({"mixture": {k: float(v) for k, v in mix.items()},
                         "fidelity": {"params": data.params},
                         "metrics": {k: float(v) for k, v in loss.items()},
                         "cost": data.params * COST_PER_PARAM,
                         "client_run_id": f"{split}-{index}"})
    return runs


def experiment_spec(name: str, data_dir: Path) -> dict[str, Any]:
    domains = list(load_split(data_dir, "train_1m").mixtures.columns)
    return {
        "name": name,
        "domains": domain_specs(domains),
        "objective": {"metrics": [OBJECTIVE], "aggregate": "single", "goal": "minimize"},
        "fidelities": [{"name": "params", "min": 1e6, "max": 1e9, "target": 1e9}],
        "metadata": {"source": "RegMix (Liu et al. 2024)"},
    }


def seed_regmix(client: MixoptClient, data_dir: Path, name: str = "regmix-pile") -> dict[str, Any]:
    """Create the experiment, import the runs and return the experiment as the API reports it."""
    exp = client.create_experiment(experiment_spec(name, data_dir))
    client.import_runs(exp["id"], regmix_runs(data_dir))
    return client.get_experiment(exp["id"])


def store_recommendation(database_url: str, experiment_id: str, method: str = "regmix", seed: int = 0
                         ) -> None:
    """Compute and store a recommendation with ``method`` through the service's own task, as a refit does.

    ``GET /recommendation`` always uses the ``auto`` method, which on a multi-fidelity experiment is BO
    (minutes on 2 cores); the pages only read what is stored, so any real method serves their tests.
    """
    engine = make_engine(database_url)
    try:
        store = Store(engine, make_session_factory(engine))
        recommend(store, experiment_id, method_name=method, seed=seed)
    finally:
        engine.dispose()


def start_online_session(client: MixoptClient, exp: dict[str, Any], observations: int = 6) -> str:
    """A DoReMi online session fed synthetic per-domain losses whose excess over the reference oscillates
    out of phase across domains, so its weights keep moving; returns the session id."""
    domains = [d["name"] for d in exp["domains"]]
    path = f"/v1/experiments/{exp['id']}/online-sessions"
    body = {"method": "doremi", "reference_losses": dict.fromkeys(domains, 3.0)}
    session = client.request("POST", path, json=body).json()
    for k in range(1, observations + 1):
        step = 200 * k
        losses = {d: 3.0 + 0.1 * math.sin(i + step / 2000) ** 2 for i, d in enumerate(domains)}
        client.request("POST", f"{path}/{session['id']}/observations", json={"step": step, "losses": losses})
    return str(session["id"])
