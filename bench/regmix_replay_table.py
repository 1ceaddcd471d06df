"""Build the replay pool from the RegMix data: the 256 test mixtures at 1M and at 60M parameters.

Cost is proportional to parameters (1 for 1M, 60 for 60M). Objectives: ``loss/pile_cc`` and ``loss/mean``
(the mean of the 13 domain losses).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from runtables.regmix import load_split  # noqa: E402
from service.settings import get_settings  # noqa: E402


def build(data_dir: Path) -> pd.DataFrame:
    frames = []
    for split in ("test_1m", "test_60m"):
        s = load_split(data_dir, split)
        f = s.mixtures.add_prefix("mix/").join(s.losses)
        f["loss/mean"] = s.losses.mean(axis=1)
        f["params"] = s.params
        f["cost"] = s.params / 1e6
        frames.append(f.reset_index())
    return pd.concat(frames, ignore_index=True)


if __name__ == "__main__":
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("bench/results/regmix_replay_pool.csv")
    out.parent.mkdir(parents=True, exist_ok=True)
    build(get_settings().regmix_data).to_csv(out, index=False)
    print(out)
