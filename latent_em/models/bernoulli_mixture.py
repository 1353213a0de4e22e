"""The Bernoulli mixture (latent class model for binary items).

``p(x) = Σ_k φ_k Π_d θ_kd^{x_d} (1 - θ_kd)^{1 - x_d}`` for ``x ∈ {0, 1}^D``.

EM updates (``docs/models/bernoulli.md``), with ``r_nk`` the responsibilities and ``w_n``
the row weights:

* E-step: ``r_nk ∝ φ_k Π_d θ_kd^{x_nd} (1 - θ_kd)^{1 - x_nd}`` (log space).
* M-step: ``N_k = Σ_n w_n r_nk``, ``S_kd = Σ_n w_n r_nk x_nd``;
  ``φ_k = N_k / N`` (Lagrange multiplier) and ``θ_kd = S_kd / N_k``.
* MAP-EM with a Dirichlet(α) prior on φ and Beta(a, b) priors on θ:
  ``φ_k = (N_k + α - 1) / (N + K(α - 1))``, ``θ_kd = (S_kd + a - 1) / (N_k + a + b - 2)``.

Probabilities exactly 0 or 1 are legal estimates; the log-joint treats ``0 · log 0`` as 0.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np

from .. import compiled
from .._lazy import lazy_functions
from .._validation import check_choice, check_int, check_param_shapes
from ..compiled import use_compiled
from ..constraints import Constraint, Interval, Simplex
from ._discrete import (
    INIT_METHODS,
    check_concentration,
    check_pair_prior,
    dirichlet_log_density,
    empty_component_messages,
    finite_matrix,
    kernel_applies,
    log_weights,
    ratio_or_keep,
    safe_log,
    smoothed_start,
    table_e_step,
    weighted_sums,
    weights_m_step,
)
from ._mixture import KernelMixture

betaln, xlog1py, xlogy = lazy_functions("scipy.special", "betaln", "xlog1py", "xlogy")

__all__ = ["BernoulliMixtureModel", "BernoulliMixtureParams", "BernoulliMixtureStats"]


class BernoulliMixtureParams(NamedTuple):
    """Parameters of a Bernoulli mixture.

    Attributes
    ----------
    weights : (K,)
        Mixing proportions φ (class shares), summing to one.
    probs : (K, D)
        ``θ_kd = P(x_d = 1 | z = k)``.
    """

    weights: np.ndarray
    probs: np.ndarray


class BernoulliMixtureStats(NamedTuple):
    """Expected sufficient statistics (additive over rows).

    Attributes
    ----------
    counts : (K,)
        ``N_k = Σ_n w_n r_nk``.
    sum_x : (K, D)
        ``S_kd = Σ_n w_n r_nk x_nd``.
    """

    counts: np.ndarray
    sum_x: np.ndarray


def bernoulli_log_table(probs: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``(n, K)`` table of ``Σ_d log p(x_nd | θ_kd)``, exact at ``θ ∈ {0, 1}``.

    A matrix product ``x @ log θᵀ`` would form ``0 · (-inf) = NaN`` at a boundary; the
    finite part is taken with the boundary logs set to 0, and cells that use a zero
    probability are then set to ``-inf``.
    """
    probs = np.asarray(probs, dtype=float)
    zero1 = probs <= 0.0  # θ = 0: x = 1 impossible
    zero0 = probs >= 1.0  # θ = 1: x = 0 impossible
    log1 = np.where(zero1, 0.0, safe_log(np.where(zero1, 1.0, probs)))
    log0 = np.where(zero0, 0.0, safe_log(np.where(zero0, 1.0, 1.0 - probs)))
    table = x @ log1.T + (1.0 - x) @ log0.T
    if np.any(zero1) or np.any(zero0):
        impossible = (x @ zero1.T.astype(float) > 0) | ((1.0 - x) @ zero0.T.astype(float) > 0)
        table[impossible] = -np.inf
    return table


@dataclasses.dataclass(frozen=True)
class BernoulliMixtureModel(KernelMixture):
    """Mixture of products of independent Bernoulli distributions, for the EM driver.

    Parameters
    ----------
    n_components : int
        Number of latent classes K.
    init_params : {"random", "random_from_data"}, default "random"
        ``"random"``: equal weights and class-conditional probabilities drawn uniformly
        on (0.05, 0.95), as poLCA's random starting values. ``"random_from_data"``: K
        distinct response patterns as centres, every row assigned to the nearest one,
        then probabilities from that partition shrunk by one pseudo-row towards the
        column means (so no initial probability is exactly 0 or 1).
    weight_concentration : float, optional
        Symmetric Dirichlet(α) prior on the weights (α >= 1); ``None``: no prior.
    beta_prior : (float, float), optional
        Beta(a, b) prior on every ``θ_kd`` (a, b >= 1); ``None``: no prior (MLE).
        ``(2, 2)`` keeps estimates off 0 and 1.
    """

    n_components: int
    init_params: str = "random"
    weight_concentration: float | None = None
    beta_prior: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        check_int(self.n_components, "n_components", minimum=1)
        check_choice(self.init_params, "init_params", INIT_METHODS)
        object.__setattr__(
            self,
            "weight_concentration",
            check_concentration(self.weight_concentration, "weight_concentration"),
        )
        object.__setattr__(
            self,
            "beta_prior",
            check_pair_prior(self.beta_prior, "beta_prior", first_min=1.0, second_min=1.0),
        )

    # ---- data
    def check_data(self, x: Any) -> np.ndarray:
        """Validate ``x`` as an ``(n, D)`` matrix of 0/1 values (booleans allowed).

        Raises
        ------
        ValueError
            On NaN, or on a value other than 0 and 1 (naming the column).
        """
        arr = finite_matrix(x, "X", 1)
        binary = (arr == 0.0) | (arr == 1.0)
        if not np.all(binary):
            row, col = np.argwhere(~binary)[0]
            raise ValueError(
                f"X must be binary (0/1 or booleans) for a Bernoulli mixture: column {col} "
                f"holds the value {arr[row, col]:g} at row {row}"
            )
        return arr

    # ---- parameters
    @property
    def constraints(self) -> Mapping[str, Constraint]:
        """Weights on the simplex, probabilities in (0, 1)."""
        return {"weights": Simplex(), "probs": Interval(0.0, 1.0)}

    def n_parameters(self, params: BernoulliMixtureParams) -> int:
        """``K - 1 + K D`` (poLCA's count for binary items)."""
        k, d = np.shape(params.probs)
        return int(k - 1 + k * d)

    def initialize(self, x: np.ndarray, rng: np.random.Generator) -> BernoulliMixtureParams:
        """Initial parameters by ``init_params`` (see the class docstring)."""
        x = np.asarray(x, dtype=float)
        k, d = self.n_components, x.shape[1]
        if self.init_params == "random":
            return BernoulliMixtureParams(np.full(k, 1.0 / k), rng.uniform(0.05, 0.95, (k, d)))
        weights, probs = smoothed_start(x, k, rng)
        return BernoulliMixtureParams(weights, np.clip(probs, 1e-3, 1.0 - 1e-3))

    def validate_params(self, params: Any, x: Any) -> None:
        """Parameters passed to ``fit``: a :class:`BernoulliMixtureParams` shaped for ``x``."""
        k, d = self.n_components, np.shape(x)[1]
        check_param_shapes(
            type(self).__name__, params, BernoulliMixtureParams, {"weights": (k,), "probs": (k, d)}
        )

    # ---- the contract
    def log_weighted_densities(self, params: BernoulliMixtureParams, x: np.ndarray) -> np.ndarray:
        """``(n, K)`` table of ``log φ_k + Σ_d log p(x_nd | θ_kd)``."""
        x = np.asarray(x, dtype=float)
        return bernoulli_log_table(params.probs, x) + log_weights(params.weights)

    def expected_stats(
        self,
        params: BernoulliMixtureParams,
        x: np.ndarray,
        posterior: np.ndarray,
        weights: np.ndarray,
    ) -> BernoulliMixtureStats:
        """``N_k`` and ``S_kd`` of a chunk (additive over rows)."""
        return BernoulliMixtureStats(*weighted_sums(x, posterior, weights))

    def e_step(
        self, params: BernoulliMixtureParams, x: np.ndarray, weights: np.ndarray
    ) -> tuple[BernoulliMixtureStats, np.ndarray]:
        """Fused E-step: the statistics of :meth:`expected_stats` at the exact posterior
        and ``log p(x_n)``.

        From ``N·K ≥ 10⁵`` (rows times components) one compiled pass per block of rows
        (:func:`latent_em.compiled.bernoulli_e_step`) forms the log-densities, the
        responsibilities and the statistics without materializing the ``(n, K)``
        posterior; below, the NumPy path (log-densities, posterior, ``expected_stats``).
        Both treat ``θ ∈ {0, 1}`` exactly (see :func:`bernoulli_log_table`) and give a
        row impossible under every class uniform responsibilities.

        Returns
        -------
        stats : BernoulliMixtureStats
            ``N_k`` and ``S_kd``, equal to those of the NumPy path up to round-off.
        log_marginal : (n,) numpy.ndarray
            ``log p(x_n | params)``.
        """
        x = np.asarray(x)
        if (
            x.ndim == 2
            and use_compiled(x.shape[0], self.n_components)
            and kernel_applies(self, BernoulliMixtureModel)
        ):
            counts, sum_x, log_marginal = compiled.bernoulli_e_step(
                x, weights, log_weights(params.weights), params.probs, self._threads()
            )
            return BernoulliMixtureStats(counts, sum_x), log_marginal
        return table_e_step(self, params, x, weights)

    def m_step(
        self, params: BernoulliMixtureParams, stats: BernoulliMixtureStats
    ) -> BernoulliMixtureParams:
        """Closed-form (MAP) maximizer; an empty class keeps its probabilities."""
        a, b = self.beta_prior if self.beta_prior is not None else (1.0, 1.0)
        numer = stats.sum_x + (a - 1.0)
        probs = ratio_or_keep(numer, stats.counts[:, None] + (a + b - 2.0), params.probs)
        # round-off can push S_kd / N_k a hair outside [0, 1]
        probs = np.clip(probs, 0.0, 1.0)
        return BernoulliMixtureParams(
            weights_m_step(stats.counts, self.weight_concentration), probs
        )

    def log_prior(self, params: BernoulliMixtureParams) -> float:
        """``log p(φ) + log p(θ)``; 0 without priors."""
        total = 0.0
        if self.weight_concentration is not None:
            total += dirichlet_log_density(params.weights, self.weight_concentration)
        if self.beta_prior is not None:
            a, b = self.beta_prior
            p = np.asarray(params.probs, dtype=float)
            total += float(np.sum(xlogy(a - 1.0, p) + xlog1py(b - 1.0, -p)) - p.size * betaln(a, b))
        return total

    def repair(
        self, params: BernoulliMixtureParams, stats: BernoulliMixtureStats, rng: np.random.Generator
    ) -> tuple[BernoulliMixtureParams, tuple[str, ...]]:
        """Report empty components (the parameters are returned unchanged)."""
        return params, empty_component_messages(stats.counts)

    def sample(
        self, params: BernoulliMixtureParams, n: int, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """Draw ``n`` rows; returns ``(x (n, D) of 0/1 integers, z (n,))``."""
        z = rng.choice(self.n_components, size=n, p=np.asarray(params.weights))
        probs = np.asarray(params.probs)[z]
        return (rng.random(probs.shape) < probs).astype(np.int64), z
