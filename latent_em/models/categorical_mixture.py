"""The categorical mixture: latent class analysis (LCA) with polytomous items.

Item ``j`` takes one of ``C_j`` categories, coded ``0 .. C_j - 1``; given the class,
items are independent (local independence):
``p(x) = Σ_k φ_k Π_j θ^{(j)}_{k, x_j}``.

EM updates (``docs/models/categorical.md``), with ``r_nk`` the responsibilities and
``w_n`` the row weights:

* E-step: ``r_nk ∝ φ_k Π_j θ^{(j)}_{k, x_nj}`` (log space).
* M-step: ``N_k = Σ_n w_n r_nk``, ``S^{(j)}_{kc} = Σ_n w_n r_nk [x_nj = c]``;
  ``φ_k = N_k / N`` and ``θ^{(j)}_{kc} = S^{(j)}_{kc} / N_k`` (one Lagrange multiplier per
  simplex constraint).
* MAP-EM with symmetric Dirichlet priors, α on φ and β on every ``θ^{(j)}_k``:
  ``θ^{(j)}_{kc} = (S^{(j)}_{kc} + β - 1) / (N_k + C_j (β - 1))``.

These are the updates of R's poLCA (Linzer & Lewis 2011) for models without covariates.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from .. import compiled
from .._validation import check_choice, check_int, check_param_shapes
from ..compiled import use_compiled
from ..constraints import Constraint, Simplex
from ._discrete import (
    INIT_METHODS,
    check_concentration,
    dirichlet_log_density,
    empty_component_messages,
    finite_matrix,
    kernel_applies,
    log_weights,
    one_hot,
    ratio_or_keep,
    safe_log,
    smoothed_start,
    table_e_step,
    weights_m_step,
)
from ._mixture import KernelMixture

__all__ = ["CategoricalMixtureModel", "CategoricalMixtureParams", "CategoricalMixtureStats"]


class CategoricalMixtureParams(NamedTuple):
    """Parameters of a categorical mixture.

    Attributes
    ----------
    weights : (K,)
        Class shares φ, summing to one.
    probs : tuple of (K, C_j) arrays
        One table per item j; row k is ``P(x_j = c | z = k)`` over the ``C_j`` categories.
    """

    weights: np.ndarray
    probs: tuple[np.ndarray, ...]


class CategoricalMixtureStats(NamedTuple):
    """Expected sufficient statistics (additive over rows).

    Attributes
    ----------
    counts : (K,)
        ``N_k = Σ_n w_n r_nk``.
    sum_onehot : tuple of (K, C_j) arrays
        ``S^{(j)}_{kc} = Σ_n w_n r_nk [x_nj = c]``.
    """

    counts: np.ndarray
    sum_onehot: tuple[np.ndarray, ...]


@dataclasses.dataclass(frozen=True)
class CategoricalMixtureModel(KernelMixture):
    """Latent class model for items with integer category codes, for the EM driver.

    Parameters
    ----------
    n_components : int
        Number of latent classes K.
    n_categories : sequence of int, optional
        ``C_j`` for every item (each >= 2). By default it is read from the data at
        initialization as ``max code + 1`` per column.
    init_params : {"random", "random_from_data"}, default "random"
        ``"random"``: equal weights and every ``θ^{(j)}_k`` drawn from a flat Dirichlet
        (poLCA's random starting values). ``"random_from_data"``: K distinct response
        patterns as centres, rows assigned to the nearest (fewest disagreements), then
        probabilities from that partition shrunk by one pseudo-row towards the item
        margins.
    weight_concentration : float, optional
        Symmetric Dirichlet(α) prior on the weights (α >= 1); ``None``: no prior.
    dirichlet_prior : float, optional
        Symmetric Dirichlet(β) prior on every class-conditional distribution (β >= 1);
        ``None``: no prior (MLE, as poLCA).
    """

    n_components: int
    n_categories: Sequence[int] | None = None
    init_params: str = "random"
    weight_concentration: float | None = None
    dirichlet_prior: float | None = None

    def __post_init__(self) -> None:
        check_int(self.n_components, "n_components", minimum=1)
        check_choice(self.init_params, "init_params", INIT_METHODS)
        if self.n_categories is not None:
            cats = tuple(int(c) for c in self.n_categories)
            for j, c in enumerate(cats):
                if c < 2:
                    raise ValueError(
                        f"n_categories[{j}] is {c}: every item needs at least 2 categories "
                        f"(column {j} has a single category)"
                    )
            if not cats:
                raise ValueError("n_categories must name at least one item")
            object.__setattr__(self, "n_categories", cats)
        object.__setattr__(
            self,
            "weight_concentration",
            check_concentration(self.weight_concentration, "weight_concentration"),
        )
        object.__setattr__(
            self, "dirichlet_prior", check_concentration(self.dirichlet_prior, "dirichlet_prior")
        )

    # ---- data
    def check_data(self, x: Any) -> np.ndarray:
        """Validate ``x`` as an ``(n, J)`` matrix of integer codes ``0 .. C_j - 1``.

        Raises
        ------
        ValueError
            On NaN, a negative or non-integer code, a code ``>= C_j``, or (when
            ``n_categories`` is not given) a column with a single category.
        """
        arr = finite_matrix(x, "X", 1)
        bad = (arr < 0) | (arr != np.floor(arr))
        if np.any(bad):
            row, col = np.argwhere(bad)[0]
            raise ValueError(
                f"X must hold integer category codes 0, 1, ...: column {col} holds "
                f"{arr[row, col]:g} at row {row}"
            )
        codes = arr.astype(np.intp)
        if self.n_categories is not None:
            if codes.shape[1] != len(self.n_categories):
                raise ValueError(
                    f"X has {codes.shape[1]} columns but n_categories names "
                    f"{len(self.n_categories)} items"
                )
            over = codes >= np.asarray(self.n_categories)[None, :]
            if np.any(over):
                row, col = np.argwhere(over)[0]
                raise ValueError(
                    f"column {col} holds the code {codes[row, col]} at row {row}, but that item "
                    f"has only {self.n_categories[col]} categories (codes 0 .. "
                    f"{self.n_categories[col] - 1})"
                )
        else:
            single = np.flatnonzero(codes.max(axis=0) < 1)
            if single.size:
                raise ValueError(
                    f"column {single[0]} has a single category (every code is 0); an item "
                    "needs at least 2 categories"
                )
        return codes

    def _categories(self, x: np.ndarray) -> tuple[int, ...]:
        if self.n_categories is not None:
            return tuple(self.n_categories)
        return tuple(int(c) + 1 for c in np.asarray(x).max(axis=0))

    # ---- parameters
    @property
    def constraints(self) -> Mapping[str, Constraint]:
        """Weights on the simplex; each item's per-class distribution on its simplex."""
        return {"weights": Simplex(), "probs": Simplex()}

    def n_parameters(self, params: CategoricalMixtureParams) -> int:
        """``K - 1 + K Σ_j (C_j - 1)`` (poLCA's count)."""
        k = len(params.weights)
        return int(k - 1 + k * sum(np.shape(p)[1] - 1 for p in params.probs))

    def initialize(self, x: np.ndarray, rng: np.random.Generator) -> CategoricalMixtureParams:
        """Initial parameters by ``init_params`` (see the class docstring)."""
        codes = np.asarray(x, dtype=np.intp)
        k = self.n_components
        cats = self._categories(codes)
        if self.init_params == "random":
            probs = tuple(rng.dirichlet(np.ones(c), size=k) for c in cats)
            return CategoricalMixtureParams(np.full(k, 1.0 / k), probs)
        onehots = [one_hot(codes[:, j], c) for j, c in enumerate(cats)]
        weights, means = smoothed_start(np.concatenate(onehots, axis=1), k, rng)
        probs = tuple(np.split(means, np.cumsum(cats)[:-1], axis=1))
        # a category never observed would start (and stay) at exactly zero: that is the
        # MLE anyway, but keep starting values interior so all restarts are comparable
        probs = tuple((p + 1e-3) / (1.0 + 1e-3 * p.shape[1]) for p in probs)
        return CategoricalMixtureParams(weights, probs)

    def validate_params(self, params: Any, x: Any) -> None:
        """Parameters passed to ``fit``: a :class:`CategoricalMixtureParams` with one
        ``(K, C_j)`` table per item of ``x``."""
        k = self.n_components
        check_param_shapes(
            type(self).__name__,
            params,
            CategoricalMixtureParams,
            {"weights": (k,), "probs": [(k, c) for c in self._categories(x)]},
        )

    # ---- the contract
    def log_weighted_densities(self, params: CategoricalMixtureParams, x: np.ndarray) -> np.ndarray:
        """``(n, K)`` table of ``log φ_k + Σ_j log θ^{(j)}_{k, x_nj}``.

        Indexing (not multiplying) the log-tables keeps zero probabilities exact:
        ``log 0 = -inf`` enters only for the categories actually observed.
        """
        codes = np.asarray(x, dtype=np.intp)
        if codes.shape[1] != len(params.probs):
            raise ValueError(
                f"X has {codes.shape[1]} columns but the parameters describe "
                f"{len(params.probs)} items"
            )
        table = np.broadcast_to(log_weights(params.weights), (codes.shape[0], len(params.weights)))
        table = table.copy()
        for j, p in enumerate(params.probs):
            if codes.shape[0] and codes[:, j].max() >= np.shape(p)[1]:
                raise ValueError(
                    f"column {j} holds the code {codes[:, j].max()}, but the parameters give "
                    f"that item only {np.shape(p)[1]} categories"
                )
            # np.take would wrap a negative code around to the last categories
            if codes.shape[0] and codes[:, j].min() < 0:
                raise ValueError(
                    f"column {j} holds the code {codes[:, j].min()}: category codes are 0, 1, ..."
                )
            table += np.take(safe_log(np.asarray(p, dtype=float)).T, codes[:, j], axis=0)
        return table

    def expected_stats(
        self,
        params: CategoricalMixtureParams,
        x: np.ndarray,
        posterior: np.ndarray,
        weights: np.ndarray,
    ) -> CategoricalMixtureStats:
        """``N_k`` and the per-item category counts ``S^{(j)}`` of a chunk (additive)."""
        codes = np.asarray(x, dtype=np.intp)
        rw = posterior * weights[:, None]
        sums = []
        for j, p in enumerate(params.probs):
            c = np.shape(p)[1]
            # sum the responsibilities of the rows by observed category (a bincount per
            # class is several times faster than np.add.at or a one-hot product)
            sums.append(
                np.stack(
                    [
                        np.bincount(codes[:, j], weights=rw[:, k], minlength=c)
                        for k in range(rw.shape[1])
                    ]
                )
            )
        return CategoricalMixtureStats(rw.sum(axis=0), tuple(sums))

    def e_step(
        self, params: CategoricalMixtureParams, x: np.ndarray, weights: np.ndarray
    ) -> tuple[CategoricalMixtureStats, np.ndarray]:
        """Fused E-step: the statistics of :meth:`expected_stats` at the exact posterior
        and ``log p(x_n)``.

        From ``N·K ≥ 10⁵`` (rows times components) one compiled pass per block of rows
        (:func:`latent_em.compiled.categorical_e_step`) forms the log-densities (the
        same sums as :meth:`log_weighted_densities`, in the same order), the
        responsibilities and the per-item category counts without materializing the
        ``(n, K)`` posterior; below, the NumPy path (log-densities, posterior,
        ``expected_stats``). A row impossible under every class gets uniform
        responsibilities on both.

        Returns
        -------
        stats : CategoricalMixtureStats
            ``N_k`` and ``S^{(j)}``, equal to those of the NumPy path up to round-off.
        log_marginal : (n,) numpy.ndarray
            ``log p(x_n | params)``.

        Raises
        ------
        ValueError
            If ``x`` does not have one column per item, or holds a code outside
            ``0 .. C_j - 1``.
        """
        codes = np.asarray(x, dtype=np.intp)
        if (
            codes.ndim == 2
            and codes.shape[1] == len(params.probs)
            and use_compiled(codes.shape[0], self.n_components)
            and kernel_applies(self, CategoricalMixtureModel)
        ):
            counts, sums, log_marginal = compiled.categorical_e_step(
                codes, weights, log_weights(params.weights), params.probs, self._threads()
            )
            return CategoricalMixtureStats(counts, sums), log_marginal
        return table_e_step(self, params, codes, weights)

    def m_step(
        self, params: CategoricalMixtureParams, stats: CategoricalMixtureStats
    ) -> CategoricalMixtureParams:
        """Closed-form (MAP) maximizer; an empty class keeps its probabilities."""
        extra = 0.0 if self.dirichlet_prior is None else self.dirichlet_prior - 1.0
        probs = []
        for s, old in zip(stats.sum_onehot, params.probs, strict=True):
            numer = s + extra
            probs.append(ratio_or_keep(numer, numer.sum(axis=1, keepdims=True), old))
        return CategoricalMixtureParams(
            weights_m_step(stats.counts, self.weight_concentration), tuple(probs)
        )

    def log_prior(self, params: CategoricalMixtureParams) -> float:
        """``log p(φ) + Σ_j log p(θ^{(j)})``; 0 without priors."""
        total = 0.0
        if self.weight_concentration is not None:
            total += dirichlet_log_density(params.weights, self.weight_concentration)
        if self.dirichlet_prior is not None:
            total += sum(dirichlet_log_density(p, self.dirichlet_prior) for p in params.probs)
        return total

    def repair(
        self,
        params: CategoricalMixtureParams,
        stats: CategoricalMixtureStats,
        rng: np.random.Generator,
    ) -> tuple[CategoricalMixtureParams, tuple[str, ...]]:
        """Report empty components (the parameters are returned unchanged)."""
        return params, empty_component_messages(stats.counts)

    def sample(
        self, params: CategoricalMixtureParams, n: int, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """Draw ``n`` rows; returns ``(x (n, J) integer codes, z (n,))``."""
        z = rng.choice(self.n_components, size=n, p=np.asarray(params.weights))
        cols = []
        for p in params.probs:
            cdf = np.cumsum(np.asarray(p)[z], axis=1)
            u = rng.random((n, 1))
            cols.append(np.minimum((u > cdf).sum(axis=1), cdf.shape[1] - 1))
        return np.stack(cols, axis=1).astype(np.int64), z
