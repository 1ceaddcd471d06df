"""Single-threaded BLAS for law fitting.

Law fits multiply and factorise matrices of a few hundred rows, where BLAS threads gain nothing; on a
machine shared with other work they spin-wait for each other instead, which made fits 20-25x slower in
measurements here (a GP fit: 43 s instead of 1.7 s; a 256-domain Data Mixing Law fit: 59 s instead of
2.5 s). Parallelism belongs one level up, across laws and folds (see :mod:`mixing.evaluation`).

The thread-pool controller is built once, on first use (scanning the loaded libraries costs ~3 ms, too
much for functions an optimiser calls hundreds of times); by then NumPy's and SciPy's BLAS are loaded.
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
