"""Single-threaded BLAS for law fitting.

Law fits multiply and factorise matrices of a few hundred rows, where BLAS threads gain nothing; on a
machine shared with other work they spin-wait for each other instead, which costs far more than they
save (figures in bench/RESULTS.md). Parallelism belongs one level up, across laws and folds (see
:mod:`mixing.evaluation`).

The thread-pool controller is built once, on first use: scanning the loaded libraries is too slow for
functions an optimiser calls hundreds of times. By then NumPy's and SciPy's BLAS are loaded.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from threadpoolctl import ThreadpoolController

P = ParamSpec("P")
R = TypeVar("R")


@functools.cache
def _controller() -> ThreadpoolController:
    return ThreadpoolController()


def single_threaded(fn: Callable[P, R]) -> Callable[P, R]:
    """Run ``fn`` with BLAS limited to one thread (restored afterwards)."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with _controller().limit(limits=1, user_api="blas"):
            return fn(*args, **kwargs)

    return wrapper
