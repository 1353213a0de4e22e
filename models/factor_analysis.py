"""Factor analysis: a continuous latent with a model-computed Gaussian posterior.

Model (public API only): ``z_n ~ N(0, I_q)`` and ``x_n | z_n ~ N(W z_n + μ, Ψ)`` with a
diagonal noise covariance ``Ψ = diag(ψ)`` (probabilistic PCA is the case ``Ψ = σ² I``,
shipped as :class:`latent_em.PPCAModel`).

E-step (exact): ``G = (I + Wᵀ Ψ⁻¹ W)⁻¹``, ``q(z_n) = N(G Wᵀ Ψ⁻¹ (x_n - μ), G)``, and the
marginal ``x_n ~ N(μ, W Wᵀ + Ψ)``.

M-step (closed form, joint in W, μ, ψ): with ``z̃ = (z, 1)``, ``W̃ = (W, δ)`` and statistics
centred at the current mean ``μ_old`` (so they add over chunks),

    ``W̃ = (Σ w (x-μ_old) E[z̃]ᵀ)(Σ w E[z̃ z̃ᵀ])⁻¹``,  ``μ = μ_old + δ``,
    ``ψ_d = (Σ w (x_d-μ_old,d)² - [W̃ Σ w E[z̃](x-μ_old)ᵀ]_dd) / Σ w``

(Rubin & Thayer 1982; Ghahramani & Hinton 1996).

Run ``python models/factor_analysis.py`` for a demonstration.
"""

from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple

import numpy as np

import latent_em
from latent_em.constraints import Positive, Real

LOG_2PI = math.log(2 * math.pi)


class FactorAnalysisParams(NamedTuple):
    loadings: np.ndarray  # (D, q) W
    mean: np.ndarray  # (D,) μ
    noise_variances: np.ndarray  # (D,) ψ, the diagonal of Ψ


class FactorPosterior(NamedTuple):
    means: np.ndarray  # (n, q) E[z_n | x_n]
    covariance: np.ndarray  # (q, q) Cov[z_n | x_n], shared by all rows


class FactorAnalysisStats(NamedTuple):
    counts: np.ndarray  # ()      Σ w
    sum_dx: np.ndarray  # (D,)    Σ w (x - μ_old)
    sum_sq_dx: np.ndarray  # (D,) Σ w (x - μ_old)²  (elementwise)
    sum_dx_z: np.ndarray  # (D, q) Σ w (x - μ_old) E[z]ᵀ
    sum_z: np.ndarray  # (q,)     Σ w E[z]
    sum_zz: np.ndarray  # (q, q)  Σ w E[z zᵀ]


@dataclasses.dataclass(frozen=True)
class FactorAnalysis:
    """Factor analysis with ``n_components = q`` factors."""

    n_components: int = 1

    @property
    def constraints(self):
        return {"loadings": Real(), "mean": Real(), "noise_variances": Positive()}

    def n_parameters(self, params):
        d, q = params.loadings.shape
        return d * q + 2 * d - q * (q - 1) // 2

    def redundant_parameters(self, params):
        # the likelihood depends on W only through W Wᵀ: rotations of the factors
        q = params.loadings.shape[1]
        return q * (q - 1) // 2

    def initialize(self, x, rng):
        d = x.shape[1]
        var = np.var(x, axis=0)
        loadings = rng.normal(size=(d, self.n_components)) * np.sqrt(var / d)[:, None]
        return FactorAnalysisParams(loadings, x.mean(axis=0), var.copy())

    def log_joint(self, params, x, z):
        d, q = params.loadings.shape
        psi = params.noise_variances
        resid = x - z @ params.loadings.T - params.mean
        log_pz = -0.5 * (q * LOG_2PI + np.sum(z * z, axis=1))
        log_px = -0.5 * (d * LOG_2PI + np.sum(np.log(psi)) + np.sum(resid**2 / psi, axis=1))
        return log_pz + log_px

    def posterior(self, params, x):
        d, q = params.loadings.shape
        w, psi = params.loadings, params.noise_variances
        dx = x - params.mean
        w_psi = w / psi[:, None]  # Ψ⁻¹ W
        cov = np.linalg.inv(np.eye(q) + w.T @ w_psi)
        cov = 0.5 * (cov + cov.T)
        means = dx @ w_psi @ cov
        marginal_cov = w @ w.T + np.diag(psi)
        chol = np.linalg.cholesky(marginal_cov)
        white = np.linalg.solve(chol, dx.T)
        log_det = 2.0 * np.sum(np.log(np.diag(chol)))
        log_marginal = -0.5 * (d * LOG_2PI + log_det + np.sum(white**2, axis=0))
        return FactorPosterior(means, cov), log_marginal

    def expected_stats(self, params, x, posterior, weights):
        dx = x - params.mean
        m = posterior.means
        wm = weights[:, None] * m
        return FactorAnalysisStats(
            counts=np.asarray(weights.sum()),
            sum_dx=weights @ dx,
            sum_sq_dx=weights @ (dx * dx),
            sum_dx_z=dx.T @ wm,
            sum_z=wm.sum(axis=0),
            sum_zz=m.T @ wm + weights.sum() * posterior.covariance,
        )

    def m_step(self, params, stats):
        q = self.n_components
        a = np.empty((q + 1, q + 1))
        a[:q, :q] = stats.sum_zz
        a[:q, q] = a[q, :q] = stats.sum_z
        a[q, q] = stats.counts
        b = np.concatenate([stats.sum_dx_z, stats.sum_dx[:, None]], axis=1)  # (D, q+1)
        w_aug = np.linalg.solve(a, b.T).T
        psi = (stats.sum_sq_dx - np.sum(w_aug * b, axis=1)) / stats.counts
        return FactorAnalysisParams(w_aug[:, :q], params.mean + w_aug[:, q], np.maximum(psi, 1e-12))

    def expected_log_joint(self, params, x, posterior, weights):
        d, q = params.loadings.shape
        w, psi = params.loadings, params.noise_variances
        m, s = posterior.means, posterior.covariance
        resid = x - params.mean - m @ w.T
        # E‖x - μ - W z‖²_Ψ⁻¹ = ‖x - μ - W m‖²_Ψ⁻¹ + tr(Wᵀ Ψ⁻¹ W S)
        quad = np.sum(resid**2 / psi, axis=1) + np.trace(w.T @ (w / psi[:, None]) @ s)
        per_row = -0.5 * (q * LOG_2PI + np.sum(m * m, axis=1) + np.trace(s)) - 0.5 * (
            d * LOG_2PI + np.sum(np.log(psi)) + quad
        )
        return float(weights @ per_row)

    def posterior_entropy(self, posterior, weights):
        q = posterior.covariance.shape[0]
        return (
            float(weights.sum())
            * 0.5
            * (q * (1 + LOG_2PI) + np.linalg.slogdet(posterior.covariance)[1])
        )

    def sample(self, params, n, rng):
        d, q = params.loadings.shape
        z = rng.normal(size=(n, q))
        noise = rng.normal(size=(n, d)) * np.sqrt(params.noise_variances)
        return z @ params.loadings.T + params.mean + noise, z


TRUE_PARAMS = FactorAnalysisParams(
    loadings=np.array([[2.0, 0.0], [1.5, 0.5], [1.0, 1.0], [0.5, 1.5], [0.0, 2.0], [1.0, -1.0]]),
    mean=np.array([1.0, -1.0, 0.0, 2.0, 0.5, 3.0]),
    noise_variances=np.array([0.3, 0.5, 0.2, 0.4, 0.6, 0.25]),
)


if __name__ == "__main__":
    model = FactorAnalysis(2)
    data, _ = model.sample(TRUE_PARAMS, 500, np.random.default_rng(0))
    print(latent_em.check_model(model, data))
    result = latent_em.fit(model, data, random_state=0, tol=1e-10, max_iter=5000)
    print(result.n_iter, result.log_likelihood)
