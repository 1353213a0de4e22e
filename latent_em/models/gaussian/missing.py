"""Rows with missing values (NaN), marginalized under missing-at-random.

Ghahramani & Jordan (1994), "Supervised learning from incomplete data via an EM
approach" (NIPS 6): a row with observed coordinates O and missing M has, in component k,

* the density of its observed part, ``N(x_O; μ_O, Σ_OO)`` (the E-step's table);
* the conditional mean ``x̂_M = μ_M + Σ_MO Σ_OO⁻¹ (x_O - μ_O)`` and covariance
  ``C = Σ_MM - Σ_MO Σ_OO⁻¹ Σ_OM`` of its missing part, so that the M-step's expected
  moments are those of the completed row ``x̂`` plus ``C`` in the missing block.

Rows are grouped by missingness pattern, so rows sharing a pattern share one
factorization per component. The statistics are the full ``(K, D, D)`` second moments
about the current means, reduced by the structure (``Covariance.reduce_second``: summed
over components for tied, the diagonal for diag, the trace for spherical) to what its
M-step takes: every structure's M-step is unchanged.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..._lazy import lazy_module
from .kernels import log_normalize
from .params import GaussianMixtureParams, GaussianMixtureStats

# scipy submodules on first use, so that import latent_em stays light
linalg = lazy_module("scipy.linalg")

__all__ = [
    "MISSING",
    "log_weighted_densities",
    "e_step",
    "expected_stats",
    "impute",
    "fill_column_means",
]

#: the values of ``GaussianMixtureModel(missing=...)``
MISSING = ("error", "marginalize")

_LOG_2PI = math.log(2.0 * math.pi)


def _full(model: Any, params: GaussianMixtureParams) -> np.ndarray:
    k, d = np.shape(params.means)
    return model.covariance.to_full(np.asarray(params.covariances, dtype=float), k, d)


def _patterns(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct missingness patterns (``(P, D)`` booleans, True = missing) and each
    row's pattern index."""
    patterns, inverse = np.unique(np.isnan(x), axis=0, return_inverse=True)
    return patterns, inverse.reshape(-1)


class _Conditional:
    """Component k restricted to the observed coordinates of one pattern."""

    def __init__(self, mean: np.ndarray, cov: np.ndarray, missing: np.ndarray) -> None:
        self.obs = np.flatnonzero(~missing)
        self.mis = np.flatnonzero(missing)
        self.mean = mean
        s_oo = cov[np.ix_(self.obs, self.obs)]
        # (an empty factor when nothing is observed)
        self.chol = linalg.cholesky(s_oo, lower=True, check_finite=False) if self.obs.size else s_oo
        self.log_det = 2.0 * float(np.sum(np.log(np.diag(self.chol))))
        if self.mis.size and self.obs.size:
            s_mo = cov[np.ix_(self.mis, self.obs)]
            # regression of the missing on the observed coordinates: Σ_MO Σ_OO⁻¹
            self.coef = linalg.cho_solve((self.chol, True), s_mo.T, check_finite=False).T
            self.cond_cov = cov[np.ix_(self.mis, self.mis)] - self.coef @ s_mo.T
        else:
            self.coef = np.zeros((self.mis.size, self.obs.size))
            self.cond_cov = cov[np.ix_(self.mis, self.mis)]

    def log_density(self, xo: np.ndarray) -> np.ndarray:
        if not self.obs.size:
            return np.zeros(xo.shape[0])
        z = linalg.solve_triangular(
            self.chol, (xo - self.mean[self.obs]).T, lower=True, check_finite=False
        )
        return -0.5 * (self.obs.size * _LOG_2PI + self.log_det + np.einsum("ij,ij->j", z, z))

    def complete(self, xo: np.ndarray) -> np.ndarray:
        """Rows completed with their conditional means, ``(n, D)``."""
        out = np.empty((xo.shape[0], self.mean.shape[0]))
        out[:, self.obs] = xo
        out[:, self.mis] = self.mean[self.mis] + (xo - self.mean[self.obs]) @ self.coef.T
        return out


def _conditionals(model: Any, params: GaussianMixtureParams, patterns: np.ndarray) -> list:
    means = np.asarray(params.means, dtype=float)
    full = _full(model, params)
    return [
        [_Conditional(means[j], full[j], pattern) for j in range(means.shape[0])]
        for pattern in patterns
    ]


def _pieces(model: Any, params: GaussianMixtureParams, x: np.ndarray) -> tuple[np.ndarray, list]:
    """Each row's pattern index and the components conditioned on every pattern."""
    patterns, inverse = _patterns(x)
    return inverse, _conditionals(model, params, patterns)


def _table(
    params: GaussianMixtureParams, x: np.ndarray, inverse: np.ndarray, cond: list
) -> np.ndarray:
    with np.errstate(divide="ignore"):
        log_w = np.log(np.asarray(params.weights, dtype=float))
    out = np.empty((x.shape[0], len(log_w)))
    for p, comps in enumerate(cond):
        rows = np.flatnonzero(inverse == p)
        xo = x[np.ix_(rows, comps[0].obs)]
        for j, c in enumerate(comps):
            out[rows, j] = log_w[j] + c.log_density(xo)
    return out


def log_weighted_densities(model: Any, params: GaussianMixtureParams, x: np.ndarray) -> np.ndarray:
    """``(n, K)`` table of ``log φ_k + log N(x_O; μ_O, Σ_OO)`` over each row's observed
    coordinates."""
    x = np.asarray(x, dtype=float)
    return _table(params, x, *_pieces(model, params, x))


def expected_stats(
    model: Any,
    params: GaussianMixtureParams,
    x: np.ndarray,
    posterior: np.ndarray,
    weights: np.ndarray,
) -> GaussianMixtureStats:
    """Counts and expected moments about the current means, the missing coordinates
    replaced by their conditional means and their conditional covariances added."""
    x = np.asarray(x, dtype=float)
    return _stats(model, params, x, posterior, weights, *_pieces(model, params, x))


def _stats(
    model: Any,
    params: GaussianMixtureParams,
    x: np.ndarray,
    posterior: np.ndarray,
    weights: np.ndarray,
    inverse: np.ndarray,
    cond: list,
) -> GaussianMixtureStats:
    means = np.asarray(params.means, dtype=float)
    k, d = means.shape
    rw = np.asarray(posterior, dtype=float) * np.asarray(weights, dtype=float)[:, None]
    counts = rw.sum(axis=0)
    sum_dx = np.zeros((k, d))
    second = np.zeros((k, d, d))
    for p, comps in enumerate(cond):
        rows = np.flatnonzero(inverse == p)
        xo = x[np.ix_(rows, comps[0].obs)]
        for j, c in enumerate(comps):
            r = rw[rows, j]
            diff = c.complete(xo) - means[j]
            weighted = diff * r[:, None]
            sum_dx[j] += weighted.sum(axis=0)
            second[j] += weighted.T @ diff
            if c.mis.size:
                second[j][np.ix_(c.mis, c.mis)] += r.sum() * c.cond_cov
    return GaussianMixtureStats(counts, sum_dx, model.covariance.reduce_second(second))


def _responsibilities(
    params: GaussianMixtureParams, x: np.ndarray, inverse: np.ndarray, cond: list
) -> tuple[np.ndarray, np.ndarray]:
    """``(n, K)`` responsibilities and ``log p(x_n)`` (of the observed part)."""
    table = np.ascontiguousarray(_table(params, x, inverse, cond).T)
    log_marginal = log_normalize(table)
    return table.T, log_marginal


def e_step(
    model: Any, params: GaussianMixtureParams, x: np.ndarray, weights: np.ndarray
) -> tuple[GaussianMixtureStats, np.ndarray]:
    """The E-step's statistics and ``log p(x_n)`` (the density of the observed part);
    the patterns and conditional factorizations are computed once for both."""
    x = np.asarray(x, dtype=float)
    inverse, cond = _pieces(model, params, x)
    resp, log_marginal = _responsibilities(params, x, inverse, cond)
    return _stats(model, params, x, resp, weights, inverse, cond), log_marginal


def fill_column_means(x: np.ndarray) -> np.ndarray:
    """``x`` with each NaN replaced by its column's mean (0 for a column with no value):
    a starting point for the initialization."""
    missing = np.isnan(x)
    present = (~missing).sum(axis=0)
    means = np.where(missing, 0.0, x).sum(axis=0) / np.maximum(present, 1)
    return np.where(missing, means, x)


def impute(model: Any, params: GaussianMixtureParams, x: np.ndarray) -> np.ndarray:
    """``E[x_M | x_O]``: each row's missing coordinates replaced by their conditional mean
    under the mixture (the responsibilities times the components' conditional means)."""
    x = np.asarray(x, dtype=float)
    inverse, cond = _pieces(model, params, x)
    resp, _ = _responsibilities(params, x, inverse, cond)
    out = x.copy()
    for p, comps in enumerate(cond):
        if not comps[0].mis.size:
            continue
        rows = np.flatnonzero(inverse == p)
        xo = x[np.ix_(rows, comps[0].obs)]
        filled = sum(resp[rows, j][:, None] * c.complete(xo) for j, c in enumerate(comps))
        out[rows] = filled
    return out
