"""Mixture of gamma distributions, fitted through ``log_joint`` and ``constraints`` alone.

Model (public API only): ``z_n ∈ {0, …, K-1}`` with ``P(z_n = k) = φ_k`` and

    ``x_n | z_n = k ~ Gamma(shape α_k, rate β_k)``,
    ``log p(x, k) = log φ_k + α_k log β_k - log Γ(α_k) + (α_k - 1) log x - β_k x``.

The shape has no closed-form M-step (its update solves ``log α - ψ(α) = c``), so this
model gives no ``expected_stats``/``m_step``: the driver's generic numerical M-step
maximizes ``Q`` with L-BFGS over the unconstrained values of its ``constraints``
(``φ`` on the simplex, ``α`` and ``β`` positive).

``GammaMixtureWithGradient`` adds the optional ``log_joint_grad``:
``∂/∂φ_k = 1/φ_k``, ``∂/∂α_k = log β_k - ψ(α_k) + log x``, ``∂/∂β_k = α_k/β_k - x``
(each summed with the given weights over the rows assigned to ``k``), which replaces the
central finite differences.

The composed ``latent_em.Mixture(latent_em.components.Gamma(), n_components=K)`` fits
the same model with closed-form statistics and a one-dimensional root for the shape
(``tests/test_compose_gallery.py`` checks that both reach the same maximum).

Run ``python models/gamma_mixture.py`` for a demonstration.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import numpy as np
from scipy.special import digamma, gammaln

import latent_em
from latent_em.constraints import Positive, Simplex


class GammaMixtureParams(NamedTuple):
    weights: np.ndarray  # (K,) φ
    shapes: np.ndarray  # (K,) α
    rates: np.ndarray  # (K,) β


@dataclasses.dataclass(frozen=True)
class GammaMixture:
    """``K`` gamma components; the M-step is numerical (no closed form)."""

    n_components: int = 2

    @property
    def constraints(self):
        return {"weights": Simplex(), "shapes": Positive(), "rates": Positive()}

    def check_data(self, x):
        x = np.asarray(x, dtype=float)
        if x.ndim != 1 or np.any(x <= 0) or not np.all(np.isfinite(x)):
            raise ValueError("x must be a 1-D array of positive, finite values")
        return x

    def initialize(self, x, rng):
        # method of moments on a random split at a quantile of the data
        cut = np.quantile(x, rng.uniform(0.3, 0.7))
        groups = np.array_split(np.sort(x), self.n_components)
        if self.n_components == 2:
            groups = [x[x <= cut], x[x > cut]]
        means = np.array([g.mean() for g in groups])
        variances = np.array([max(g.var(), 1e-3 * g.mean() ** 2) for g in groups])
        return GammaMixtureParams(
            np.array([len(g) for g in groups], dtype=float) / len(x),
            means**2 / variances,
            means / variances,
        )

    def latent_support(self):
        return np.arange(self.n_components)

    def log_joint(self, params, x, z):
        a, b = params.shapes[z], params.rates[z]
        return np.log(params.weights[z]) + a * np.log(b) - gammaln(a) + (a - 1) * np.log(x) - b * x

    def sample(self, params, n, rng):
        z = rng.choice(len(params.weights), size=n, p=params.weights)
        return rng.gamma(params.shapes[z], 1.0 / params.rates[z]), z


@dataclasses.dataclass(frozen=True)
class GammaMixtureWithGradient(GammaMixture):
    """The same model with the optional analytic gradient of ``log_joint``."""

    def log_joint_grad(self, params, x, z, weights):
        k = len(params.weights)
        a, b = params.shapes[z], params.rates[z]
        onehot = np.eye(k)[z] * weights[:, None]  # (n, K): weight of row n in component k
        return {
            "weights": onehot.sum(axis=0) / params.weights,
            "shapes": onehot.T @ (np.log(b) - digamma(a) + np.log(x)),
            "rates": onehot.T @ (a / b - x),
        }


TRUE_PARAMS = GammaMixtureParams(
    weights=np.array([0.35, 0.65]), shapes=np.array([2.0, 9.0]), rates=np.array([2.0, 1.5])
)


if __name__ == "__main__":
    model = GammaMixtureWithGradient(2)
    data, _ = model.sample(TRUE_PARAMS, 600, np.random.default_rng(0))
    print(latent_em.check_model(model, data))
    result = latent_em.fit(model, data, random_state=0, tol=1e-8)
    print(result.n_iter, result.params, result.events)
