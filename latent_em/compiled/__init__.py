"""Compiled (Numba) kernels, imported lazily.

``import latent_em`` does not import Numba: this package's ``__init__`` only knows how
to find the kernels; :mod:`latent_em.compiled.gaussian` and
:mod:`latent_em.compiled.discrete` (and through them :mod:`latent_em.compiled.jit`) are
imported, and the kernels compiled, on the first call that needs them. Compiled code is
cached on disk by Numba (``cache=True``), so a later process loads it instead of
compiling; without a writable cache directory it is compiled once per process.

Threads
-------
One knob: the environment variable ``LATENT_EM_NUM_THREADS`` (a positive integer) sets
how many threads the compiled kernels use when a model's ``n_threads`` is not given;
without it, all CPUs the process may use. The kernels themselves call no BLAS; the
models keep BLAS at one thread while they run (no oversubscription).
"""

from __future__ import annotations

import importlib.util
import os
from typing import Any

import numpy as np

__all__ = [
    "COMPILED_MIN_SIZE",
    "THREADS_VARIABLE",
    "available",
    "bernoulli_e_step",
    "categorical_e_step",
    "default_threads",
    "exp_nonpositive",
    "gaussian_e_step",
    "poisson_e_step",
    "threads_for",
    "use_compiled",
]

THREADS_VARIABLE = "LATENT_EM_NUM_THREADS"


def available() -> bool:
    """Whether Numba can be imported (without importing it)."""
    return importlib.util.find_spec("numba") is not None


#: ``N·K`` (rows times components of one E-step call) from which a model's fused E-step
#: runs its compiled kernel rather than its NumPy path: smaller problems compile nothing
#: and never import Numba (a cold compile, 2-3 s, costs more than a whole small fit).
#: One threshold for every model with a compiled E-step; the measurements are in
#: docs/scaling.md (the compiled kernels already win at 10⁴).
COMPILED_MIN_SIZE = 100_000


def use_compiled(n_rows: int, n_components: int) -> bool:
    """Whether an E-step over ``n_rows`` rows and ``n_components`` components runs the
    compiled kernel: from :data:`COMPILED_MIN_SIZE`, and only where Numba is installed."""
    return n_rows * n_components >= COMPILED_MIN_SIZE and available()


def threads_for(n_threads: int | None) -> int:
    """Threads for a compiled kernel: ``n_threads`` if given, else
    :func:`default_threads` (``LATENT_EM_NUM_THREADS``, else the usable CPUs)."""
    return int(n_threads) if n_threads is not None else default_threads()


def default_threads() -> int:
    """Threads for the compiled kernels: ``LATENT_EM_NUM_THREADS`` if set, else the
    number of CPUs this process may run on.

    Raises
    ------
    ValueError
        If ``LATENT_EM_NUM_THREADS`` is set but is not a positive integer.
    """
    value = os.environ.get(THREADS_VARIABLE, "").strip()
    if value:
        try:
            threads = int(value)
        except ValueError:
            threads = 0
        if threads < 1:
            raise ValueError(
                f"environment variable {THREADS_VARIABLE} must be a positive integer; got {value!r}"
            )
        return threads
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def gaussian_e_step(*args: Any, **kwargs: Any) -> tuple[np.ndarray, ...]:
    """Compiled fused Gaussian-mixture E-step; see
    :func:`latent_em.compiled.gaussian.gaussian_e_step` (imports Numba on first use)."""
    from .gaussian import gaussian_e_step as kernel

    return kernel(*args, **kwargs)


def bernoulli_e_step(*args: Any, **kwargs: Any) -> tuple[np.ndarray, ...]:
    """Compiled fused Bernoulli-mixture E-step; see
    :func:`latent_em.compiled.discrete.bernoulli_e_step` (imports Numba on first use)."""
    from .discrete import bernoulli_e_step as kernel

    return kernel(*args, **kwargs)


def poisson_e_step(*args: Any, **kwargs: Any) -> tuple[np.ndarray, ...]:
    """Compiled fused Poisson-mixture E-step; see
    :func:`latent_em.compiled.discrete.poisson_e_step` (imports Numba on first use)."""
    from .discrete import poisson_e_step as kernel

    return kernel(*args, **kwargs)


def categorical_e_step(*args: Any, **kwargs: Any) -> tuple[Any, ...]:
    """Compiled fused categorical-mixture E-step; see
    :func:`latent_em.compiled.discrete.categorical_e_step` (imports Numba on first use)."""
    from .discrete import categorical_e_step as kernel

    return kernel(*args, **kwargs)


def exp_nonpositive(x: Any) -> np.ndarray:
    """Vectorizable ``exp`` of non-positive values; see
    :func:`latent_em.compiled.fastexp.exp_nonpositive` (imports Numba on first use)."""
    from .fastexp import exp_nonpositive as kernel

    return kernel(x)
