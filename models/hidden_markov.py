"""Hidden Markov model with categorical emissions; z is a whole state sequence.

Model (public API only). Data ``x`` is a batch of equal-length sequences, an integer array
``(n_seq, T)`` of symbols in ``{0, …, C-1}``. Each sequence has a hidden path
``z = (z_1, …, z_T)`` with states in ``{0, …, K-1}``:

    ``log p(x, z) = log π_{z_1} + Σ_{t≥2} log A_{z_{t-1} z_t} + Σ_t log B_{z_t x_t}``.

The ``K^T`` paths are never enumerated: ``posterior`` runs the scaled forward-backward
recursions (Rabiner 1989) and returns the marginals ``γ_t(k) = p(z_t = k | x)`` and the
pair marginals ``ξ_t(j, k) = p(z_{t-1} = j, z_t = k | x)``, with ``log p(x)`` the sum of
the log scaling factors. The expected statistics add over sequences:

    initial counts ``Σ_n w_n γ_1``, transition counts ``Σ_n w_n Σ_t ξ_t``,
    emission counts ``Σ_n w_n Σ_t γ_t ⊗ onehot(x_t)``,

and the M-step normalizes each row. ``expected_log_joint`` and ``posterior_entropy``
(the entropy of the posterior Markov chain, ``-Σ ξ log ξ + Σ_{t=2}^{T-1} γ_t log γ_t``)
let :func:`latent_em.check_model` verify the ELBO and M-step laws exactly.

``HMMPathEnumeration`` wraps the model with ``latent_support`` = all ``K^T`` paths: for
short sequences the driver then computes the posterior by brute force, the oracle the
tests compare forward-backward against.

The library now has this model built in, for any emission and sequences of different
lengths: ``latent_em.HiddenMarkovModel(latent_em.components.Categorical(), n_states=K)``
(``docs/composition.md``); ``tests/test_compose_gallery.py`` checks that both follow the
same EM path. This file stays as the worked example of how such a model is written
against the public contract; like all of ``models/``, it is importable only from a
checkout.

Run ``python models/hidden_markov.py`` for a demonstration.
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import NamedTuple

import numpy as np

import latent_em
from latent_em.constraints import Simplex


class HMMParams(NamedTuple):
    initial: np.ndarray  # (K,) π
    transition: np.ndarray  # (K, K) A, rows sum to one
    emission: np.ndarray  # (K, C) B, rows sum to one


class HMMPosterior(NamedTuple):
    state_marginals: np.ndarray  # (n, T, K) γ
    pair_marginals: np.ndarray  # (n, T-1, K, K) ξ


class HMMStats(NamedTuple):
    initial_counts: np.ndarray  # (K,)
    transition_counts: np.ndarray  # (K, K)
    emission_counts: np.ndarray  # (K, C)


def _safe_log(p):
    with np.errstate(divide="ignore"):
        return np.log(p)


@dataclasses.dataclass(frozen=True)
class CategoricalHMM:
    """``n_states`` hidden states emitting one of ``n_symbols`` symbols."""

    n_states: int = 2
    n_symbols: int = 2

    @property
    def constraints(self):
        return {"initial": Simplex(), "transition": Simplex(), "emission": Simplex()}

    def n_parameters(self, params):
        k, c = self.n_states, self.n_symbols
        return (k - 1) + k * (k - 1) + k * (c - 1)

    def check_data(self, x):
        x = np.asarray(x)
        if x.ndim != 2 or x.shape[1] < 2 or not np.issubdtype(x.dtype, np.integer):
            raise ValueError("x must be an integer array (n_seq, T) with T >= 2")
        if x.min() < 0 or x.max() >= self.n_symbols:
            raise ValueError(f"symbols in x must lie in 0..{self.n_symbols - 1}")
        return x

    def initialize(self, x, rng):
        k, c = self.n_states, self.n_symbols
        return HMMParams(
            rng.dirichlet(np.full(k, 5.0)),
            rng.dirichlet(np.full(k, 5.0), size=k),
            rng.dirichlet(np.full(c, 5.0), size=k),
        )

    def log_joint(self, params, x, z):
        log_a = _safe_log(params.transition)
        log_b = _safe_log(params.emission)
        return (
            _safe_log(params.initial)[z[:, 0]]
            + log_a[z[:, :-1], z[:, 1:]].sum(axis=1)
            + log_b[z, x].sum(axis=1)
        )

    def posterior(self, params, x):
        n, t = x.shape
        k = self.n_states
        a, b = params.transition, params.emission
        like = b[:, x].transpose(1, 2, 0)  # (n, T, K): p(x_t | z_t = k)
        alpha = np.empty((n, t, k))
        scale = np.empty((n, t))
        prev = params.initial * like[:, 0]
        for step in range(t):
            if step > 0:
                prev = (alpha[:, step - 1] @ a) * like[:, step]
            scale[:, step] = prev.sum(axis=1)
            alpha[:, step] = prev / scale[:, step, None]
        beta = np.ones((n, t, k))
        for step in range(t - 2, -1, -1):
            beta[:, step] = (like[:, step + 1] * beta[:, step + 1]) @ a.T / scale[:, step + 1, None]
        gamma = alpha * beta
        xi = (
            alpha[:, :-1, :, None]
            * a[None, None]
            * (like[:, 1:] * beta[:, 1:])[:, :, None, :]
            / scale[:, 1:, None, None]
        )
        with np.errstate(divide="ignore"):
            log_marginal = np.log(scale).sum(axis=1)
        return HMMPosterior(gamma, xi), log_marginal

    def expected_stats(self, params, x, posterior, weights):
        gamma, xi = posterior
        onehot = np.eye(self.n_symbols)[x]  # (n, T, C)
        return HMMStats(
            initial_counts=weights @ gamma[:, 0],
            transition_counts=np.einsum("n,ntjk->jk", weights, xi),
            emission_counts=np.einsum("n,ntk,ntc->kc", weights, gamma, onehot),
        )

    def m_step(self, params, stats):
        def normalize(counts):
            return counts / counts.sum(axis=-1, keepdims=True)

        return HMMParams(
            normalize(stats.initial_counts),
            normalize(stats.transition_counts),
            normalize(stats.emission_counts),
        )

    def expected_log_joint(self, params, x, posterior, weights):
        gamma, xi = posterior
        # 0 · log 0 = 0 where a probability is exactly zero
        terms = (
            np.einsum("nk,k->n", gamma[:, 0], np.nan_to_num(_safe_log(params.initial)))
            + np.einsum("ntjk,jk->n", xi, np.nan_to_num(_safe_log(params.transition)))
            + np.einsum(
                "ntk,ntk->n",
                gamma,
                np.nan_to_num(_safe_log(params.emission))[:, x].transpose(1, 2, 0),
            )
        )
        return float(weights @ terms)

    def posterior_entropy(self, posterior, weights):
        gamma, xi = posterior

        def plogp(p):
            return np.where(p > 0, p * _safe_log(np.where(p > 0, p, 1.0)), 0.0)

        # q(z) = q(z_1) Π_t q(z_t | z_{t-1}) = Π_t ξ_t(z_{t-1}, z_t) / Π_{t=2}^{T-1} γ_t(z_t)
        per_seq = -plogp(xi).sum(axis=(1, 2, 3)) + plogp(gamma[:, 1:-1]).sum(axis=(1, 2))
        return float(weights @ per_seq)

    def sample(self, params, n, rng, length=10):
        k = self.n_states
        z = np.empty((n, length), dtype=int)
        z[:, 0] = rng.choice(k, size=n, p=params.initial)
        for t in range(1, length):
            cum = np.cumsum(params.transition[z[:, t - 1]], axis=1)
            z[:, t] = np.minimum((rng.uniform(size=(n, 1)) > cum).sum(axis=1), k - 1)
        cum = np.cumsum(params.emission[z], axis=2)
        x = np.minimum((rng.uniform(size=(n, length, 1)) > cum).sum(axis=2), self.n_symbols - 1)
        return x, z


@dataclasses.dataclass(frozen=True)
class HMMPathEnumeration:
    """Brute force: the same joint density with z enumerated over all ``K^T`` paths."""

    hmm: CategoricalHMM
    length: int

    @property
    def constraints(self):
        return self.hmm.constraints

    def initialize(self, x, rng):
        return self.hmm.initialize(x, rng)

    def latent_support(self):
        return np.array(list(itertools.product(range(self.hmm.n_states), repeat=self.length)))

    def log_joint(self, params, x, z):
        return self.hmm.log_joint(params, x, z)


TRUE_PARAMS = HMMParams(
    initial=np.array([0.7, 0.3]),
    transition=np.array([[0.9, 0.1], [0.2, 0.8]]),
    emission=np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]]),
)


if __name__ == "__main__":
    model = CategoricalHMM(n_states=2, n_symbols=3)
    data, _ = model.sample(TRUE_PARAMS, 200, np.random.default_rng(0), length=20)
    print(latent_em.check_model(model, data))
    result = latent_em.fit(model, data, n_init=3, random_state=0)
    print(result.n_iter, result.params)
