"""Built-in models (immutable configuration objects for the generic driver)."""

from .gaussian_mixture import (
    GaussianMixtureModel,
    GaussianMixtureParams,
    GaussianMixtureStats,
)
from .ppca import PPCAModel, PPCAParams, PPCAPosterior, PPCAStats

__all__ = [
    "GaussianMixtureModel",
    "GaussianMixtureParams",
    "GaussianMixtureStats",
    "PPCAModel",
    "PPCAParams",
    "PPCAPosterior",
    "PPCAStats",
]
