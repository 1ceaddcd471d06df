"""The one place that decides where Bayesian-optimisation tensors live and in which precision.

GP marginal likelihoods and Cholesky factors lose digits fast in single precision (kernel matrices of
near-duplicate mixtures are close to singular), so every BO tensor is float64 on either device. Choosing
device and dtype here, and only here, is what lets the CPU and CUDA paths run the same code.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch
from numpy.typing import ArrayLike

#: Precision of every BO tensor (see module docstring).
DTYPE = torch.float64

#: Environment variable naming the device: ``auto`` (CUDA when available), ``cpu`` or ``cuda``.
DEVICE_ENV = "MIXOPT_DEVICE"
#: Environment variable capping torch's CPU threads during BO work (default 1; 0 = leave torch's setting).
THREADS_ENV = "MIXOPT_BO_THREADS"


def bo_device(choice: str | None = None) -> torch.device:
    """The device for BO tensors: ``choice``, else ``$MIXOPT_DEVICE``, else ``auto``.

    ``cuda`` without a usable GPU raises rather than silently running on the CPU, because a user who
    asks for the GPU wants to know it is not there.
    """
    wanted = (choice or os.environ.get(DEVICE_ENV) or "auto").strip().lower()
    if wanted not in ("auto", "cpu", "cuda"):
        raise ValueError(f"{DEVICE_ENV} must be auto, cpu or cuda, not {wanted!r}")
    if wanted == "cpu" or (wanted == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise RuntimeError(f"{DEVICE_ENV}=cuda but torch sees no CUDA device")
    return torch.device("cuda")


def as_tensor(values: ArrayLike, device: torch.device) -> torch.Tensor:
    """A float64 tensor on ``device`` from a numpy array or nested sequence."""
    return torch.as_tensor(np.asarray(values, dtype=np.float64), dtype=DTYPE, device=device)


def to_numpy(values: torch.Tensor) -> np.ndarray:
    return values.detach().to("cpu").numpy().astype(np.float64, copy=False)


@contextmanager
def cpu_threads() -> Iterator[None]:
    """Run BO work with at most ``$MIXOPT_BO_THREADS`` (default 1) torch CPU threads.

    BO's matrices are small (hyperparameters are fitted on at most 512 runs), so extra threads buy
    little, while OpenMP threads that find their cores busy -- a worker running two jobs, tests beside a
    benchmark -- spin and can make a fit tens of times slower. One thread per job is the robust default;
    raise it for large problems on an otherwise idle machine. The previous setting is restored.
    """
    wanted = int(os.environ.get(THREADS_ENV, "1"))
    before = torch.get_num_threads()
    if wanted > 0:
        torch.set_num_threads(wanted)
    try:
        yield
    finally:
        torch.set_num_threads(before)
