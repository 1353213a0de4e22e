"""latent_em: expectation-maximization for latent-variable models.

One generic driver (:func:`fit`) fits any model that states its joint
``log p(x, z | θ)`` and a way to get the posterior over ``z``; built-in models come with
scikit-learn-style estimators. PyMC and ArviZ bridges live in :mod:`latent_em.bridges`
and are imported only when used.
"""

from ._version import __version__  # noqa: I001 (first: every layer may read it)
from . import (
    acceleration,
    components,
    constraints,
    data,
    datasets,
    io,
    protocols,
    selection,
    uncertainty,
)
from .acceleration import Squarem
from .checking import CheckReport, LawResult, check_model
from .composite import Independent, Mixture
from .em import EMResult, Event, RestartOutcome, fit, log_likelihood, posterior
from .estimators import (
    BernoulliMixture,
    CategoricalMixture,
    GaussianMixture,
    MixtureEstimator,
    PoissonMixture,
)
from .exceptions import (
    ConvergenceWarning,
    DegeneracyWarning,
    ModelContractError,
    MonotonicityError,
    NotFittedError,
)
from .hmm import HiddenMarkovModel, HMMPosterior, Sequences
from .models import (
    BernoulliMixtureModel,
    BernoulliMixtureParams,
    BernoulliMixtureStats,
    CategoricalMixtureModel,
    CategoricalMixtureParams,
    CategoricalMixtureStats,
    GaussianMixtureModel,
    GaussianMixtureParams,
    GaussianMixtureStats,
    PoissonMixtureModel,
    PoissonMixtureParams,
    PoissonMixtureStats,
    PPCAModel,
    PPCAParams,
    PPCAPosterior,
    PPCAStats,
)
from .selection import SelectionResult, select_components
from .uncertainty import BootstrapResult, StandardErrors, bootstrap, standard_errors


__all__ = [
    "fit",
    "Squarem",
    "select_components",
    "SelectionResult",
    "standard_errors",
    "StandardErrors",
    "bootstrap",
    "BootstrapResult",
    "acceleration",
    "selection",
    "uncertainty",
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
    "PPCAModel",
    "PPCAParams",
    "PPCAPosterior",
    "PPCAStats",
    "check_model",
    "CheckReport",
    "LawResult",
    "BernoulliMixture",
    "CategoricalMixture",
    "PoissonMixture",
    "BernoulliMixtureModel",
    "BernoulliMixtureParams",
    "BernoulliMixtureStats",
    "CategoricalMixtureModel",
    "CategoricalMixtureParams",
    "CategoricalMixtureStats",
    "PoissonMixtureModel",
    "PoissonMixtureParams",
    "PoissonMixtureStats",
    "ModelContractError",
    "MonotonicityError",
    "ConvergenceWarning",
    "DegeneracyWarning",
    "NotFittedError",
    "constraints",
    "data",
    "datasets",
    "io",
    "protocols",
    "components",
    "Mixture",
    "Independent",
    "HiddenMarkovModel",
    "HMMPosterior",
    "Sequences",
    "__version__",
]
