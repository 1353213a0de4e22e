"""The one place that imports Numba: a ``jit`` decorator with the project's options.

Every compiled kernel is a ``nogil`` function (the caller runs row segments on a
thread pool, see :mod:`latent_em.compiled.gaussian`), compiled lazily on first call,
with ``error_model="numpy"`` (a division must not get a ``ZeroDivisionError`` branch,
which keeps loops scalar) and cached on disk (``cache=True``) where Numba finds a
writable cache directory. Where it finds none (a read-only install, ``NUMBA_CACHE_DIR``
not writable), the kernels are compiled in every process instead of failing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numba

__all__ = ["CONTRACT", "FAST", "EXACT", "jit", "numba"]

#: fast-math flags for the summing kernels: ``reassoc`` lets LLVM vectorize reductions,
#: ``contract`` fuses multiply-adds. No ``nnan``/``ninf`` (``-inf`` log-weights of
#: empty components and NaN propagation must keep their meaning) and no ``arcp``.
FAST = frozenset({"reassoc", "contract", "nsz"})
#: no fast-math at all: IEEE arithmetic exactly as written
EXACT: frozenset[str] = frozenset()
#: fused multiply-adds only, no reassociation: for
#: :func:`latent_em.compiled.fastexp.exp_inplace`, whose rounding trick
#: ``(t + 1.5·2⁵²) - 1.5·2⁵²`` ``reassoc`` would fold away, and which stays exact when
#: ``x·(1/ln 2) + 1.5·2⁵²`` is one fused operation
CONTRACT = frozenset({"contract"})


def jit(fastmath: frozenset[str] = FAST) -> Callable[[Callable[..., Any]], Any]:
    """``numba.njit(nogil=True, error_model="numpy", cache=True, ...)``, falling back to
    ``cache=False`` where no writable cache directory exists."""

    def wrap(func: Callable[..., Any]) -> Any:
        options: dict[str, Any] = dict(
            nogil=True, error_model="numpy", boundscheck=False, fastmath=set(fastmath)
        )
        try:
            return numba.njit(cache=True, **options)(func)
        except RuntimeError:  # "cannot cache function ...: no locator available"
            return numba.njit(cache=False, **options)(func)

    return wrap
