"""Probabilistic PCA: latent ``z_n ~ N(0, I_q)``, observed ``x_n | z_n ~ N(W z_n + μ, σ² I_D)``.

The model computes its own exact Gaussian posterior (Tipping & Bishop 1999, eq. 7)

    ``M = Wᵀ W + σ² I_q``,  ``q(z_n) = N(M⁻¹ Wᵀ (x_n - μ), σ² M⁻¹)``

and the marginal ``x_n ~ N(μ, C)`` with ``C = W Wᵀ + σ² I_D``. The M-step is the joint
closed-form maximizer in ``(W, μ, σ²)``: with the augmented latent ``z̃ = (z, 1)`` and
``W̃ = (W, δ)`` it is a weighted least-squares regression of ``x - μ_old`` on ``E[z̃]``,

    ``W̃ = (Σ w (x-μ_old) E[z̃]ᵀ) (Σ w E[z̃ z̃ᵀ])⁻¹``,  ``μ = μ_old + δ``,
    ``σ² = (Σ w ‖x-μ_old‖² - tr(W̃ Σ w E[z̃] (x-μ_old)ᵀ)) / (D Σ w)``.

Statistics are centred at the current mean, so they add over chunks and stay accurate for
data far from the origin. At convergence the fit equals the closed-form maximum-likelihood
solution (T&B eq. 7–8): ``μ`` the sample mean, ``σ²`` the mean of the ``D - q`` smallest
eigenvalues of the sample covariance, ``W = U_q (Λ_q - σ² I)^{1/2} R``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np

from .._lazy import lazy_module
from .._validation import as_float_matrix, check_int
from ..constraints import Constraint, Positive, Real

linalg = lazy_module("scipy.linalg")

__all__ = ["PPCAModel", "PPCAParams", "PPCAStats", "PPCAPosterior"]

_LOG_2PI = math.log(2.0 * math.pi)


class PPCAParams(NamedTuple):
    """Parameters of probabilistic PCA.

    Attributes
    ----------
    loadings : (D, q)
        The factor loading matrix ``W``.
    mean : (D,)
        ``μ``.
    noise_variance : ()
        Isotropic noise variance ``σ²`` (a 0-d array).
    """

    loadings: np.ndarray
    mean: np.ndarray
    noise_variance: np.ndarray


class PPCAPosterior(NamedTuple):
    """The exact Gaussian posterior ``q(z_n) = N(means[n], covariance)``.

    Attributes
    ----------
    means : (n, q)
        ``E[z_n | x_n]``.
    covariance : (q, q)
        ``Cov[z_n | x_n] = σ² M⁻¹``, the same for every row.
    """

    means: np.ndarray
    covariance: np.ndarray


class PPCAStats(NamedTuple):
    """Expected sufficient statistics, centred at the current mean ``μ_old``.

    Attributes
    ----------
    counts : ()
        ``Σ_n w_n``.
    sum_dx : (D,)
        ``Σ_n w_n (x_n - μ_old)``.
    sum_sq_dx : ()
        ``Σ_n w_n ‖x_n - μ_old‖²``.
    sum_dx_z : (D, q)
        ``Σ_n w_n (x_n - μ_old) E[z_n]ᵀ``.
    sum_z : (q,)
        ``Σ_n w_n E[z_n]``.
    sum_zz : (q, q)
        ``Σ_n w_n E[z_n z_nᵀ]``.
    """

    counts: np.ndarray
    sum_dx: np.ndarray
    sum_sq_dx: np.ndarray
    sum_dx_z: np.ndarray
    sum_z: np.ndarray
    sum_zz: np.ndarray


@dataclasses.dataclass(frozen=True)
class PPCAModel:
    """Probabilistic PCA with ``n_components = q`` latent dimensions (see module docstring).

    Parameters
    ----------
    n_components : int
        Latent dimension ``q`` (at least 1, below the number of features).
    """

    n_components: int

    def __post_init__(self) -> None:
        check_int(self.n_components, "n_components", minimum=1)

    def check_data(self, x: Any) -> np.ndarray:
        """Validate ``x`` as an ``(n, D)`` float matrix with ``D > n_components``."""
        arr = as_float_matrix(x, "x")
        if arr.shape[1] <= self.n_components:
            raise ValueError(
                f"n_components={self.n_components} must be below the number of features "
                f"of x ({arr.shape[1]})"
            )
        return arr

    @property
    def constraints(self) -> Mapping[str, Constraint]:
        """Loadings and mean are real, the noise variance positive."""
        return {"loadings": Real(), "mean": Real(), "noise_variance": Positive()}

    def n_parameters(self, params: PPCAParams) -> int:
        """``D q + D + 1 - q (q - 1) / 2``: W is identified only up to a rotation."""
        d, q = params.loadings.shape
        return d * q + d + 1 - q * (q - 1) // 2

    def redundant_parameters(self, params: PPCAParams) -> int:
        """Dimension of the rotation group ``O(q)`` that leaves the likelihood unchanged."""
        q = params.loadings.shape[1]
        return q * (q - 1) // 2

    def initialize(self, x: np.ndarray, rng: np.random.Generator) -> PPCAParams:
        """Random loadings at the data's scale, the sample mean and the mean variance."""
        x = np.asarray(x, dtype=float)
        d = x.shape[1]
        scale = float(np.sqrt(np.mean(np.var(x, axis=0)))) or 1.0
        loadings = rng.normal(scale=scale / math.sqrt(d), size=(d, self.n_components))
        return PPCAParams(loadings, x.mean(axis=0), np.asarray(scale**2))

    def _check_params(self, params: PPCAParams, d: int) -> None:
        if np.shape(params.loadings) != (d, self.n_components):
            raise ValueError(
                f"params.loadings must have shape ({d}, {self.n_components}); "
                f"got {np.shape(params.loadings)}"
            )

    def log_joint(self, params: PPCAParams, x: np.ndarray, z: np.ndarray) -> np.ndarray:
        """``log N(z_n; 0, I) + log N(x_n; W z_n + μ, σ² I)``, shape ``(n,)``."""
        x = np.asarray(x, dtype=float)
        z = np.asarray(z, dtype=float)
        d, q = params.loadings.shape
        s2 = float(params.noise_variance)
        resid = x - z @ params.loadings.T - params.mean
        log_pz = -0.5 * (q * _LOG_2PI + np.sum(z * z, axis=1))
        log_px = -0.5 * (d * (_LOG_2PI + math.log(s2)) + np.sum(resid * resid, axis=1) / s2)
        return log_pz + log_px

    def posterior(self, params: PPCAParams, x: np.ndarray) -> tuple[PPCAPosterior, np.ndarray]:
        """Exact Gaussian posterior and ``log N(x_n; μ, W Wᵀ + σ² I)``."""
        x = np.asarray(x, dtype=float)
        d, q = params.loadings.shape
        self._check_params(params, x.shape[1])
        w, s2 = params.loadings, float(params.noise_variance)
        dx = x - params.mean
        m_chol = linalg.cho_factor(w.T @ w + s2 * np.eye(q), lower=True)
        means = linalg.cho_solve(m_chol, w.T @ dx.T).T
        cov = s2 * linalg.cho_solve(m_chol, np.eye(q))
        c_chol = linalg.cholesky(w @ w.T + s2 * np.eye(d), lower=True)
        white = linalg.solve_triangular(c_chol, dx.T, lower=True)
        log_det = 2.0 * np.sum(np.log(np.diag(c_chol)))
        log_marginal = -0.5 * (d * _LOG_2PI + log_det + np.sum(white * white, axis=0))
        return PPCAPosterior(means, 0.5 * (cov + cov.T)), log_marginal

    def expected_stats(
        self, params: PPCAParams, x: np.ndarray, posterior: PPCAPosterior, weights: np.ndarray
    ) -> PPCAStats:
        """Weighted, additive statistics of a chunk (see :class:`PPCAStats`)."""
        dx = np.asarray(x, dtype=float) - params.mean
        w = np.asarray(weights, dtype=float)
        m = posterior.means
        wm = w[:, None] * m
        return PPCAStats(
            counts=np.asarray(w.sum()),
            sum_dx=w @ dx,
            sum_sq_dx=np.asarray(w @ np.sum(dx * dx, axis=1)),
            sum_dx_z=dx.T @ wm,
            sum_z=wm.sum(axis=0),
            sum_zz=m.T @ wm + w.sum() * posterior.covariance,
        )

    def m_step(self, params: PPCAParams, stats: PPCAStats) -> PPCAParams:
        """Joint closed-form maximizer in ``(W, μ, σ²)`` (module docstring)."""
        q = self.n_components
        d = params.mean.shape[0]
        a = np.empty((q + 1, q + 1))
        a[:q, :q] = stats.sum_zz
        a[:q, q] = a[q, :q] = stats.sum_z
        a[q, q] = stats.counts
        b = np.concatenate([stats.sum_dx_z, stats.sum_dx[:, None]], axis=1)  # (D, q+1)
        w_aug = linalg.solve(a, b.T, assume_a="pos").T
        s2 = (float(stats.sum_sq_dx) - float(np.sum(w_aug * b))) / (d * float(stats.counts))
        # round-off can push σ² to or below zero only for data lying exactly in q dimensions
        s2 = max(s2, np.finfo(float).tiny)
        return PPCAParams(w_aug[:, :q], params.mean + w_aug[:, q], np.asarray(s2))

    def expected_log_joint(
        self, params: PPCAParams, x: np.ndarray, posterior: PPCAPosterior, weights: np.ndarray
    ) -> float:
        """``Σ_n w_n E_q[log p(x_n, z_n | params)]`` in closed form (Gaussian moments)."""
        x = np.asarray(x, dtype=float)
        d, q = params.loadings.shape
        w, s2 = params.loadings, float(params.noise_variance)
        m, s = posterior.means, posterior.covariance
        resid = x - params.mean - m @ w.T
        tr_s = float(np.trace(s))
        tr_wws = float(np.trace(w.T @ w @ s))
        per_row = -0.5 * (q * _LOG_2PI + np.sum(m * m, axis=1) + tr_s) - 0.5 * (
            d * (_LOG_2PI + math.log(s2)) + (np.sum(resid * resid, axis=1) + tr_wws) / s2
        )
        return float(np.dot(weights, per_row))

    def posterior_entropy(self, posterior: PPCAPosterior, weights: np.ndarray) -> float:
        """``Σ_n w_n H[N(m_n, S)] = Σ_n w_n (q (1 + log 2π) + log det S) / 2``."""
        q = posterior.covariance.shape[0]
        _, log_det = np.linalg.slogdet(posterior.covariance)
        return float(np.sum(weights)) * 0.5 * (q * (1.0 + _LOG_2PI) + log_det)

    def sample(
        self, params: PPCAParams, n: int, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """Draw ``(x, z)`` with ``n`` rows."""
        d, q = params.loadings.shape
        z = rng.normal(size=(n, q))
        noise = rng.normal(scale=math.sqrt(float(params.noise_variance)), size=(n, d))
        return z @ params.loadings.T + params.mean + noise, z
