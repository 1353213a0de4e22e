"""latent_em: expectation-maximization for latent-variable models.

One generic driver (:func:`fit`) fits any model that states its joint
``log p(x, z | θ)`` and a way to get the posterior over ``z``; built-in models come with
scikit-learn-style estimators. PyMC and ArviZ bridges live in :mod:`latent_em.bridges`
and are imported only when used.
"""

from . import constraints, data, datasets, protocols
from .em import EMResult, Event, RestartOutcome, fit, log_likelihood, posterior
from .estimators import GaussianMixture, MixtureEstimator
from .exceptions import (
    ConvergenceWarning,
    DegeneracyWarning,
    ModelContractError,
    MonotonicityError,
    NotFittedError,
)
from .models import GaussianMixtureModel, GaussianMixtureParams, GaussianMixtureStats

__version__ = "0.1.0"

__all__ = [
    "fit",
    "posterior",
    "log_likelihood",
    "EMResult",
    "Event",
    "RestartOutcome",
    "GaussianMixture",
    "MixtureEstimator",
    "GaussianMixtureModel",
    "GaussianMixtureParams",
    "GaussianMixtureStats",
    "ModelContractError",
    "MonotonicityError",
    "ConvergenceWarning",
    "DegeneracyWarning",
    "NotFittedError",
    "constraints",
    "data",
    "datasets",
    "protocols",
    "__version__",
]
