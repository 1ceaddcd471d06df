"""Where a method's numerical work runs: the caller's choice, passed in with every call.

The service reads it from its settings (``MIXOPT_DEVICE``, ``MIXOPT_BO_THREADS``) and puts it in the
:class:`~mixing.methods.base.SearchContext`; benchmarks and tests pass their own. The algorithm packages
read no environment variables.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Device(StrEnum):
    """``auto``: CUDA when torch sees a GPU, else the CPU; ``cuda`` fails where there is none."""

    AUTO = "auto"
    CPU = "cpu"
    CUDA = "cuda"


@dataclass(frozen=True)
class Compute:
    """Device for model tensors and the torch CPU threads a call may use (0 = leave torch's setting).

    One thread is the default: BO's matrices are small (hyperparameters are fitted on at most 512 runs),
    so extra threads buy little, while OpenMP threads that find their cores busy -- a worker running two
    jobs, tests beside a benchmark -- spin and can make a fit tens of times slower.
    """

    device: Device = Device.AUTO
    threads: int = 1
