"""``PoissonMixture``: the scikit-learn-style estimator over :class:`PoissonMixtureModel`."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..models.poisson_mixture import PoissonMixtureModel, PoissonMixtureParams
from ._discrete import DiscreteMixtureEstimator
from .summary import by_feature_block, weights_block

__all__ = ["PoissonMixture"]


class PoissonMixture(DiscreteMixtureEstimator):
    """Mixture of independent Poisson counts per column.

    Parameters
    ----------
    n_components : int, default 1
        Number of components K.
    tol : float, default 1e-6
        Convergence threshold on the change of the mean log-likelihood per iteration.
    max_iter : int, default 1000
        Maximum EM iterations per restart.
    n_init : int, default 1
        Number of restarts; the best log-likelihood is kept.
    init_params : {"random", "random_from_data"}, default "random"
        Initialization (see :class:`~latent_em.models.PoissonMixtureModel`).
    weight_concentration : float, optional
        Symmetric Dirichlet prior (α >= 1) on the weights: MAP-EM.
    gamma_prior : (float, float), optional
        Gamma(shape a >= 1, rate b > 0) prior on every rate: MAP-EM.
    random_state : int, numpy.random.Generator or None
        Seed for the initializations.
    chunk_size : int, optional
        Rows per E-step chunk (bounded memory; same result).
    accelerate : None, optional
        Acceleration of the EM map (``None``: plain EM).

    Attributes
    ----------
    weights_ : (K,)
        Mixing proportions.
    rates_ : (K, D)
        Poisson means per component and column.
    converged_, n_iter_, log_likelihood_, lower_bound_, history_, result_
        As for :class:`~latent_em.GaussianMixture`.

    Examples
    --------
    Hasselblad's (1969) death notices: days with 0, 1, ..., 9 deaths, fitted from the
    frequency table without expanding it.

    >>> import numpy as np
    >>> import latent_em
    >>> deaths = np.arange(10).reshape(-1, 1)
    >>> days = [162, 267, 271, 185, 111, 61, 27, 8, 3, 1]
    >>> pm = latent_em.PoissonMixture(2, tol=1e-15, max_iter=100000, random_state=0)
    >>> pm = pm.fit(deaths, frequency=days)
    >>> np.round(np.sort(pm.rates_[:, 0]), 3)
    array([1.256, 2.663])
    """

    def __init__(
        self,
        n_components: int = 1,
        *,
        tol: float = 1e-6,
        max_iter: int = 1000,
        n_init: int = 1,
        init_params: str = "random",
        weight_concentration: float | None = None,
        gamma_prior: tuple[float, float] | None = None,
        random_state: Any = None,
        chunk_size: int | None = None,
        accelerate: str | None = None,
    ) -> None:
        self.n_components = n_components
        self.tol = tol
        self.max_iter = max_iter
        self.n_init = n_init
        self.init_params = init_params
        self.weight_concentration = weight_concentration
        self.gamma_prior = gamma_prior
        self.random_state = random_state
        self.chunk_size = chunk_size
        self.accelerate = accelerate

    _tag_options = {"positive_only": True}

    def _describe_model(self) -> str:
        return "Poisson mixture (independent counts)"

    def _parameter_blocks(self, digits: int) -> list[tuple[str, list[str]]]:
        return [
            weights_block(self, digits),
            by_feature_block(self, "Rates (Poisson means)", self.rates_, digits),
        ]

    def _make_model(self) -> PoissonMixtureModel:
        self._check_common_options()
        return PoissonMixtureModel(
            n_components=self.n_components,
            init_params=self.init_params,
            weight_concentration=self.weight_concentration,
            gamma_prior=self.gamma_prior,
        )

    def _set_fitted_attributes(self, params: PoissonMixtureParams) -> None:
        self.weights_ = np.asarray(params.weights)
        self.rates_ = np.asarray(params.rates)
