"""The tests' small custom model: a mixture of two exponentials (the example of the
``latent_em.protocols`` docstring), stated once for every test file that needs it.

``ExponentialMixtureLogJoint`` gives ``log_joint`` over an enumerable z only (the
driver's numerical M-step); ``ExponentialMixture`` adds the closed-form statistics and
M-step, ``rate_k = N_k / Σ_n r_nk x_n``.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import numpy as np


class ExpParams(NamedTuple):
    weights: np.ndarray  # (2,)
    rates: np.ndarray  # (2,)


class ExpStats(NamedTuple):
    counts: np.ndarray
    sum_x: np.ndarray


@dataclasses.dataclass(frozen=True)
class ExponentialMixtureLogJoint:
    """``log p(x, z | θ)`` over ``z ∈ {0, 1}`` and nothing else."""

    n_components: int = 2

    def initialize(self, x, rng):
        return ExpParams(np.full(2, 0.5), 1.0 / np.quantile(x, [0.25, 0.75]))

    def latent_support(self):
        return np.arange(2)

    def log_joint(self, params, x, z):
        rate = params.rates[z]
        return np.log(params.weights[z]) + np.log(rate) - rate * x


@dataclasses.dataclass(frozen=True)
class ExponentialMixture(ExponentialMixtureLogJoint):
    """The same model with its closed-form expected statistics and M-step."""

    def expected_stats(self, params, x, posterior, weights):
        r = posterior * weights[:, None]
        return ExpStats(r.sum(0), r.T @ x)

    def m_step(self, params, stats):
        return ExpParams(stats.counts / stats.counts.sum(), stats.counts / stats.sum_x)
