"""Built-in models (immutable configuration objects for the generic driver)."""

from .._registry import register_all
from .bernoulli_mixture import (
    BernoulliMixtureModel,
    BernoulliMixtureParams,
    BernoulliMixtureStats,
)
from .categorical_mixture import (
    CategoricalMixtureModel,
    CategoricalMixtureParams,
    CategoricalMixtureStats,
)
from .gaussian import (
    GaussianMixtureModel,
    GaussianMixtureParams,
    GaussianMixtureStats,
)
from .poisson_mixture import PoissonMixtureModel, PoissonMixtureParams, PoissonMixtureStats
from .ppca import PPCAModel, PPCAParams, PPCAPosterior, PPCAStats

__all__ = [
    "GaussianMixtureModel",
    "GaussianMixtureParams",
    "GaussianMixtureStats",
    "PPCAModel",
    "PPCAParams",
    "PPCAPosterior",
    "PPCAStats",
    "BernoulliMixtureModel",
    "BernoulliMixtureParams",
    "BernoulliMixtureStats",
    "CategoricalMixtureModel",
    "CategoricalMixtureParams",
    "CategoricalMixtureStats",
    "PoissonMixtureModel",
    "PoissonMixtureParams",
    "PoissonMixtureStats",
]

# the classes :mod:`latent_em.io` may save and load
register_all(globals(), __all__, "builtin")
