"""Mixture of linear regressions (switching regression), written against the public API.

Model: a latent class ``z_n ∈ {0, …, K-1}`` with ``P(z_n = k) = φ_k`` and, given it,

    ``y_n | z_n = k ~ N(a_nᵀ β_k, σ_k²)``

with covariates ``a_n`` (a leading 1 for the intercept). Data rows are ``x_n = (y_n, a_n)``:
column 0 the response, the other columns the covariates.

M-step (closed form, weighted least squares per component, ``r_nk`` the
responsibilities, ``w_n`` row weights): with ``N_k = Σ w r``, ``AᵀRA_k = Σ w r a aᵀ``,
``AᵀRy_k = Σ w r a y`` and ``yᵀRy_k = Σ w r y²``,

    ``β_k = (AᵀRA_k)⁻¹ AᵀRy_k``,  ``σ_k² = (yᵀRy_k - β_kᵀ AᵀRy_k) / N_k``,  ``φ_k = N_k / Σ N``.

Run ``python models/mixture_of_regressions.py`` for a demonstration.
"""

from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple

import numpy as np

import latent_em
from latent_em.constraints import Positive, Real, Simplex


class RegressionMixtureParams(NamedTuple):
    weights: np.ndarray  # (K,) mixing proportions φ
    coefficients: np.ndarray  # (K, P) regression coefficients β_k
    variances: np.ndarray  # (K,) residual variances σ_k²


class RegressionMixtureStats(NamedTuple):
    counts: np.ndarray  # (K,)      Σ w r
    ata: np.ndarray  # (K, P, P)    Σ w r a aᵀ
    aty: np.ndarray  # (K, P)       Σ w r a y
    yty: np.ndarray  # (K,)         Σ w r y²


@dataclasses.dataclass(frozen=True)
class MixtureOfRegressions:
    """``K`` linear regressions of column 0 on the other columns of ``x``."""

    n_components: int = 2

    @property
    def constraints(self):
        return {"weights": Simplex(), "coefficients": Real(), "variances": Positive()}

    def n_parameters(self, params: RegressionMixtureParams) -> int:
        k, p = params.coefficients.shape
        return (k - 1) + k * p + k

    def initialize(self, x, rng):
        y, a = x[:, 0], x[:, 1:]
        # random hard assignments, then one weighted least-squares fit per class
        r = np.eye(self.n_components)[rng.integers(self.n_components, size=len(x))]
        stats = self.expected_stats(None, x, r, np.ones(len(x)))
        base = RegressionMixtureParams(
            np.full(self.n_components, 1.0 / self.n_components),
            np.zeros((self.n_components, a.shape[1])),
            np.full(self.n_components, np.var(y)),
        )
        return self.m_step(base, stats)

    def latent_support(self):
        return np.arange(self.n_components)

    def log_joint(self, params, x, z):
        y, a = x[:, 0], x[:, 1:]
        beta = params.coefficients[z]  # (n, P)
        var = params.variances[z]
        resid = y - np.sum(a * beta, axis=1)
        return (
            np.log(params.weights[z])
            - 0.5 * (math.log(2 * math.pi) + np.log(var))
            - 0.5 * resid**2 / var
        )

    def expected_stats(self, params, x, posterior, weights):
        y, a = x[:, 0], x[:, 1:]
        rw = posterior * weights[:, None]  # (n, K)
        return RegressionMixtureStats(
            counts=rw.sum(axis=0),
            ata=np.einsum("nk,np,nq->kpq", rw, a, a),
            aty=np.einsum("nk,np,n->kp", rw, a, y),
            yty=rw.T @ (y * y),
        )

    def m_step(self, params, stats):
        beta = np.linalg.solve(stats.ata, stats.aty[:, :, None])[:, :, 0]
        rss = stats.yty - np.sum(beta * stats.aty, axis=1)
        variances = np.maximum(rss / stats.counts, 1e-12)
        return RegressionMixtureParams(stats.counts / stats.counts.sum(), beta, variances)

    def sample(self, params, n, rng):
        z = rng.choice(len(params.weights), size=n, p=params.weights)
        a = np.column_stack([np.ones(n), rng.uniform(-3, 3, size=n)])
        y = np.sum(a * params.coefficients[z], axis=1) + rng.normal(size=n) * np.sqrt(
            params.variances[z]
        )
        return np.column_stack([y, a]), z


TRUE_PARAMS = RegressionMixtureParams(
    weights=np.array([0.4, 0.6]),
    coefficients=np.array([[1.0, 2.0], [-1.0, -1.5]]),
    variances=np.array([0.25, 0.5]),
)


if __name__ == "__main__":
    model = MixtureOfRegressions(2)
    data, _ = model.sample(TRUE_PARAMS, 500, np.random.default_rng(0))
    print(latent_em.check_model(model, data))
    result = latent_em.fit(model, data, n_init=5, random_state=0)
    print(result.params)
