"""scikit-learn-style estimators for the built-in models."""

from ._base import MixtureEstimator
from .bernoulli import BernoulliMixture
from .categorical import CategoricalMixture
from .gaussian import GaussianMixture
from .poisson import PoissonMixture

__all__ = [
    "MixtureEstimator",
    "GaussianMixture",
    "BernoulliMixture",
    "CategoricalMixture",
    "PoissonMixture",
]
