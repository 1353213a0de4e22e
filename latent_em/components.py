"""Component distributions: the parts that :class:`~latent_em.Mixture`,
:class:`~latent_em.Independent` and :class:`~latent_em.HiddenMarkovModel` are built from.

A component is a family of distributions for a block of ``D`` columns, vectorized over a
*batch* of ``K`` parameter sets (the ``K`` components of a mixture, the ``S`` states of an
HMM). Its parameters are a ``dict`` of arrays whose leading axis is the batch. Each
component states four things, and the compositions derive the whole EM contract from
them:

* ``log_density(params, x)``: the ``(n, K)`` table of ``log p(x_n | θ_k)``;
* ``stats(params, x, resp)``: weighted sufficient statistics, a dict of arrays that add
  over rows (``resp`` is the ``(n, K)`` table of weights ``w_n r_nk``);
* ``mle(stats, old)``: the weighted maximum-likelihood parameters from the statistics;
  closed form where one exists, else a one-dimensional (or two-dimensional) root solve
  of the likelihood equations, which the statistics fully determine; a component with no
  weight keeps its ``old`` parameters;
* ``constraints``: each parameter's domain (:mod:`latent_em.constraints`), which gives
  the free-parameter count, SQUAREM and standard errors.

Univariate families (Bernoulli, Poisson, exponential, gamma, log-normal, von Mises, beta)
treat the ``D`` columns as independent, with one parameter per column; the Gaussian is
multivariate over its columns; the categorical is one categorical variable per column.

Examples
--------
>>> import numpy as np
>>> from latent_em.components import Gamma
>>> x = np.random.default_rng(0).gamma(3.0, 0.5, size=(2000, 1))
>>> g = Gamma()
>>> params = g.mle(g.stats(None, x, np.ones((2000, 1))), None)
>>> bool(abs(params["shape"][0, 0] - 3.0) < 0.3)
True
"""

from __future__ import annotations

import dataclasses
import functools
import math
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from ._lazy import lazy_functions
from ._registry import register_all
from ._validation import check_choice
from .constraints import (
    Constraint,
    Interval,
    Positive,
    PositiveDefinite,
    Real,
    Simplex,
    count_free_parameters,
)
from .models import GaussianMixtureModel, GaussianMixtureParams
from .models._discrete import real_array, safe_log
from .models.poisson_mixture import poisson_log_table

# scipy.special on first use, so that import latent_em stays light
betaln, digamma, gammaln, i0e, i1e, polygamma = lazy_functions(
    "scipy.special", "betaln", "digamma", "gammaln", "i0e", "i1e", "polygamma"
)

__all__ = [
    "Component",
    "Gaussian",
    "Bernoulli",
    "Categorical",
    "Poisson",
    "Exponential",
    "Gamma",
    "LogNormal",
    "VonMises",
    "Beta",
    "StudentT",
    "NegativeBinomial",
    "COVARIANCE_TYPES",
    "as_data_matrix",
]

Params = dict[str, np.ndarray]
Stats = dict[str, Any]

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")
_LOG_2PI = math.log(2.0 * math.pi)


def as_data_matrix(x: Any, name: str = "X") -> np.ndarray:
    """A 2-D float array (a 1-D array is one column)."""
    if isinstance(x, (str, bytes)):
        raise TypeError(f"{name} must be a numeric array; got a string")
    arr = real_array(np.asarray(x), name)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 1-D or 2-D (n_samples, n_features); got {arr.shape}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"{name} is empty: shape {arr.shape}")
    return np.asarray(arr, dtype=float)


def _first_bad(mask: np.ndarray, x: np.ndarray, name: str, what: str, family: str) -> None:
    if np.any(mask):
        row, col = np.argwhere(mask)[0]
        article = "an" if family[:1].lower() in "aeiou" else "a"
        raise ValueError(
            f"{name} must hold {what} for {article} {family} component: column {col} holds "
            f"{float(x[row, col]):g} at row {row}"
        )


def _check_finite(x: np.ndarray, name: str, family: str) -> None:
    _first_bad(~np.isfinite(x), x, name, "finite values (no NaN or infinity)", family)


def _keep(new: np.ndarray, old: np.ndarray | None, live: np.ndarray) -> np.ndarray:
    """``new`` for live batch entries (axis 0), ``old`` elsewhere (an empty component)."""
    if old is None or np.all(live):
        return new
    shape = (-1,) + (1,) * (new.ndim - 1)
    return np.where(live.reshape(shape), new, old)


def _live(counts: np.ndarray) -> np.ndarray:
    total = float(np.sum(counts))
    return counts > 10 * np.finfo(float).eps * max(total, np.finfo(float).tiny)


def _safe_counts(counts: np.ndarray) -> np.ndarray:
    return np.where(_live(counts), counts, 1.0)


def _bisect_decreasing(fn: Any, target: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Solve ``fn(exp(u)) = target`` elementwise for a decreasing ``fn`` by bisection on
    ``u = log θ`` in ``[lo, hi]`` (to the resolution of a double; ~100 halvings)."""
    target = np.asarray(target, dtype=float)
    low = np.full(target.shape, lo)
    high = np.full(target.shape, hi)
    for _ in range(200):
        mid = 0.5 * (low + high)
        above = fn(np.exp(mid)) > target
        low = np.where(above, mid, low)
        high = np.where(above, high, mid)
        if np.all(high - low <= 4 * np.finfo(float).eps * np.maximum(1.0, np.abs(mid))):
            break
    return np.exp(0.5 * (low + high))


class Component(ABC):
    """A family of distributions for a block of columns, batched over ``K`` parameter sets.

    Subclasses are frozen dataclasses; see the module docstring for the four methods.
    A component without closed-form statistics (``closed_form = False``: Student-t,
    negative binomial) states ``log_density``, ``constraints``, ``sample`` and
    ``initialize`` only; a :class:`~latent_em.Mixture` of it then uses the driver's
    numerical M-step (L-BFGS on ``Q`` over the unconstrained parameters).
    """

    #: whether ``stats`` and ``mle`` exist (the closed-form fast path)
    closed_form: bool = True

    @property
    @abstractmethod
    def constraints(self) -> Mapping[str, Constraint]:
        """Domain of every parameter (the batch axis included in the arrays)."""

    #: ``(what the data must hold, family name)`` of the support check in :meth:`check_data`
    #: (cells flagged by :meth:`_outside`); ``None``: every finite value is in the support
    _support: ClassVar[tuple[str, str] | None] = None

    def _outside(self, x: np.ndarray) -> np.ndarray:
        """Mask of the finite cells outside the family's support."""
        return np.zeros(x.shape, dtype=bool)

    def check_data(self, x: Any, name: str = "X") -> np.ndarray:
        """Validate the component's columns; returns a 2-D float array."""
        x = as_data_matrix(x, name)
        _check_finite(x, name, type(self).__name__)
        if self._support is not None:
            _first_bad(self._outside(x), x, name, *self._support)
        return x

    def invalid(self, x: np.ndarray) -> np.ndarray:
        """``(n, D)`` mask of the cells outside the family's support (NaN included)."""
        return ~np.isfinite(x) | self._outside(x)

    @abstractmethod
    def log_density(self, params: Params, x: np.ndarray) -> np.ndarray:
        """``(n, K)`` table of ``log p(x_n | θ_k)``."""

    @abstractmethod
    def stats(self, params: Params | None, x: np.ndarray, resp: np.ndarray) -> Stats:
        """Weighted sufficient statistics (additive over rows) for weights ``resp (n, K)``.

        ``params`` are the current parameters (a reference point for centred moments);
        ``None`` at initialization.
        """

    @abstractmethod
    def mle(self, stats: Stats, old: Params | None) -> Params:
        """Weighted maximum-likelihood parameters; an entry with zero weight keeps ``old``."""

    @abstractmethod
    def sample(self, params: Params, z: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One draw per entry of ``z`` (batch indices): shape ``(len(z), D)``."""

    def initialize(self, x: np.ndarray, resp: np.ndarray, rng: np.random.Generator) -> Params:
        """Parameters from an initial soft partition ``resp (n, K)`` (a weighted MLE)."""
        return self.mle(self.stats(None, x, resp), None)

    def n_free(self, params: Params) -> int:
        """Number of free parameters of the whole batch."""
        return count_free_parameters(params, self.constraints)

    def stats_weight(self, stats: Stats) -> np.ndarray:
        """Total weight of each batch entry, ``(K,)``."""
        return stats["count"]


# ----------------------------------------------------------------------------- Gaussian


@functools.lru_cache(maxsize=64)
def _gaussian_kernels(k: int, covariance_type: str, reg_covar: float) -> Any:
    return GaussianMixtureModel(k, covariance_type=covariance_type, reg_covar=reg_covar)


@dataclasses.dataclass(frozen=True)
class Gaussian(Component):
    """Multivariate normal over the component's ``D`` columns.

    Parameters
    ----------
    covariance_type : {"full", "tied", "diag", "spherical"}, default "full"
        Covariance structure, with the layouts of :class:`~latent_em.GaussianMixtureModel`:
        ``cov`` is ``(K, D, D)`` full, ``(D, D)`` tied (shared by the batch), ``(K, D)``
        diag or ``(K,)`` spherical.
    reg_covar : float, default 1e-6
        Added to the diagonal of every covariance estimate (0 gives the exact MLE).

    Notes
    -----
    Statistics are centred at the current means (``Σ r (x - μ_old)`` and its second
    moments), which keeps them additive and stable far from the origin. MLE:
    ``μ = μ_old + Σ r dx / N``, ``Σ = Σ r dx dxᵀ / N - δ δᵀ + reg·I``.
    """

    covariance_type: str = "full"
    reg_covar: float = 1e-6

    def __post_init__(self) -> None:
        check_choice(self.covariance_type, "covariance_type", COVARIANCE_TYPES)
        if not (np.isfinite(self.reg_covar) and self.reg_covar >= 0):
            raise ValueError(f"reg_covar must be a finite number >= 0; got {self.reg_covar!r}")

    @property
    def constraints(self) -> Mapping[str, Constraint]:
        pd = self.covariance_type in ("full", "tied")
        return {"mean": Real(), "cov": PositiveDefinite() if pd else Positive()}

    def _full_covs(self, params: Params) -> np.ndarray:
        mean = np.asarray(params["mean"], dtype=float)
        k, d = mean.shape
        cov = np.asarray(params["cov"], dtype=float)
        if self.covariance_type == "full":
            return cov
        if self.covariance_type == "tied":
            return np.broadcast_to(cov, (k, d, d))
        if self.covariance_type == "diag":
            return np.stack([np.diag(c) for c in cov])
        return cov[:, None, None] * np.eye(d)[None]

    def _kernels(self, k: int) -> Any:
        """The built-in Gaussian mixture's kernels for a batch of ``k`` (its public
        ``log_weighted_densities`` and ``expected_stats``: blocked, BLAS held at one
        thread, the same statistics as below)."""
        return _gaussian_kernels(k, self.covariance_type, self.reg_covar)

    def log_density(self, params: Params, x: np.ndarray) -> np.ndarray:
        mean = np.asarray(params["mean"], dtype=float)
        k = mean.shape[0]
        theta = GaussianMixtureParams(np.ones(k), mean, np.asarray(params["cov"], dtype=float))
        # log φ_k = log 1 = 0: the table is the log-densities themselves
        return self._kernels(k).log_weighted_densities(theta, x)

    def stats(self, params: Params | None, x: np.ndarray, resp: np.ndarray) -> Stats:
        k, d = resp.shape[1], x.shape[1]
        ref = np.zeros((k, d)) if params is None else np.asarray(params["mean"], dtype=float)
        theta = GaussianMixtureParams(np.ones(k), ref, np.zeros(0))
        out = self._kernels(k).expected_stats(theta, x, resp, np.ones(x.shape[0]))
        # sum_dxdx: (K, D, D) full, (D, D) tied (summed over the batch), (K, D) diag,
        # (K,) spherical, moments about the current means
        return {"count": out.counts, "sum_dx": out.sum_dx, "sum_dxdx": out.sum_dxdx}

    def mle(self, stats: Stats, old: Params | None) -> Params:
        counts = stats["count"]
        k, d = stats["sum_dx"].shape
        live = _live(counts)
        safe = _safe_counts(counts)
        ref = np.zeros((k, d)) if old is None else np.asarray(old["mean"], dtype=float)
        delta = stats["sum_dx"] / safe[:, None]
        mean = ref + np.where(live[:, None], delta, 0.0)
        second = stats["sum_dxdx"]
        reg = self.reg_covar
        if self.covariance_type == "full":
            cov = second / safe[:, None, None] - delta[:, :, None] * delta[:, None, :]
            cov = 0.5 * (cov + np.swapaxes(cov, 1, 2)) + reg * np.eye(d)[None]
        elif self.covariance_type == "tied":
            cov = (second - np.einsum("k,kd,ke->de", counts, delta, delta)) / counts.sum()
            cov = 0.5 * (cov + cov.T) + reg * np.eye(d)
            return {"mean": mean, "cov": cov}
        elif self.covariance_type == "diag":
            cov = second / safe[:, None] - delta**2 + reg
        else:
            cov = (second / safe - np.sum(delta**2, axis=1)) / d + reg
        cov = _keep(cov, None if old is None else np.asarray(old["cov"]), live)
        return {"mean": mean, "cov": cov}

    def sample(self, params: Params, z: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        mean = np.asarray(params["mean"], dtype=float)
        covs = self._full_covs(params)
        out = np.empty((z.shape[0], mean.shape[1]))
        for j in range(mean.shape[0]):
            rows = z == j
            if np.any(rows):
                out[rows] = rng.multivariate_normal(mean[j], covs[j], size=int(rows.sum()))
        return out


# ----------------------------------------------------------------------------- discrete


@dataclasses.dataclass(frozen=True)
class Bernoulli(Component):
    """Independent binary columns, ``p(x_d = 1) = p_kd``; MLE ``p = Σ r x / N``."""

    @property
    def constraints(self) -> Mapping[str, Constraint]:
        return {"p": Interval(0.0, 1.0)}

    _support = ("0/1 values", "Bernoulli")

    def _outside(self, x: np.ndarray) -> np.ndarray:
        return (x != 0) & (x != 1)

    def log_density(self, params: Params, x: np.ndarray) -> np.ndarray:
        p = np.asarray(params["p"], dtype=float)
        log1, log0 = safe_log(p), safe_log(1.0 - p)
        fin1, fin0 = np.isfinite(log1), np.isfinite(log0)
        table = x @ np.where(fin1, log1, 0.0).T + (1.0 - x) @ np.where(fin0, log0, 0.0).T
        impossible = x @ (~fin1).T.astype(float) + (1.0 - x) @ (~fin0).T.astype(float)
        table[impossible > 0] = -np.inf
        return table

    def stats(self, params: Params | None, x: np.ndarray, resp: np.ndarray) -> Stats:
        return {"count": resp.sum(axis=0), "sum_x": resp.T @ x}

    def mle(self, stats: Stats, old: Params | None) -> Params:
        counts = stats["count"]
        p = stats["sum_x"] / _safe_counts(counts)[:, None]
        return {"p": _keep(np.clip(p, 0.0, 1.0), None if old is None else old["p"], _live(counts))}

    def sample(self, params: Params, z: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        p = np.asarray(params["p"], dtype=float)[z]
        return (rng.uniform(size=p.shape) < p).astype(float)


@dataclasses.dataclass(frozen=True)
class Categorical(Component):
    """One categorical variable per column, codes ``0 .. C-1``; MLE: normalized counts.

    Parameters
    ----------
    n_categories : int, optional
        ``C``; by default one more than the largest code in the data at initialization.
        Set it for data read in chunks, whose initialization sees a subsample only.
    """

    n_categories: int | None = None

    def __post_init__(self) -> None:
        if self.n_categories is not None and (
            isinstance(self.n_categories, bool)
            or not isinstance(self.n_categories, (int, np.integer))
            or self.n_categories < 1
        ):
            raise ValueError(f"n_categories must be None or an int >= 1; got {self.n_categories!r}")

    @property
    def constraints(self) -> Mapping[str, Constraint]:
        return {"probs": Simplex()}

    def check_data(self, x: Any, name: str = "X") -> np.ndarray:
        x = super().check_data(x, name)
        _first_bad((x < 0) | (x != np.floor(x)), x, name, "integer codes >= 0", "categorical")
        if self.n_categories is not None:
            c = self.n_categories
            _first_bad(x >= c, x, name, f"codes below n_categories={c}", "categorical")
        return x

    def _outside(self, x: np.ndarray) -> np.ndarray:
        bad = (x < 0) | (x != np.floor(x))
        if self.n_categories is not None:
            bad |= x >= self.n_categories
        return bad

    def _n_categories(self, params: Params | None, x: np.ndarray) -> int:
        if params is not None:
            return int(np.shape(params["probs"])[-1])
        if self.n_categories is not None:
            return self.n_categories
        return int(x.max()) + 1

    def log_density(self, params: Params, x: np.ndarray) -> np.ndarray:
        logp = safe_log(np.asarray(params["probs"], dtype=float))  # (K, D, C)
        codes = x.astype(np.intp)
        out = np.zeros((x.shape[0], logp.shape[0]))
        for d in range(x.shape[1]):
            out += logp[:, d, codes[:, d]].T
        return out

    def stats(self, params: Params | None, x: np.ndarray, resp: np.ndarray) -> Stats:
        c = self._n_categories(params, x)
        codes = x.astype(np.intp)
        table = np.empty((resp.shape[1], x.shape[1], c))
        for d in range(x.shape[1]):
            onehot = np.zeros((x.shape[0], c))
            onehot[np.arange(x.shape[0]), codes[:, d]] = 1.0
            table[:, d] = resp.T @ onehot
        return {"count": resp.sum(axis=0), "counts": table}

    def mle(self, stats: Stats, old: Params | None) -> Params:
        table = stats["counts"]
        totals = table.sum(axis=-1, keepdims=True)
        probs = table / np.where(totals > 0, totals, 1.0)
        if old is not None:
            probs = np.where(totals > 0, probs, old["probs"])
        return {"probs": _keep(probs, None if old is None else old["probs"], _live(stats["count"]))}

    def sample(self, params: Params, z: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        probs = np.asarray(params["probs"], dtype=float)[z]  # (n, D, C)
        cum = np.cumsum(probs, axis=-1)
        u = rng.uniform(size=probs.shape[:-1] + (1,))
        return np.minimum((u > cum).sum(axis=-1), probs.shape[-1] - 1).astype(float)


@dataclasses.dataclass(frozen=True)
class Poisson(Component):
    """Independent Poisson counts per column, rate ``λ_kd``; MLE ``λ = Σ r x / N``."""

    @property
    def constraints(self) -> Mapping[str, Constraint]:
        return {"rate": Positive()}

    _support = ("non-negative integer counts", "Poisson")

    def _outside(self, x: np.ndarray) -> np.ndarray:
        return (x < 0) | (x != np.floor(x))

    def log_density(self, params: Params, x: np.ndarray) -> np.ndarray:
        return poisson_log_table(params["rate"], x)

    def stats(self, params: Params | None, x: np.ndarray, resp: np.ndarray) -> Stats:
        return {"count": resp.sum(axis=0), "sum_x": resp.T @ x}

    def mle(self, stats: Stats, old: Params | None) -> Params:
        counts = stats["count"]
        rate = stats["sum_x"] / _safe_counts(counts)[:, None]
        return {"rate": _keep(rate, None if old is None else old["rate"], _live(counts))}

    def log_density_grad(self, params: Params, x: np.ndarray, resp: np.ndarray) -> Params:
        """``Σ_n r_nk ∂ log p(x_n | θ_k) / ∂θ_k``: ``Σ r x / λ - N``."""
        rate = np.asarray(params["rate"], dtype=float)
        return {"rate": (resp.T @ x) / rate - resp.sum(axis=0)[:, None]}

    def sample(self, params: Params, z: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return rng.poisson(np.asarray(params["rate"], dtype=float)[z]).astype(float)


# ----------------------------------------------------------------------------- positive


@dataclasses.dataclass(frozen=True)
class Exponential(Component):
    """Independent exponential columns, ``λ e^{-λx}``; MLE ``λ = N / Σ r x``."""

    @property
    def constraints(self) -> Mapping[str, Constraint]:
        return {"rate": Positive()}

    _support = ("non-negative values", "exponential")

    def _outside(self, x: np.ndarray) -> np.ndarray:
        return x < 0

    def log_density(self, params: Params, x: np.ndarray) -> np.ndarray:
        rate = np.asarray(params["rate"], dtype=float)
        return np.sum(np.log(rate), axis=1)[None] - x @ rate.T

    def stats(self, params: Params | None, x: np.ndarray, resp: np.ndarray) -> Stats:
        return {"count": resp.sum(axis=0), "sum_x": resp.T @ x}

    def mle(self, stats: Stats, old: Params | None) -> Params:
        counts = stats["count"]
        live = _live(counts)
        sum_x = np.maximum(stats["sum_x"], np.finfo(float).tiny)
        rate = _safe_counts(counts)[:, None] / sum_x
        return {"rate": _keep(rate, None if old is None else old["rate"], live)}

    def log_density_grad(self, params: Params, x: np.ndarray, resp: np.ndarray) -> Params:
        """``Σ_n r_nk ∂ log p(x_n | θ_k) / ∂θ_k``: ``N / λ - Σ r x``."""
        rate = np.asarray(params["rate"], dtype=float)
        return {"rate": resp.sum(axis=0)[:, None] / rate - resp.T @ x}

    def sample(self, params: Params, z: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return rng.exponential(1.0 / np.asarray(params["rate"], dtype=float)[z])


@dataclasses.dataclass(frozen=True)
class Gamma(Component):
    """Independent gamma columns (shape ``α``, rate ``β``).

    Statistics ``N``, ``Σ r x``, ``Σ r log x``. MLE: ``α`` solves
    ``log α - ψ(α) = log x̄ - mean(log x)`` (bisection on ``log α``, monotone), then
    ``β = α / x̄``.
    """

    @property
    def constraints(self) -> Mapping[str, Constraint]:
        return {"shape": Positive(), "rate": Positive()}

    _support = ("positive values", "gamma")

    def _outside(self, x: np.ndarray) -> np.ndarray:
        return x <= 0

    def log_density(self, params: Params, x: np.ndarray) -> np.ndarray:
        a = np.asarray(params["shape"], dtype=float)
        b = np.asarray(params["rate"], dtype=float)
        const = np.sum(a * np.log(b) - gammaln(a), axis=1)
        return const[None] + np.log(x) @ (a - 1.0).T - x @ b.T

    def stats(self, params: Params | None, x: np.ndarray, resp: np.ndarray) -> Stats:
        return {"count": resp.sum(axis=0), "sum_x": resp.T @ x, "sum_log_x": resp.T @ np.log(x)}

    def mle(self, stats: Stats, old: Params | None) -> Params:
        counts = stats["count"]
        safe = _safe_counts(counts)[:, None]
        live = _live(counts)[:, None]
        # an empty component gets a placeholder problem (its old parameters are kept)
        mean = np.where(live, stats["sum_x"] / safe, 1.0)
        mean_log = np.where(live, stats["sum_log_x"] / safe, -1.0)
        # log x̄ - mean(log x) >= 0 by Jensen; 0 only for constant data (α -> ∞)
        target = np.maximum(np.log(mean) - mean_log, 1e-12)
        shape = _bisect_decreasing(lambda a: np.log(a) - digamma(a), target, -30.0, 30.0)
        rate = shape / mean
        live = _live(counts)
        return {
            "shape": _keep(shape, None if old is None else old["shape"], live),
            "rate": _keep(rate, None if old is None else old["rate"], live),
        }

    def log_density_grad(self, params: Params, x: np.ndarray, resp: np.ndarray) -> Params:
        """``Σ_n r_nk ∂ log p / ∂θ``: shape ``N (log β - ψ(α)) + Σ r log x``, rate
        ``N α / β - Σ r x``."""
        a = np.asarray(params["shape"], dtype=float)
        b = np.asarray(params["rate"], dtype=float)
        n = resp.sum(axis=0)[:, None]
        return {
            "shape": n * (np.log(b) - digamma(a)) + resp.T @ np.log(x),
            "rate": n * a / b - resp.T @ x,
        }

    def sample(self, params: Params, z: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        a = np.asarray(params["shape"], dtype=float)[z]
        return rng.gamma(a, 1.0 / np.asarray(params["rate"], dtype=float)[z])


@dataclasses.dataclass(frozen=True)
class LogNormal(Component):
    """Independent log-normal columns: ``log x ~ N(μ, σ²)``; MLE from the moments of
    ``log x``."""

    @property
    def constraints(self) -> Mapping[str, Constraint]:
        return {"mu": Real(), "sigma": Positive()}

    _support = ("positive values", "log-normal")

    def _outside(self, x: np.ndarray) -> np.ndarray:
        return x <= 0

    def log_density(self, params: Params, x: np.ndarray) -> np.ndarray:
        mu = np.asarray(params["mu"], dtype=float)
        var = np.asarray(params["sigma"], dtype=float) ** 2
        y = np.log(x)
        maha = (y**2) @ (1.0 / var).T - 2.0 * y @ (mu / var).T + np.sum(mu**2 / var, axis=1)[None]
        d = x.shape[1]
        return (
            -0.5 * (d * _LOG_2PI + np.sum(np.log(var), axis=1)[None] + maha)
            - np.sum(y, axis=1)[:, None]
        )

    def stats(self, params: Params | None, x: np.ndarray, resp: np.ndarray) -> Stats:
        k = resp.shape[1]
        ref = np.zeros((k, x.shape[1])) if params is None else np.asarray(params["mu"])
        y = np.log(x)
        counts = resp.sum(axis=0)
        s1 = resp.T @ y - counts[:, None] * ref
        s2 = resp.T @ y**2 - 2.0 * ref * (resp.T @ y) + counts[:, None] * ref**2
        return {"count": counts, "sum_dy": s1, "sum_dy2": s2}

    def mle(self, stats: Stats, old: Params | None) -> Params:
        counts = stats["count"]
        safe = _safe_counts(counts)[:, None]
        ref = 0.0 if old is None else np.asarray(old["mu"], dtype=float)
        delta = stats["sum_dy"] / safe
        var = np.maximum(stats["sum_dy2"] / safe - delta**2, 0.0)
        live = _live(counts)
        return {
            "mu": _keep(ref + delta, None if old is None else old["mu"], live),
            "sigma": _keep(np.sqrt(var), None if old is None else old["sigma"], live),
        }

    def sample(self, params: Params, z: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        mu = np.asarray(params["mu"], dtype=float)[z]
        return np.exp(mu + np.asarray(params["sigma"], dtype=float)[z] * rng.normal(size=mu.shape))


# ----------------------------------------------------------------------------- circular, unit


def _bessel_ratio(kappa: np.ndarray) -> np.ndarray:
    """``A(κ) = I₁(κ) / I₀(κ)`` (increasing from 0 to 1)."""
    return i1e(kappa) / i0e(kappa)


@dataclasses.dataclass(frozen=True)
class VonMises(Component):
    """Independent von Mises angles per column (mean direction ``μ``, concentration ``κ``).

    Statistics ``N``, ``Σ r cos x``, ``Σ r sin x``. MLE: ``μ = atan2(S, C)`` and ``κ``
    solves ``I₁(κ)/I₀(κ) = R̄ = √(C² + S²) / N`` (bisection on ``log κ``).
    """

    @property
    def constraints(self) -> Mapping[str, Constraint]:
        return {"mu": Real(), "kappa": Positive()}

    def log_density(self, params: Params, x: np.ndarray) -> np.ndarray:
        mu = np.asarray(params["mu"], dtype=float)
        kappa = np.asarray(params["kappa"], dtype=float)
        # κ cos(x - μ) = κ cos μ cos x + κ sin μ sin x
        table = np.cos(x) @ (kappa * np.cos(mu)).T + np.sin(x) @ (kappa * np.sin(mu)).T
        log_norm = np.sum(_LOG_2PI + np.log(i0e(kappa)) + kappa, axis=1)
        return table - log_norm[None]

    def stats(self, params: Params | None, x: np.ndarray, resp: np.ndarray) -> Stats:
        return {
            "count": resp.sum(axis=0),
            "sum_cos": resp.T @ np.cos(x),
            "sum_sin": resp.T @ np.sin(x),
        }

    def mle(self, stats: Stats, old: Params | None) -> Params:
        counts = stats["count"]
        c, s = stats["sum_cos"], stats["sum_sin"]
        mu = np.arctan2(s, c)
        r_bar = np.clip(np.hypot(c, s) / _safe_counts(counts)[:, None], 1e-12, 1.0 - 1e-12)
        kappa = 1.0 / _bisect_decreasing(lambda t: _bessel_ratio(1.0 / t), r_bar, -40.0, 40.0)
        live = _live(counts)
        return {
            "mu": _keep(mu, None if old is None else old["mu"], live),
            "kappa": _keep(kappa, None if old is None else old["kappa"], live),
        }

    def sample(self, params: Params, z: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        mu = np.asarray(params["mu"], dtype=float)[z]
        return rng.vonmises(mu, np.asarray(params["kappa"], dtype=float)[z])


@dataclasses.dataclass(frozen=True)
class Beta(Component):
    """Independent beta columns on ``(0, 1)`` with shapes ``a``, ``b``.

    Statistics ``N``, ``Σ r log x``, ``Σ r log(1 - x)``. MLE: Newton's method on the
    concave log-likelihood ``log B(a, b)⁻¹ + (a-1) m₁ + (b-1) m₂`` (an exponential family
    in ``(a, b)``), with step halving to stay positive and increase the likelihood.
    """

    @property
    def constraints(self) -> Mapping[str, Constraint]:
        return {"a": Positive(), "b": Positive()}

    _support = ("values in the open interval (0, 1)", "beta")

    def _outside(self, x: np.ndarray) -> np.ndarray:
        return (x <= 0) | (x >= 1)

    def log_density(self, params: Params, x: np.ndarray) -> np.ndarray:
        a = np.asarray(params["a"], dtype=float)
        b = np.asarray(params["b"], dtype=float)
        const = np.sum(gammaln(a + b) - gammaln(a) - gammaln(b), axis=1)
        return const[None] + np.log(x) @ (a - 1.0).T + np.log1p(-x) @ (b - 1.0).T

    def stats(self, params: Params | None, x: np.ndarray, resp: np.ndarray) -> Stats:
        return {
            "count": resp.sum(axis=0),
            "sum_log_x": resp.T @ np.log(x),
            "sum_log_1mx": resp.T @ np.log1p(-x),
        }

    def mle(self, stats: Stats, old: Params | None) -> Params:
        counts = stats["count"]
        safe = _safe_counts(counts)[:, None]
        live = _live(counts)[:, None]
        # an empty component gets a placeholder problem (its old parameters are kept)
        m1 = np.where(live, stats["sum_log_x"] / safe, np.log(0.25))
        m2 = np.where(live, stats["sum_log_1mx"] / safe, np.log(0.25))

        def loglik(a: np.ndarray, b: np.ndarray) -> np.ndarray:
            return gammaln(a + b) - gammaln(a) - gammaln(b) + (a - 1) * m1 + (b - 1) * m2

        # start from the moments implied by the geometric means (then Newton)
        ga, gb = np.exp(m1), np.exp(m2)
        denom = np.maximum(1.0 - ga - gb, 1e-3)
        a = np.maximum(0.5 + 0.5 * ga / denom, 1e-3)
        b = np.maximum(0.5 + 0.5 * gb / denom, 1e-3)
        for _ in range(200):
            tri_ab = polygamma(1, a + b)
            g1 = digamma(a + b) - digamma(a) + m1
            g2 = digamma(a + b) - digamma(b) + m2
            h11 = tri_ab - polygamma(1, a)
            h22 = tri_ab - polygamma(1, b)
            h12 = tri_ab
            det = h11 * h22 - h12**2
            step_a = -(h22 * g1 - h12 * g2) / det
            step_b = -(-h12 * g1 + h11 * g2) / det
            base = loglik(a, b)
            t = np.ones_like(a)
            for _ in range(60):
                na, nb = a + t * step_a, b + t * step_b
                ok = (na > 0) & (nb > 0)
                ok &= np.where(
                    ok, loglik(np.where(ok, na, 1.0), np.where(ok, nb, 1.0)), -np.inf
                ) >= (base - 1e-12 * np.abs(base))
                if np.all(ok):
                    break
                t = np.where(ok, t, 0.5 * t)
            a, b = a + t * step_a, b + t * step_b
            if np.all(np.abs(t * step_a) <= 1e-13 * a) and np.all(np.abs(t * step_b) <= 1e-13 * b):
                break
        live = _live(counts)
        return {
            "a": _keep(a, None if old is None else old["a"], live),
            "b": _keep(b, None if old is None else old["b"], live),
        }

    def sample(self, params: Params, z: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return rng.beta(np.asarray(params["a"], dtype=float)[z], np.asarray(params["b"])[z])


# ----------------------------------------------------------------------------- numerical


def _weighted_moments(x: np.ndarray, resp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per batch entry and column: weighted mean and variance ``(K, D)``."""
    counts = np.maximum(resp.sum(axis=0), np.finfo(float).tiny)[:, None]
    mean = resp.T @ x / counts
    var = np.maximum(resp.T @ x**2 / counts - mean**2, 0.0)
    return mean, var


class _NoClosedForm:
    """``stats`` and ``mle`` of a component fitted by the numerical M-step."""

    closed_form = False

    def stats(self, params: Params | None, x: np.ndarray, resp: np.ndarray) -> Stats:
        raise NotImplementedError(
            f"{type(self).__name__} has no closed-form statistics; a Mixture of it uses the "
            "numerical M-step"
        )

    def mle(self, stats: Stats, old: Params | None) -> Params:
        raise NotImplementedError(
            f"{type(self).__name__} has no closed-form MLE; a Mixture of it uses the "
            "numerical M-step"
        )


@dataclasses.dataclass(frozen=True)
class StudentT(_NoClosedForm, Component):
    """Independent Student-t columns (location ``loc``, scale ``scale``, degrees of
    freedom ``df``).

    No closed-form M-step: a :class:`~latent_em.Mixture` of Student-t components
    maximizes ``Q`` numerically over the three parameters (the scale-mixture EM of
    Peel & McLachlan (2000) is an alternative that is not implemented here). Starts at the
    weighted mean and standard deviation with ``df = 10``.
    """

    @property
    def constraints(self) -> Mapping[str, Constraint]:
        return {"loc": Real(), "scale": Positive(), "df": Positive()}

    def log_density(self, params: Params, x: np.ndarray) -> np.ndarray:
        loc = np.asarray(params["loc"], dtype=float)[None]  # (1, K, D)
        scale = np.asarray(params["scale"], dtype=float)[None]
        df = np.asarray(params["df"], dtype=float)[None]
        y = (x[:, None, :] - loc) / scale
        # lnΓ((ν+1)/2) - lnΓ(ν/2) - ½ log(πν) = -ln B(½, ν/2) - ½ log ν, without the
        # cancellation of two large lnΓ values when ν is large
        terms = (
            -betaln(0.5, 0.5 * df)
            - 0.5 * np.log(df)
            - np.log(scale)
            - 0.5 * (df + 1.0) * np.log1p(y**2 / df)
        )
        return terms.sum(axis=2)

    def log_density_grad(self, params: Params, x: np.ndarray, resp: np.ndarray) -> Params:
        """``Σ_n r_nk ∂ log p(x_n | θ_k) / ∂θ_k`` with ``y = (x - μ)/σ`` and
        ``w = (ν + 1) / (ν + y²)``: ``∂μ = w y / σ``, ``∂σ = (w y² - 1) / σ``,
        ``∂ν = ½ψ((ν+1)/2) - ½ψ(ν/2) - 1/(2ν) - ½ log(1 + y²/ν) + w y² / (2ν)``."""
        loc = np.asarray(params["loc"], dtype=float)[None]
        scale = np.asarray(params["scale"], dtype=float)[None]
        df = np.asarray(params["df"], dtype=float)[None]
        y = (x[:, None, :] - loc) / scale
        w = (df + 1.0) / (df + y**2)
        r = resp[:, :, None]
        d_df = (
            0.5 * digamma(0.5 * (df + 1.0))
            - 0.5 * digamma(0.5 * df)
            - 0.5 / df
            - 0.5 * np.log1p(y**2 / df)
            + 0.5 * w * y**2 / df
        )
        return {
            "loc": np.sum(r * w * y / scale, axis=0),
            "scale": np.sum(r * (w * y**2 - 1.0) / scale, axis=0),
            "df": np.sum(r * d_df, axis=0),
        }

    def initialize(self, x: np.ndarray, resp: np.ndarray, rng: np.random.Generator) -> Params:
        """Robust start: median and scaled MAD of the rows carrying at least half the
        largest weight of each batch entry (moments would be inflated by the heavy tails
        and by the other clusters' share of a soft partition), ``df = 5``."""
        k, d = resp.shape[1], x.shape[1]
        loc, scale = np.empty((k, d)), np.empty((k, d))
        floor = 1e-6 * max(float(np.std(x)), 1e-12)
        for j in range(k):
            rows = x[resp[:, j] >= 0.5 * resp[:, j].max()]
            med = np.median(rows, axis=0)
            loc[j] = med
            scale[j] = np.maximum(1.4826 * np.median(np.abs(rows - med), axis=0), floor)
        return {"loc": loc, "scale": scale, "df": np.full((k, d), 5.0)}

    def sample(self, params: Params, z: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        df = np.asarray(params["df"], dtype=float)[z]
        loc = np.asarray(params["loc"], dtype=float)[z]
        return loc + np.asarray(params["scale"], dtype=float)[z] * rng.standard_t(df)


@dataclasses.dataclass(frozen=True)
class NegativeBinomial(_NoClosedForm, Component):
    """Independent negative binomial counts per column, scipy's parameterization:
    ``p(x) = C(x + r - 1, x) p^r (1 - p)^x`` (``r`` > 0, ``0 < p < 1``; mean
    ``r (1 - p) / p``).

    No closed-form M-step for ``r``: a :class:`~latent_em.Mixture` of it maximizes ``Q``
    numerically. Starts from the weighted moments (``p = m / v``, ``r = m² / (v - m)``
    when over-dispersed, else a nearly Poisson ``r = 100``).
    """

    @property
    def constraints(self) -> Mapping[str, Constraint]:
        return {"r": Positive(), "p": Interval(0.0, 1.0)}

    _support = ("non-negative integer counts", "NegativeBinomial")

    def _outside(self, x: np.ndarray) -> np.ndarray:
        return (x < 0) | (x != np.floor(x))

    def log_density(self, params: Params, x: np.ndarray) -> np.ndarray:
        r = np.asarray(params["r"], dtype=float)[None]  # (1, K, D)
        p = np.asarray(params["p"], dtype=float)[None]
        xx = x[:, None, :]
        terms = gammaln(xx + r) - gammaln(r) - gammaln(xx + 1.0) + r * np.log(p) + xx * np.log1p(-p)
        return terms.sum(axis=2)

    def log_density_grad(self, params: Params, x: np.ndarray, resp: np.ndarray) -> Params:
        """``Σ_n r_nk ∂ log p / ∂θ``: ``∂r = ψ(x + r) - ψ(r) + log p``,
        ``∂p = r / p - x / (1 - p)``."""
        r = np.asarray(params["r"], dtype=float)
        p = np.asarray(params["p"], dtype=float)
        n = resp.sum(axis=0)[:, None]
        d_r = np.einsum("nk,nkd->kd", resp, digamma(x[:, None, :] + r[None])) + n * (
            np.log(p) - digamma(r)
        )
        return {"r": d_r, "p": n * r / p - (resp.T @ x) / (1.0 - p)}

    def initialize(self, x: np.ndarray, resp: np.ndarray, rng: np.random.Generator) -> Params:
        mean, var = _weighted_moments(x, resp)
        mean = np.maximum(mean, 1e-3)
        over = var > mean * 1.01
        r = np.where(over, mean**2 / np.where(over, var - mean, 1.0), 100.0)
        return {"r": r, "p": r / (r + mean)}

    def sample(self, params: Params, z: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        r = np.asarray(params["r"], dtype=float)[z]
        return rng.negative_binomial(r, np.asarray(params["p"], dtype=float)[z]).astype(float)


# the classes latent_em.io may save and load
register_all(globals(), __all__, "builtin")
