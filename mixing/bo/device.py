"""The one place that decides where Bayesian-optimisation tensors live and in which precision.

GP marginal likelihoods and Cholesky factors lose digits fast in single precision (kernel matrices of
near-duplicate mixtures are close to singular), so every BO tensor is float64 on either device. Choosing
device and dtype here, and only here, is what lets the CPU and CUDA paths run the same code.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch
from numpy.typing import ArrayLike

from mixing.compute import Device

#: Precision of every BO tensor (see module docstring).
DTYPE = torch.float64


def bo_device(choice: Device = Device.AUTO) -> torch.device:
    """The torch device for ``choice`` (see :class:`mixing.compute.Device`).

    ``cuda`` without a usable GPU raises rather than silently running on the CPU, because a user who
    asks for the GPU wants to know it is not there.
    """
    if choice is Device.CPU or (choice is Device.AUTO and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise RuntimeError("the device asked for is cuda, but torch sees no CUDA device")
    return torch.device("cuda")


def as_tensor(values: ArrayLike, device: torch.device) -> torch.Tensor:
    """A float64 tensor on ``device`` from a numpy array or nested sequence."""
    return torch.as_tensor(np.asarray(values, dtype=np.float64), dtype=DTYPE, device=device)


def to_numpy(values: torch.Tensor) -> np.ndarray:
    return values.detach().to("cpu").numpy().astype(np.float64, copy=False)


@contextmanager
def cpu_threads(threads: int) -> Iterator[None]:
    """Run the block with ``threads`` torch CPU threads (0: torch's own setting); the previous one is
    restored after it. See :class:`mixing.compute.Compute` for why callers default to one."""
    before = torch.get_num_threads()
    if threads > 0:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)
