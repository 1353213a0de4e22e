"""Built-in models (immutable configuration objects for the generic driver)."""

from .gaussian_mixture import (
    GaussianMixtureModel,
    GaussianMixtureParams,
    GaussianMixtureStats,
)

__all__ = ["GaussianMixtureModel", "GaussianMixtureParams", "GaussianMixtureStats"]
