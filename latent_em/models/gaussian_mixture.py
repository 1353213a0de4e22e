"""Backwards-compatible home of the Gaussian mixture, which now lives in the package
:mod:`latent_em.models.gaussian` (model, covariance structures, kernels, each in its own
module). This module only re-exports its public names.
"""

from .gaussian import (
    COVARIANCE_TYPES,
    INIT_METHODS,
    GaussianMixtureModel,
    GaussianMixtureParams,
    GaussianMixtureStats,
)

__all__ = [
    "GaussianMixtureModel",
    "GaussianMixtureParams",
    "GaussianMixtureStats",
    "COVARIANCE_TYPES",
    "INIT_METHODS",
]
