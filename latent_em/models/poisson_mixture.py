"""The Poisson mixture for count data (independent Poisson counts per column).

``p(x) = Σ_k φ_k Π_d Poisson(x_d; λ_kd)``, ``Poisson(x; λ) = λ^x e^{-λ} / x!``.

EM updates (``docs/models/poisson.md``), with ``r_nk`` the responsibilities and ``w_n``
the row weights:

* E-step: ``r_nk ∝ φ_k Π_d Poisson(x_nd; λ_kd)`` (log space).
* M-step: ``N_k = Σ_n w_n r_nk``, ``S_kd = Σ_n w_n r_nk x_nd``;
  ``φ_k = N_k / N`` (Lagrange multiplier) and ``λ_kd = S_kd / N_k``.
* MAP-EM with a Dirichlet(α) prior on φ and Gamma(a, b) priors (shape a, rate b) on λ:
  ``λ_kd = (S_kd + a - 1) / (N_k + b)``.

A rate of exactly 0 is a legal estimate (a class whose members all count 0 in that
column); the log-joint treats ``0 · log 0`` as 0.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np

from .. import compiled
from .._lazy import lazy_functions
from .._validation import check_choice, check_int, check_param_shapes
from ..compiled import use_compiled
from ..constraints import Constraint, Positive, Simplex
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

gammaln, xlogy = lazy_functions("scipy.special", "gammaln", "xlogy")

__all__ = ["PoissonMixtureModel", "PoissonMixtureParams", "PoissonMixtureStats"]


class PoissonMixtureParams(NamedTuple):
    """Parameters of a Poisson mixture.

    Attributes
    ----------
    weights : (K,)
        Mixing proportions φ, summing to one.
    rates : (K, D)
        Poisson means ``λ_kd`` (non-negative).
    """

    weights: np.ndarray
    rates: np.ndarray


class PoissonMixtureStats(NamedTuple):
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


def _log_factorial(x: np.ndarray) -> np.ndarray:
    """``log x!`` elementwise; small counts (the usual case) through a lookup table,
    several times faster than ``gammaln`` on every element of every E-step."""
    top = float(x.max()) if x.size else 0.0
    if top <= 65536:
        table = gammaln(np.arange(int(top) + 1, dtype=float) + 1.0)
        return np.take(table, x.astype(np.intp))
    return gammaln(x + 1.0)


#: above this count the table is computed element by element in a stable form: the
#: matrix form ``x log λ - λ - log x!`` cancels terms of size ``x log x``, losing about
#: ``eps · x log x`` (2 nats at ``x = 1e15``, everything from ``x = 1e16``)
STABLE_COUNT = 65536.0

_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


def _stirling_error(x: np.ndarray) -> np.ndarray:
    """``log x! - (x log x - x + ½ log 2πx)`` for ``x >= 16`` (series, error < 1e-14)."""
    inv = 1.0 / x
    inv2 = inv * inv
    return inv * (1.0 / 12.0 - inv2 * (1.0 / 360.0 - inv2 * (1.0 / 1260.0 - inv2 / 1680.0)))


def poisson_log_pmf(x: np.ndarray, rates: np.ndarray) -> np.ndarray:
    """``log Poisson(x; λ)`` elementwise (broadcast), accurate at any count.

    Loader's (2000) saddle-point form for ``x >= 16``: ``-stirlerr(x) - ½ log 2πx -
    bd0(x, λ)`` with ``bd0 = x log(x/λ) + λ - x`` computed through ``log1p``, so no two
    terms of size ``x log x`` cancel; below, the direct ``x log λ - λ - log x!``.
    ``λ = 0`` gives ``0`` at ``x = 0`` and ``-inf`` above.
    """
    x, rates = np.broadcast_arrays(np.asarray(x, dtype=float), np.asarray(rates, dtype=float))
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        direct = np.asarray(xlogy(x, rates) - rates - gammaln(x + 1.0))
        big = (x >= 16.0) & (rates > 0.0)
        if not np.any(big):
            return direct
        xb, lb = x[big], rates[big]
        d = xb - lb
        bd0 = xb * np.log1p(d / lb) - d
        out = np.array(direct, copy=True)
        out[big] = -_stirling_error(xb) - _HALF_LOG_2PI - 0.5 * np.log(xb) - bd0
    return out


def poisson_log_table(rates: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``(n, K)`` table of ``Σ_d log Poisson(x_nd; λ_kd)``, exact at ``λ = 0``.

    Counts up to :data:`STABLE_COUNT` (the usual case) take the matrix form; data with
    larger counts are computed element by element by :func:`poisson_log_pmf`, in blocks
    of rows.
    """
    rates = np.asarray(rates, dtype=float)
    x = np.asarray(x, dtype=float)
    if x.size and float(x.max()) > STABLE_COUNT:
        n, (k, d) = x.shape[0], rates.shape
        table = np.empty((n, k))
        step = max(1, (1 << 20) // max(1, k * d))
        for start in range(0, n, step):
            block = x[start : start + step]
            table[start : start + step] = poisson_log_pmf(block[:, None, :], rates[None, :, :]).sum(
                axis=2
            )
        return table
    zero = rates <= 0.0
    log_rates = np.where(zero, 0.0, safe_log(np.where(zero, 1.0, rates)))
    table = x @ log_rates.T - rates.sum(axis=1)[None, :] - _log_factorial(x).sum(axis=1)[:, None]
    if np.any(zero):
        # a positive count is impossible under a zero rate
        table[(x > 0).astype(float) @ zero.T.astype(float) > 0] = -np.inf
    return table


@dataclasses.dataclass(frozen=True)
class PoissonMixtureModel(KernelMixture):
    """Mixture of products of independent Poisson distributions, for the EM driver.

    Parameters
    ----------
    n_components : int
        Number of components K.
    init_params : {"random", "random_from_data"}, default "random"
        ``"random"``: equal weights and rates equal to the column means times
        independent Gamma(2, 1/2) factors (mean one). ``"random_from_data"``: K
        distinct rows as centres, every row assigned to the nearest one, then rates
        from that partition shrunk by one pseudo-row towards the column means.
    weight_concentration : float, optional
        Symmetric Dirichlet(α) prior on the weights (α >= 1); ``None``: no prior.
    gamma_prior : (float, float), optional
        Gamma(a, b) prior on every rate, shape ``a >= 1`` and rate ``b > 0``;
        ``None``: no prior (MLE).
    """

    n_components: int
    init_params: str = "random"
    weight_concentration: float | None = None
    gamma_prior: tuple[float, float] | None = None

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
            "gamma_prior",
            check_pair_prior(
                self.gamma_prior, "gamma_prior", first_min=1.0, second_min=0.0, second_strict=True
            ),
        )

    # ---- data
    def check_data(self, x: Any) -> np.ndarray:
        """Validate ``x`` as an ``(n, D)`` matrix of non-negative integer counts.

        Raises
        ------
        ValueError
            On NaN, or on a negative or non-integer value (naming the column).
        """
        arr = finite_matrix(x, "X", 1)
        negative = arr < 0
        if np.any(negative):
            row, col = np.argwhere(negative)[0]
            raise ValueError(
                f"X must hold non-negative counts for a Poisson mixture: column {col} holds "
                f"{arr[row, col]:g} at row {row}"
            )
        fractional = arr != np.floor(arr)
        if np.any(fractional):
            row, col = np.argwhere(fractional)[0]
            raise ValueError(
                f"X must hold integer counts for a Poisson mixture: column {col} holds "
                f"{arr[row, col]:g} at row {row}"
            )
        return arr

    # ---- parameters
    @property
    def constraints(self) -> Mapping[str, Constraint]:
        """Weights on the simplex, positive rates."""
        return {"weights": Simplex(), "rates": Positive()}

    def n_parameters(self, params: PoissonMixtureParams) -> int:
        """``K - 1 + K D``."""
        k, d = np.shape(params.rates)
        return int(k - 1 + k * d)

    def initialize(self, x: np.ndarray, rng: np.random.Generator) -> PoissonMixtureParams:
        """Initial parameters by ``init_params`` (see the class docstring)."""
        x = np.asarray(x, dtype=float)
        k, d = self.n_components, x.shape[1]
        mean = x.mean(axis=0)
        if self.init_params == "random":
            factors = rng.gamma(2.0, 0.5, size=(k, d))
            params = PoissonMixtureParams(np.full(k, 1.0 / k), mean[None, :] * factors)
        else:
            params = PoissonMixtureParams(*smoothed_start(x, k, rng))
        if self.gamma_prior is not None and self.gamma_prior[0] > 1.0:
            # a Gamma(a > 1) prior has zero density at λ = 0 (a column of zeros gives
            # zero rates): start at the MAP rate of a component holding all rows, all zero
            a, b = self.gamma_prior
            floor = (a - 1.0) / (b + x.shape[0])
            params = params._replace(rates=np.maximum(params.rates, floor))
        return params

    def validate_params(self, params: Any, x: Any) -> None:
        """Parameters passed to ``fit``: a :class:`PoissonMixtureParams` shaped for ``x``."""
        k, d = self.n_components, np.shape(x)[1]
        check_param_shapes(
            type(self).__name__, params, PoissonMixtureParams, {"weights": (k,), "rates": (k, d)}
        )

    # ---- the contract
    def log_weighted_densities(self, params: PoissonMixtureParams, x: np.ndarray) -> np.ndarray:
        """``(n, K)`` table of ``log φ_k + Σ_d log Poisson(x_nd; λ_kd)``."""
        x = np.asarray(x, dtype=float)
        return poisson_log_table(params.rates, x) + log_weights(params.weights)

    def expected_stats(
        self,
        params: PoissonMixtureParams,
        x: np.ndarray,
        posterior: np.ndarray,
        weights: np.ndarray,
    ) -> PoissonMixtureStats:
        """``N_k`` and ``S_kd`` of a chunk (additive over rows)."""
        return PoissonMixtureStats(*weighted_sums(x, posterior, weights))

    def e_step(
        self, params: PoissonMixtureParams, x: np.ndarray, weights: np.ndarray
    ) -> tuple[PoissonMixtureStats, np.ndarray]:
        """Fused E-step: the statistics of :meth:`expected_stats` at the exact posterior
        and ``log p(x_n)``.

        From ``N·K ≥ 10⁵`` (rows times components), and counts up to
        :data:`STABLE_COUNT`, one compiled pass per block of rows
        (:func:`latent_em.compiled.poisson_e_step`) forms the log-densities (the matrix
        form of :func:`poisson_log_table`, with its log-factorial table), the
        responsibilities and the statistics without materializing the ``(n, K)``
        posterior; otherwise the NumPy path (log-densities, posterior,
        ``expected_stats``). Both treat ``λ = 0`` exactly and give a row impossible
        under every component uniform responsibilities.

        Returns
        -------
        stats : PoissonMixtureStats
            ``N_k`` and ``S_kd``, equal to those of the NumPy path up to round-off.
        log_marginal : (n,) numpy.ndarray
            ``log p(x_n | params)``.
        """
        x = np.asarray(x)
        if (
            x.ndim == 2
            and x.size
            and use_compiled(x.shape[0], self.n_components)
            and kernel_applies(self, PoissonMixtureModel)
        ):
            x = np.ascontiguousarray(x, dtype=float)
            top = float(x.max())
            if top <= STABLE_COUNT:  # (not for NaN)
                # log c! for c = 0 .. max count, as _log_factorial tabulates it
                log_factorial = gammaln(np.arange(max(int(top), 0) + 1, dtype=float) + 1.0)
                counts, sum_x, log_marginal = compiled.poisson_e_step(
                    x,
                    weights,
                    log_weights(params.weights),
                    params.rates,
                    log_factorial,
                    self._threads(),
                )
                return PoissonMixtureStats(counts, sum_x), log_marginal
        return table_e_step(self, params, x, weights)

    def m_step(
        self, params: PoissonMixtureParams, stats: PoissonMixtureStats
    ) -> PoissonMixtureParams:
        """Closed-form (MAP) maximizer; an empty component keeps its rates."""
        a, b = self.gamma_prior if self.gamma_prior is not None else (1.0, 0.0)
        rates = ratio_or_keep(stats.sum_x + (a - 1.0), stats.counts[:, None] + b, params.rates)
        return PoissonMixtureParams(
            weights_m_step(stats.counts, self.weight_concentration), np.maximum(rates, 0.0)
        )

    def log_prior(self, params: PoissonMixtureParams) -> float:
        """``log p(φ) + log p(λ)``; 0 without priors."""
        total = 0.0
        if self.weight_concentration is not None:
            total += dirichlet_log_density(params.weights, self.weight_concentration)
        if self.gamma_prior is not None:
            a, b = self.gamma_prior
            lam = np.asarray(params.rates, dtype=float)
            total += float(
                np.sum(xlogy(a - 1.0, lam) - b * lam) + lam.size * (a * np.log(b) - gammaln(a))
            )
        return total

    def repair(
        self, params: PoissonMixtureParams, stats: PoissonMixtureStats, rng: np.random.Generator
    ) -> tuple[PoissonMixtureParams, tuple[str, ...]]:
        """Report empty components (the parameters are returned unchanged)."""
        return params, empty_component_messages(stats.counts)

    def sample(
        self, params: PoissonMixtureParams, n: int, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """Draw ``n`` rows; returns ``(x (n, D) integer counts, z (n,))``."""
        z = rng.choice(self.n_components, size=n, p=np.asarray(params.weights))
        return rng.poisson(np.asarray(params.rates)[z]).astype(np.int64), z
