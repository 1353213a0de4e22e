"""BLAS held at one thread while the compiled kernels run in their own threads.

Shared by every model with a compiled E-step (the Gaussian mixture, the discrete
mixtures): the limit is process-wide and reference-counted, so nested and concurrent
holders (a fit, its E-steps, a Dask threaded scheduler) compose.
"""

from __future__ import annotations

import contextlib
import importlib
import threading
from collections.abc import Iterator
from typing import Any

__all__ = ["single_threaded_blas"]

_BLAS_LOCK = threading.Lock()
#: the threadpoolctl controller, the active limiter, and how many callers are inside it
_BLAS_STATE: dict[str, Any] = {"controller": None, "limiter": None, "depth": 0}


@contextlib.contextmanager
def single_threaded_blas() -> Iterator[bool]:
    """Limit BLAS to one thread while the kernels run; yields whether that worked.

    The per-block products are small (a few hundred kFLOP): a multi-threaded BLAS spends
    more time waking and synchronizing its threads than computing, which is catastrophic
    on a busy machine (measured: 10-20x slower on 2 shared cores). Parallelism comes
    from running blocks in our own threads instead. The limit is process-wide, so it is
    reference-counted: set by the first caller (of possibly many threads, e.g. a Dask
    threaded scheduler) and lifted by the last.
    """
    with _BLAS_LOCK:
        if _BLAS_STATE["controller"] is None:
            # threadpoolctl controls the BLAS libraries loaded when the controller is
            # made: load scipy.linalg's (its own OpenBLAS, used for the precisions'
            # factors) first, since ``import latent_em`` no longer does (measured: a
            # 16 x 16 solve_triangular took 1.7 ms with that BLAS at 2 threads on a
            # loaded 2-core machine, 6 us at one)
            importlib.import_module("scipy.linalg")
            try:
                from threadpoolctl import ThreadpoolController
            except ImportError:
                _BLAS_STATE["controller"] = False
            else:
                _BLAS_STATE["controller"] = ThreadpoolController()
        controller = _BLAS_STATE["controller"]
        if controller:
            if _BLAS_STATE["depth"] == 0:
                _BLAS_STATE["limiter"] = controller.limit(limits=1, user_api="blas")
            _BLAS_STATE["depth"] += 1
    if not controller:
        yield False
        return
    try:
        yield True
    finally:
        with _BLAS_LOCK:
            _BLAS_STATE["depth"] -= 1
            if _BLAS_STATE["depth"] == 0:
                _BLAS_STATE["limiter"].restore_original_limits()
                _BLAS_STATE["limiter"] = None
