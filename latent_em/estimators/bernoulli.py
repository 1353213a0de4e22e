"""``BernoulliMixture``: the scikit-learn-style estimator over :class:`BernoulliMixtureModel`."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..models.bernoulli_mixture import BernoulliMixtureModel, BernoulliMixtureParams
from ._discrete import DiscreteMixtureEstimator
from .summary import by_feature_block, weights_block

__all__ = ["BernoulliMixture"]


class BernoulliMixture(DiscreteMixtureEstimator):
    """Mixture of independent Bernoulli items (latent class analysis of binary data).

    Parameters
    ----------
    n_components : int, default 1
        Number of latent classes K.
    tol : float, default 1e-6
        Convergence threshold on the change of the mean log-likelihood per iteration.
    max_iter : int, default 1000
        Maximum EM iterations per restart.
    n_init : int, default 1
        Number of restarts; the best log-likelihood is kept (latent class models have
        many local maxima: use 10 or more).
    init_params : {"random", "random_from_data"}, default "random"
        Initialization (see :class:`~latent_em.models.BernoulliMixtureModel`).
    weight_concentration : float, optional
        Symmetric Dirichlet prior (α >= 1) on the weights: MAP-EM.
    beta_prior : (float, float), optional
        Beta(a, b) prior (a, b >= 1) on every probability: MAP-EM, keeps estimates off
        the 0/1 boundary when a, b > 1.
    random_state : int, numpy.random.Generator or None
        Seed for the initializations.
    chunk_size : int, optional
        Rows per E-step chunk (bounded memory; same result).
    accelerate : None, optional
        Acceleration of the EM map (``None``: plain EM).

    Attributes
    ----------
    weights_ : (K,)
        Class shares.
    probs_ : (K, D)
        ``P(x_d = 1 | class k)``.
    converged_, n_iter_, log_likelihood_, lower_bound_, history_, result_
        As for :class:`~latent_em.GaussianMixture`.

    Examples
    --------
    >>> import numpy as np
    >>> import latent_em
    >>> X = (latent_em.datasets.load_carcinoma() == 2).astype(int)  # 1 = carcinoma
    >>> bm = latent_em.BernoulliMixture(2, n_init=10, tol=1e-10, random_state=0).fit(X)
    >>> round(bm.log_likelihood_, 4)
    -317.2568
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
        beta_prior: tuple[float, float] | None = None,
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
        self.beta_prior = beta_prior
        self.random_state = random_state
        self.chunk_size = chunk_size
        self.accelerate = accelerate

    _tag_options = {"positive_only": True}

    def _describe_model(self) -> str:
        return "Bernoulli mixture (latent class model of binary items)"

    def _parameter_blocks(self, digits: int) -> list[tuple[str, list[str]]]:
        return [
            weights_block(self, digits),
            by_feature_block(self, "P(item = 1 | component)", self.probs_, digits),
        ]

    def _make_model(self) -> BernoulliMixtureModel:
        self._check_common_options()
        return BernoulliMixtureModel(
            n_components=self.n_components,
            init_params=self.init_params,
            weight_concentration=self.weight_concentration,
            beta_prior=self.beta_prior,
        )

    def _set_fitted_attributes(self, params: BernoulliMixtureParams) -> None:
        self.weights_ = np.asarray(params.weights)
        self.probs_ = np.asarray(params.probs)
