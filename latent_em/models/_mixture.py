"""What every finite mixture shares: z is the component index, the joint is a table.

A finite mixture states one method, ``log_weighted_densities(params, x)``, the ``(n, K)``
table of ``log φ_k + log p(x_n | θ_k)``; the contract methods the driver uses follow from
it here, once, for every built-in mixture.
"""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np

from .. import compiled
from ..compiled.blas import single_threaded_blas
from ._discrete import posterior_from_table

__all__ = ["FiniteMixture", "KernelMixture"]


class FiniteMixture:
    """Mixin for mixtures whose latent variable is the component index ``0 .. K-1``."""

    n_components: int

    def log_weighted_densities(self, params: Any, x: Any) -> np.ndarray:
        """``(n, K)`` table of ``log φ_k + log p(x_n | θ_k)``."""
        raise NotImplementedError

    def latent_support(self) -> np.ndarray:
        """z is the component index ``0 .. K-1``."""
        return np.arange(self.n_components)

    def log_joint(self, params: Any, x: Any, z: Any) -> np.ndarray:
        """``log φ_z + log p(x_n | θ_z)`` for each row, shape ``(n,)``."""
        table = self.log_weighted_densities(params, x)
        z = np.asarray(z, dtype=np.intp).reshape(-1)
        return table[np.arange(table.shape[0]), z]

    def posterior(self, params: Any, x: Any) -> tuple[np.ndarray, np.ndarray]:
        """Responsibilities ``(n, K)`` and ``log p(x_n)`` by log-sum-exp of the table."""
        return posterior_from_table(self.log_weighted_densities(params, x))


class KernelMixture(FiniteMixture):
    """A finite mixture whose fused E-step runs compiled kernels on threads of its own
    (the Gaussian, Bernoulli, categorical and Poisson mixtures)."""

    def _threads(self) -> int:
        """The model's ``n_threads`` if it has one and it is set, else
        :func:`latent_em.compiled.default_threads`. The result does not depend on it."""
        return compiled.threads_for(getattr(self, "n_threads", None))

    def fit_context(self) -> contextlib.AbstractContextManager[bool]:
        """BLAS limited to one thread for the whole fit.

        The E-step limits it anyway; holding the limit between E-steps as well stops
        OpenBLAS from waking its threads for the M-step's small products and the driver's
        ``Σ w log p(x_n)`` (a dot product), after which they spin for up to ~0.1 s on the
        cores the kernels' threads need. Measured on 2 cores: Gaussian, N = 200 000,
        D = K = 16, two threads, 0.21 s per iteration instead of 0.165; Poisson,
        N = 200 000, D = 20, K = 10, 0.022 CPU s per iteration instead of 0.013.
        """
        return single_threaded_blas()
