"""Parameter and statistics records of the Gaussian mixture, and its option names."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

__all__ = ["GaussianMixtureParams", "GaussianMixtureStats", "INIT_METHODS", "REGULARIZATIONS"]

INIT_METHODS = ("kmeans", "k-means++", "random", "random_from_data", "hc", "mclust")

#: values of ``covariance_regularization``: the eigenvalue floor (a constrained
#: likelihood that EM increases) or scikit-learn's additive ``reg_covar``
REGULARIZATIONS = ("floor", "additive")


class GaussianMixtureParams(NamedTuple):
    """Parameters of a Gaussian mixture.

    Attributes
    ----------
    weights : (K,)
        Mixing proportions φ, summing to one.
    means : (K, D)
        Component means μ.
    covariances : array
        ``(K, D, D)`` full, ``(D, D)`` tied, ``(K, D)`` diag or ``(K,)`` spherical.
    """

    weights: np.ndarray
    means: np.ndarray
    covariances: np.ndarray


class GaussianMixtureStats(NamedTuple):
    """Expected sufficient statistics, centred at the current means ``μ_old``.

    Attributes
    ----------
    counts : (K,)
        ``N_k = Σ_n w_n r_nk``.
    sum_dx : (K, D)
        ``Σ_n w_n r_nk (x_n - μ_old_k)``.
    sum_dxdx : array
        Second moments of ``x_n - μ_old_k`` in the shape the covariance type needs:
        ``(K, D, D)`` full, ``(D, D)`` tied (summed over k), ``(K, D)`` diag,
        ``(K,)`` spherical (squared norms).
    """

    counts: np.ndarray
    sum_dx: np.ndarray
    sum_dxdx: np.ndarray
