"""scikit-learn-style estimators for the built-in models."""

from .._registry import register_all
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

# the classes :mod:`latent_em.io` may save and load
register_all(globals(), __all__, "estimator")
