"""Loading the RegMix proxy-run tables (Liu et al. 2024, github.com/sail-sg/regmix ``data/``, MIT licence).

The files live in ``../shared/data/regmix`` beside the checkout (or ``MIXOPT_REGMIX_DATA``). The domain
token shares below are the Pile token distribution published with RegMix's mixture-synthesis script; they
are the Dirichlet prior the paper sampled its proxy mixtures from.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

MIXTURE_PREFIX = "train_the_pile_"
LOSS_PREFIX = "metric/the_pile_"
LOSS_SUFFIX = "_val_loss"

PILE_TOKEN_SHARE = {
    "arxiv": 0.113285273, "freelaw": 0.079608651, "nih_exporter": 0.003913491, "pubmed_central": 0.185375901,
    "wikipedia_en": 0.051081359, "dm_mathematics": 0.015962925, "github": 0.101750772, "philpapers": 0.003707518,
    "stackexchange": 0.066529351, "enron_emails": 0.001750772, "gutenberg_pg_19": 0.027085479,
    "pile_cc": 0.236869207, "ubuntu_irc": 0.01184346, "europarl": 0.007929969, "hackernews": 0.008032956,
    "pubmed_abstracts": 0.038825953, "uspto_backgrounds": 0.046446962,
}


@dataclass(frozen=True)
class RegMixSplit:
    """One split: mixtures (domain columns) and losses (``loss/<domain>`` columns), row-aligned."""

    mixtures: pd.DataFrame
    losses: pd.DataFrame
    params: float


def load_split(data_dir: Path, split: str) -> RegMixSplit:
    """``split`` is one of ``train_1m``, ``test_1m``, ``test_60m``."""
    kind, scale = split.split("_")
    mix = pd.read_csv(data_dir / f"{kind}_mixture_{scale}.csv").set_index("index")
    loss = pd.read_csv(data_dir / f"{kind}_pile_loss_{scale}.csv").set_index("index").loc[mix.index]
    mix.columns = [c.removeprefix(MIXTURE_PREFIX) for c in mix.columns]
    loss.columns = ["loss/" + c.removeprefix(LOSS_PREFIX).removesuffix(LOSS_SUFFIX) for c in loss.columns]
    return RegMixSplit(mix, loss, 1e6 if scale == "1m" else 6e7)


def domain_specs(domains: list[str]) -> list[dict[str, object]]:
    return [{"name": d, "prior": PILE_TOKEN_SHARE.get(d)} for d in domains]
