"""The Gaussian mixture model, one concern per module.

* :mod:`.params` -- the parameter and statistics records and the option names;
* :mod:`.covariance` -- the covariance structures (one strategy object each, in the table
  ``COVARIANCES``), which own everything structure-specific;
* :mod:`.kernels` -- the blocked E-step kernels and the structure -> kernel table
  ``KERNELS``;
* :mod:`.threads` -- BLAS thread control while the kernels run;
* :mod:`.model` -- :class:`GaussianMixtureModel`;
* :mod:`.parsimonious` -- the M-steps of mclust's parsimonious structures;
* :mod:`.missing` -- rows with missing values (``missing="marginalize"``);
* :mod:`.labels` -- partially labelled data (``GaussianMixture.fit(X, labels=y)``);
* :mod:`.prior` -- mclust's conjugate prior (MAP-EM);
* :mod:`.hierarchical` -- the seed-free starts ``init_params="hc"`` and ``"mclust"``.
"""

from .covariance import COVARIANCE_TYPES
from .model import GaussianMixtureModel
from .params import INIT_METHODS, GaussianMixtureParams, GaussianMixtureStats

__all__ = [
    "GaussianMixtureModel",
    "GaussianMixtureParams",
    "GaussianMixtureStats",
    "COVARIANCE_TYPES",
    "INIT_METHODS",
]
