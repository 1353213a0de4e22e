"""What every finite mixture shares: z is the component index, the joint is a table.

A finite mixture states one method, ``log_weighted_densities(params, x)``, the ``(n, K)``
table of ``log φ_k + log p(x_n | θ_k)``; the contract methods the driver uses follow from
it here, once, for every built-in mixture.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._discrete import posterior_from_table

__all__ = ["FiniteMixture"]


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
