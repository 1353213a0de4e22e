"""scikit-learn-style estimators for the built-in models."""

from ._base import MixtureEstimator
from .gaussian import GaussianMixture

__all__ = ["MixtureEstimator", "GaussianMixture"]
