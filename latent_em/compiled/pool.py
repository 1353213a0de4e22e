"""One persistent thread pool for the compiled kernels' row segments.

Starting threads for every E-step is not free: a fresh two-thread
``ThreadPoolExecutor`` that ran 49 trivial tasks took a median 8 ms on the 2-core
development machine while other work ran, against 0.35 ms for the same tasks on a pool
kept alive, next to an E-step of about 18 ms at two threads (N = 200 000, D = K = 16,
full covariances). So the workers are started once per process (again after a
``fork``) and reused.

Work is shared dynamically: ``n_threads`` workers (the calling thread and
``n_threads - 1`` pool threads) take the next unprocessed item until none is left, so a
core taken by another process slows its worker only. The items, and what each item
computes, do not depend on the number of threads, so neither does the result.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

__all__ = ["run_items"]

_LOCK = threading.Lock()
_STATE: dict[str, Any] = {"pid": None, "pool": None, "size": 0}
_LOCAL = threading.local()


def _mark_worker() -> None:
    _LOCAL.worker = True


def _pool(size: int) -> ThreadPoolExecutor:
    """The process's pool with at least ``size`` threads (made or grown on demand)."""
    with _LOCK:
        if _STATE["pid"] != os.getpid() or _STATE["size"] < size:
            old = _STATE["pool"] if _STATE["pid"] == os.getpid() else None
            _STATE["pool"] = ThreadPoolExecutor(
                size, thread_name_prefix="latent_em", initializer=_mark_worker
            )
            _STATE["pid"] = os.getpid()
            _STATE["size"] = size
            if old is not None:
                old.shutdown(wait=False)
        return _STATE["pool"]


def run_items(func: Callable[..., Any], items: Sequence[tuple], n_threads: int) -> None:
    """Call ``func(*item)`` for every item, on up to ``n_threads`` threads.

    Parameters
    ----------
    func : callable
        A function that releases the GIL (a ``nogil`` compiled kernel, through a thin
        Python wrapper) and writes its results into arrays of its own item.
    items : sequence of tuple
        Arguments, one tuple per call.
    n_threads : int
        Most threads to use, the calling thread included. Called from one of the pool's
        own threads, everything runs in the calling thread (no nested waiting).
    """
    threads = max(1, min(int(n_threads), len(items)))
    if threads == 1 or getattr(_LOCAL, "worker", False):
        for item in items:
            func(*item)
        return
    lock = threading.Lock()
    position = [0]
    failed: list[BaseException] = []

    def drain() -> None:
        while not failed:
            with lock:
                index = position[0]
                position[0] += 1
            if index >= len(items):
                return
            try:
                func(*items[index])
            except BaseException as exc:  # re-raised in the caller
                failed.append(exc)
                return

    pool = _pool(threads - 1)
    helpers: list[Future] = [pool.submit(drain) for _ in range(threads - 1)]
    drain()
    for helper in helpers:
        helper.result()
    if failed:
        raise failed[0]
