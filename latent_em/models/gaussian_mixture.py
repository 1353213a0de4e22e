"""The Gaussian mixture model ``p(x) = Σ_k φ_k N(x; μ_k, Σ_k)``.

EM updates (see ``docs/theory.md``), with ``r_nk`` the responsibilities and ``w_n`` the
row weights:

* E-step: ``r_nk = φ_k N(x_n; μ_k, Σ_k) / Σ_j φ_j N(x_n; μ_j, Σ_j)`` (log space).
* M-step: ``N_k = Σ_n w_n r_nk``; ``φ_k = N_k / Σ_j N_j`` (Lagrange multiplier);
  ``μ_k = Σ_n w_n r_nk x_n / N_k``;
  ``Σ_k = Σ_n w_n r_nk (x_n - μ_k)(x_n - μ_k)ᵀ / N_k + reg_covar·I``.

The statistics are centred at the *current* means (``sum_dx = Σ w r (x - μ_old)``), which
keeps them additive over chunks (the current means are fixed during an E-step) and
numerically stable for data far from the origin.

The covariance structure is a small strategy object per type (full, tied, diag,
spherical); shared code never branches on the ``covariance_type`` string.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import threading
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple

import numpy as np
from scipy import linalg

from .. import compiled
from .._validation import as_float_matrix, check_choice, check_int, check_positive_float
from ..constraints import Constraint, Positive, PositiveDefinite, Real, Simplex
from ._kmeans import kmeans_plusplus, lloyd
from ._mixture import FiniteMixture

__all__ = [
    "GaussianMixtureModel",
    "GaussianMixtureParams",
    "GaussianMixtureStats",
    "COVARIANCE_TYPES",
    "INIT_METHODS",
]

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")
INIT_METHODS = ("kmeans", "k-means++", "random", "random_from_data")
_LOG_2PI = math.log(2.0 * math.pi)


class GaussianMixtureParams(NamedTuple):
    """Parameters of a Gaussian mixture.

    Attributes
    ----------
    weights : (K,)
        Mixing proportions φ, summing to one.
    means : (K, D)
        Component means μ.
    covariances : array
        ``(K, D, D)`` full, ``(D, D)`` tied, ``(K, D)`` diag or ``(K,)`` spherical.
    """

    weights: np.ndarray
    means: np.ndarray
    covariances: np.ndarray


class GaussianMixtureStats(NamedTuple):
    """Expected sufficient statistics, centred at the current means ``μ_old``.

    Attributes
    ----------
    counts : (K,)
        ``N_k = Σ_n w_n r_nk``.
    sum_dx : (K, D)
        ``Σ_n w_n r_nk (x_n - μ_old_k)``.
    sum_dxdx : array
        Second moments of ``x_n - μ_old_k`` in the shape the covariance type needs:
        ``(K, D, D)`` full, ``(D, D)`` tied (summed over k), ``(K, D)`` diag,
        ``(K,)`` spherical (squared norms).
    """

    counts: np.ndarray
    sum_dx: np.ndarray
    sum_dxdx: np.ndarray


# --------------------------------------------------------------------- covariance types


class _Covariance:
    """Strategy for one covariance structure (scikit-learn's conventions for shapes)."""

    name: str
    constraint: Constraint

    def shape(self, k: int, d: int) -> tuple[int, ...]:
        raise NotImplementedError

    def n_parameters(self, k: int, d: int) -> int:
        raise NotImplementedError

    def precisions_cholesky(self, cov: np.ndarray) -> np.ndarray:
        """Cholesky factor of the precision (raises ``LinAlgError`` if not PD)."""
        raise NotImplementedError

    def log_det_precisions_cholesky(self, prec_chol: np.ndarray, d: int) -> np.ndarray:
        raise NotImplementedError

    def squared_mahalanobis(
        self, x: np.ndarray, means: np.ndarray, prec_chol: np.ndarray
    ) -> np.ndarray:
        raise NotImplementedError

    def second_moments(self, x: np.ndarray, means: np.ndarray, rw: np.ndarray) -> tuple:
        """``(sum_dx, sum_dxdx)`` for one chunk."""
        raise NotImplementedError

    def estimate(
        self, counts: np.ndarray, delta: np.ndarray, second: np.ndarray, reg: float
    ) -> np.ndarray:
        """Covariances from statistics; ``delta = μ_new - μ_old``."""
        raise NotImplementedError

    def to_full(self, cov: np.ndarray, k: int, d: int) -> np.ndarray:
        raise NotImplementedError

    def check_pd(self, cov: np.ndarray) -> list[int]:
        """Indices of components whose covariance is not positive definite."""
        raise NotImplementedError

    def jitter(self, cov: np.ndarray, bad: list[int]) -> np.ndarray:
        raise NotImplementedError

    def min_variance(self, cov: np.ndarray, k: int) -> np.ndarray:
        """Smallest eigenvalue of each component's covariance, shape ``(K,)``."""
        raise NotImplementedError

    def kernel(
        self, means: np.ndarray, prec_chol: np.ndarray, const: np.ndarray, centre: np.ndarray
    ) -> _ExpandedKernel:
        """The block kernel of the fused E-step at these parameters."""
        return _KERNELS[self.name](means, prec_chol, const, centre)


def _chol_lower(mat: np.ndarray) -> np.ndarray:
    return linalg.cholesky(mat, lower=True, check_finite=False)


def _is_pd(mat: np.ndarray) -> bool:
    if not np.all(np.isfinite(mat)):
        return False
    try:
        _chol_lower(mat)
    except (linalg.LinAlgError, ValueError):
        return False
    return True


def _jitter_matrix(mat: np.ndarray) -> np.ndarray:
    mat = 0.5 * (mat + mat.T)
    d = mat.shape[0]
    scale = max(float(np.max(np.abs(np.diag(mat)))), np.finfo(float).tiny)
    eye = np.eye(d)
    for power in range(-14, 1):
        candidate = mat + (10.0**power) * scale * eye
        if _is_pd(candidate):
            return candidate
    return scale * eye


class _Full(_Covariance):
    name = "full"
    constraint = PositiveDefinite()

    def shape(self, k: int, d: int) -> tuple[int, ...]:
        return (k, d, d)

    def n_parameters(self, k: int, d: int) -> int:
        return k * d * (d + 1) // 2

    def precisions_cholesky(self, cov: np.ndarray) -> np.ndarray:
        d = cov.shape[-1]
        out = np.empty_like(cov)
        eye = np.eye(d)
        for k, c in enumerate(cov):
            chol = _chol_lower(c)
            out[k] = linalg.solve_triangular(chol, eye, lower=True, check_finite=False).T
        return out

    def log_det_precisions_cholesky(self, prec_chol: np.ndarray, d: int) -> np.ndarray:
        return np.sum(np.log(np.diagonal(prec_chol, axis1=1, axis2=2)), axis=1)

    def squared_mahalanobis(
        self, x: np.ndarray, means: np.ndarray, prec_chol: np.ndarray
    ) -> np.ndarray:
        k, d = means.shape
        # whiten all components with one matrix product: x @ [P_1 ... P_K]
        stacked = np.transpose(prec_chol, (1, 0, 2)).reshape(d, k * d)
        offsets = np.einsum("kd,kde->ke", means, prec_chol)
        y = (x @ stacked).reshape(x.shape[0], k, d)
        y -= offsets[None, :, :]
        return np.einsum("nkd,nkd->nk", y, y)

    def second_moments(self, x: np.ndarray, means: np.ndarray, rw: np.ndarray) -> tuple:
        k, d = means.shape
        sum_dx = np.empty((k, d))
        sum_dxdx = np.empty((k, d, d))
        for j in range(k):
            diff = x - means[j]
            weighted = diff * rw[:, j, None]
            sum_dx[j] = weighted.sum(axis=0)
            sum_dxdx[j] = weighted.T @ diff
        return sum_dx, sum_dxdx

    def estimate(
        self, counts: np.ndarray, delta: np.ndarray, second: np.ndarray, reg: float
    ) -> np.ndarray:
        d = delta.shape[1]
        cov = second / counts[:, None, None] - np.einsum("kd,ke->kde", delta, delta)
        cov = 0.5 * (cov + np.transpose(cov, (0, 2, 1)))
        cov += reg * np.eye(d)[None]
        return cov

    def to_full(self, cov: np.ndarray, k: int, d: int) -> np.ndarray:
        return cov

    def check_pd(self, cov: np.ndarray) -> list[int]:
        return [k for k, c in enumerate(cov) if not _is_pd(c)]

    def jitter(self, cov: np.ndarray, bad: list[int]) -> np.ndarray:
        cov = cov.copy()
        for k in bad:
            cov[k] = _jitter_matrix(cov[k])
        return cov

    def min_variance(self, cov: np.ndarray, k: int) -> np.ndarray:
        return np.array([np.linalg.eigvalsh(c)[0] for c in cov])


class _Tied(_Covariance):
    name = "tied"
    constraint = PositiveDefinite()

    def shape(self, k: int, d: int) -> tuple[int, ...]:
        return (d, d)

    def n_parameters(self, k: int, d: int) -> int:
        return d * (d + 1) // 2

    def precisions_cholesky(self, cov: np.ndarray) -> np.ndarray:
        chol = _chol_lower(cov)
        return linalg.solve_triangular(chol, np.eye(cov.shape[0]), lower=True).T

    def log_det_precisions_cholesky(self, prec_chol: np.ndarray, d: int) -> np.ndarray:
        return np.sum(np.log(np.diag(prec_chol)))

    def squared_mahalanobis(
        self, x: np.ndarray, means: np.ndarray, prec_chol: np.ndarray
    ) -> np.ndarray:
        y = x @ prec_chol
        m = means @ prec_chol
        out = np.empty((x.shape[0], means.shape[0]))
        for j in range(means.shape[0]):
            diff = y - m[j]
            out[:, j] = np.einsum("nd,nd->n", diff, diff)
        return out

    def second_moments(self, x: np.ndarray, means: np.ndarray, rw: np.ndarray) -> tuple:
        k, d = means.shape
        sum_dx = np.empty((k, d))
        sum_dxdx = np.zeros((d, d))
        for j in range(k):
            diff = x - means[j]
            weighted = diff * rw[:, j, None]
            sum_dx[j] = weighted.sum(axis=0)
            sum_dxdx += weighted.T @ diff
        return sum_dx, sum_dxdx

    def estimate(
        self, counts: np.ndarray, delta: np.ndarray, second: np.ndarray, reg: float
    ) -> np.ndarray:
        cov = (second - np.einsum("k,kd,ke->de", counts, delta, delta)) / counts.sum()
        cov = 0.5 * (cov + cov.T)
        cov += reg * np.eye(cov.shape[0])
        return cov

    def to_full(self, cov: np.ndarray, k: int, d: int) -> np.ndarray:
        return np.broadcast_to(cov, (k, d, d)).copy()

    def check_pd(self, cov: np.ndarray) -> list[int]:
        return [] if _is_pd(cov) else [0]

    def jitter(self, cov: np.ndarray, bad: list[int]) -> np.ndarray:
        return _jitter_matrix(cov) if bad else cov

    def min_variance(self, cov: np.ndarray, k: int) -> np.ndarray:
        return np.full(k, np.linalg.eigvalsh(cov)[0])


class _Diag(_Covariance):
    name = "diag"
    constraint = Positive()

    def shape(self, k: int, d: int) -> tuple[int, ...]:
        return (k, d)

    def n_parameters(self, k: int, d: int) -> int:
        return k * d

    def precisions_cholesky(self, cov: np.ndarray) -> np.ndarray:
        if np.any(~np.isfinite(cov)) or np.any(cov <= 0):
            raise linalg.LinAlgError("non-positive variance")
        return 1.0 / np.sqrt(cov)

    def log_det_precisions_cholesky(self, prec_chol: np.ndarray, d: int) -> np.ndarray:
        return np.sum(np.log(prec_chol), axis=1)

    def squared_mahalanobis(
        self, x: np.ndarray, means: np.ndarray, prec_chol: np.ndarray
    ) -> np.ndarray:
        prec = prec_chol**2
        out = (x * x) @ prec.T
        out -= 2.0 * (x @ (means * prec).T)
        out += np.sum(means * means * prec, axis=1)[None, :]
        return np.maximum(out, 0.0)

    def second_moments(self, x: np.ndarray, means: np.ndarray, rw: np.ndarray) -> tuple:
        k, d = means.shape
        sum_dx = np.empty((k, d))
        sum_dxdx = np.empty((k, d))
        for j in range(k):
            diff = x - means[j]
            sum_dx[j] = rw[:, j] @ diff
            sum_dxdx[j] = rw[:, j] @ (diff * diff)
        return sum_dx, sum_dxdx

    def estimate(
        self, counts: np.ndarray, delta: np.ndarray, second: np.ndarray, reg: float
    ) -> np.ndarray:
        return second / counts[:, None] - delta * delta + reg

    def to_full(self, cov: np.ndarray, k: int, d: int) -> np.ndarray:
        return np.stack([np.diag(c) for c in cov])

    def check_pd(self, cov: np.ndarray) -> list[int]:
        return [k for k, c in enumerate(cov) if not (np.all(np.isfinite(c)) and np.all(c > 0))]

    def jitter(self, cov: np.ndarray, bad: list[int]) -> np.ndarray:
        cov = cov.copy()
        for k in bad:
            scale = max(float(np.max(np.abs(cov[k]))), np.finfo(float).tiny)
            cov[k] = np.maximum(cov[k], 1e-10 * scale)
        return cov

    def min_variance(self, cov: np.ndarray, k: int) -> np.ndarray:
        return cov.min(axis=1)


class _Spherical(_Covariance):
    name = "spherical"
    constraint = Positive()

    def shape(self, k: int, d: int) -> tuple[int, ...]:
        return (k,)

    def n_parameters(self, k: int, d: int) -> int:
        return k

    def precisions_cholesky(self, cov: np.ndarray) -> np.ndarray:
        if np.any(~np.isfinite(cov)) or np.any(cov <= 0):
            raise linalg.LinAlgError("non-positive variance")
        return 1.0 / np.sqrt(cov)

    def log_det_precisions_cholesky(self, prec_chol: np.ndarray, d: int) -> np.ndarray:
        return d * np.log(prec_chol)

    def squared_mahalanobis(
        self, x: np.ndarray, means: np.ndarray, prec_chol: np.ndarray
    ) -> np.ndarray:
        prec = prec_chol**2
        out = np.einsum("nd,nd->n", x, x)[:, None] - 2.0 * (x @ means.T)
        out += np.einsum("kd,kd->k", means, means)[None, :]
        return np.maximum(out, 0.0) * prec[None, :]

    def second_moments(self, x: np.ndarray, means: np.ndarray, rw: np.ndarray) -> tuple:
        k, d = means.shape
        sum_dx = np.empty((k, d))
        sum_dxdx = np.empty(k)
        for j in range(k):
            diff = x - means[j]
            sum_dx[j] = rw[:, j] @ diff
            sum_dxdx[j] = rw[:, j] @ np.einsum("nd,nd->n", diff, diff)
        return sum_dx, sum_dxdx

    def estimate(
        self, counts: np.ndarray, delta: np.ndarray, second: np.ndarray, reg: float
    ) -> np.ndarray:
        d = delta.shape[1]
        return (second / counts - np.sum(delta * delta, axis=1)) / d + reg

    def to_full(self, cov: np.ndarray, k: int, d: int) -> np.ndarray:
        return cov[:, None, None] * np.eye(d)[None]

    def check_pd(self, cov: np.ndarray) -> list[int]:
        return [k for k, c in enumerate(cov) if not (np.isfinite(c) and c > 0)]

    def jitter(self, cov: np.ndarray, bad: list[int]) -> np.ndarray:
        cov = cov.copy()
        scale = max(float(np.max(np.abs(cov))), np.finfo(float).tiny)
        cov[bad] = 1e-10 * scale
        return cov

    def min_variance(self, cov: np.ndarray, k: int) -> np.ndarray:
        return cov.copy()


# ------------------------------------------------------------------ E-step kernels
#
# One kernel per covariance structure evaluates ``log φ_k + log N(x_n; μ_k, Σ_k)`` for a
# block of rows and accumulates the statistics of that block from the intermediates it
# already holds, so the fused E-step (:meth:`GaussianMixtureModel.e_step`) touches every
# row once. Every kernel writes the block once as the rows of ``Z = [u; 1; features]``
# (``u = x - c``, centred at the mixture mean ``c``), the quadratic forms being linear
# in those rows; then a block costs two matrix products of BLAS-3 shape,
# ``(K, P) @ (P, B)`` for the densities and ``(K, B) @ (B, P)`` for every statistic,
# and one normalization pass (``_log_normalize``). Blocks are sized for cache
# (``_KERNEL_ELEMENTS`` elements in the widest per-block buffer); the buffers are
# allocated once per pass and reused for every block. Expanded forms cancel for data
# far from ``c`` in units of a component's standard deviation: an a-priori error bound
# per block and component sends such components to a direct evaluation
# (``_ExpandedKernel``). All kernels compute in float64, whatever the data's dtype, and
# convert the statistics to moments about ``μ_old`` in float64.

#: elements of the widest per-block buffer (1713 rows x 153 for D = 16): measured on a
#: 2-core AMD EPYC (Zen 3) for K = D = 16, full covariance, float64, one thread, the
#: E-step over 200 000 rows took 0.27 s with 214-row blocks, 0.17 s with 856, 0.15 s
#: with 1713 and 0.16 s with 3426 (per-call overheads against cache misses)
_KERNEL_ELEMENTS = 1 << 18


#: ``N·K`` from which :meth:`GaussianMixtureModel.e_step` runs the compiled (Numba) kernel
#: of :mod:`latent_em.compiled.gaussian`; below, the NumPy kernels here (nothing compiles)
COMPILED_MIN_SIZE = 100_000

#: a thread gets at least this many blocks, or the threads' start-up is not worth it
_MIN_BLOCKS_PER_THREAD = 4
_BLAS_LOCK = threading.Lock()
#: the threadpoolctl controller, the active limiter, and how many callers are inside it
_BLAS_STATE: dict[str, Any] = {"controller": None, "limiter": None, "depth": 0}


@contextlib.contextmanager
def _single_threaded_blas() -> Iterator[bool]:
    """Limit BLAS to one thread while the kernels run; yields whether that worked.

    The per-block products are small (a few hundred kFLOP): a multi-threaded BLAS spends
    more time waking and synchronizing its threads than computing, which is catastrophic
    on a busy machine (measured: 10-20x slower on 2 shared cores). Parallelism comes
    from running blocks in our own threads instead. The limit is process-wide, so it is
    reference-counted: set by the first caller (of possibly many threads, e.g. a Dask
    threaded scheduler) and lifted by the last.
    """
    with _BLAS_LOCK:
        if _BLAS_STATE["controller"] is None:
            try:
                from threadpoolctl import ThreadpoolController
            except ImportError:
                _BLAS_STATE["controller"] = False
            else:
                _BLAS_STATE["controller"] = ThreadpoolController()
        controller = _BLAS_STATE["controller"]
        if controller:
            if _BLAS_STATE["depth"] == 0:
                _BLAS_STATE["limiter"] = controller.limit(limits=1, user_api="blas")
            _BLAS_STATE["depth"] += 1
    if not controller:
        yield False
        return
    try:
        yield True
    finally:
        with _BLAS_LOCK:
            _BLAS_STATE["depth"] -= 1
            if _BLAS_STATE["depth"] == 0:
                _BLAS_STATE["limiter"].restore_original_limits()
                _BLAS_STATE["limiter"] = None


def _run_blocks(
    kernel: _ExpandedKernel, x: np.ndarray, w: np.ndarray, log_marginal: np.ndarray, starts: Any
) -> None:
    n, rows = x.shape[0], kernel.rows
    for start in starts:
        stop = min(n, int(start) + rows)
        table = kernel.table(x[start:stop])
        log_marginal[start:stop] = _log_normalize(table, w[start:stop])
        kernel.accumulate(table)


def _block_rows(width: int) -> int:
    return max(64, _KERNEL_ELEMENTS // max(1, width))


#: log-ratios are raised to this before ``exp`` (see ``_log_normalize``): far from the
#: subnormal range, and, in float64, above -512, below which glibc's ``exp`` takes a
#: slow special-case path (13.4 ns instead of 9 ns per entry, measured)
_SUBNORMAL_CUTOFF = {
    np.dtype(np.float32).char: 0.8 * math.log(np.finfo(np.float32).tiny),
    np.dtype(np.float64).char: -500.0,
}


def _log_normalize(table: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Turn a ``(K, B)`` table of log weights into (weighted) responsibilities *in place*.

    Returns the log-sum-exp over components, shape ``(B,)``, in the table's dtype, and
    leaves ``table[k, n] = w_n r_nk`` (``w_n = 1`` without ``weights``): normalization
    and row weights are one scaling pass. A row that is ``-inf`` everywhere gets ``-inf``
    (the driver reports it) and NaN responsibilities; a NaN or ``+inf`` row keeps that
    value. The ``(K, B)`` layout makes every reduction over components an elementwise
    operation on contiguous rows of length B, which NumPy vectorizes.

    ``exp`` is most of the cost: about 10 ns per entry in float64 on a CPU without
    AVX-512, where NumPy's ``exp`` is scalar. Where at most a quarter of a block's
    entries are within ``log(ε / 2K)`` of their row's largest (well-separated
    components, the usual case after a few iterations), only those are exponentiated
    and the others are set to zero. Those responsibilities are below ``ε / 2K`` of the
    row's largest (which is one), so their sum cannot change the row's total in
    floating point: ``log p(x_n)`` is unchanged, and a component's statistics lose
    less than ``ε/2`` relative per row, far below the driver's tolerance.
    """
    top = table.max(axis=0)
    bad = ~np.isfinite(top)
    worst = top[bad]  # -inf (an impossible row), or NaN / +inf, passed on as they are
    if worst.size:
        top[bad] = 0.0
    table -= top
    live = np.greater_equal(table, math.log(np.finfo(table.dtype).eps / (2 * table.shape[0])))
    if np.count_nonzero(live) <= table.size // 4:
        np.exp(table, out=table, where=live)
        np.putmask(table, ~live, 0.0)
    else:
        # Log-ratios below -500 (in float64) are raised to it: those responsibilities
        # (below 1e-217 of the row's largest, which is one) become 7e-218 instead of
        # subnormal numbers, which make every later product ~10x slower (measured on
        # AMD Zen 3). Rows that are not finite are restored below.
        np.maximum(table, _SUBNORMAL_CUTOFF[table.dtype.char], out=table)
        np.exp(table, out=table)
    total = table.sum(axis=0)
    if worst.size:
        total[bad] = 1.0
    scale = np.reciprocal(total) if weights is None else weights / total
    if worst.size:
        scale[bad] = np.nan
    table *= scale
    log_total = np.log(total, out=total)
    log_total += top
    if worst.size:
        log_total[bad] = worst
    return log_total


#: Budget for the rounding error of an expanded quadratic form, in units of the squared
#: Mahalanobis distance (see ``_ExpandedKernel``).
_ERROR_BUDGET = 1e-10
_EPS = float(np.finfo(np.float64).eps)


def _largest_norm2(u: np.ndarray) -> float:
    """The largest squared norm of the columns of ``u`` (``(D, B)``), 0 if none."""
    return float(np.einsum("dn,dn->n", u, u).max()) if u.shape[1] else 0.0


class _ExpandedKernel:
    """Block kernel of one covariance structure at fixed parameters: expanded quadratic
    forms as matrix products.

    ``table(xb)`` returns the ``(K, B)`` log-weighted densities of a block (components
    along axis 0) and keeps the intermediates; ``accumulate(rw)`` then adds that block's
    statistics, given its ``(K, B)`` weighted responsibilities ``rw[k, n] = w_n r_nk``
    (which it may overwrite); ``finish()`` returns ``(counts, sum_dx, sum_dxdx)`` in
    float64, moments about the current means.

    Each block is written once into the rows of a ``(D + 1 + q, B)`` buffer
    ``Z = [u; 1; features]``, ``u = x - c``: the ``u_i u_j`` (``i ≤ j``) for full, the
    squared coordinates for diag (``q = D``), the squared norm for spherical and the
    squared norm of the whitened row for tied (``q = 1``). One product ``C @ Z`` gives
    all log-weighted densities (``C`` holds the linear and quadratic coefficients and
    the constants) and one product ``R @ Zᵀ`` every count, first moment and (full,
    diagonal or spherical) second moment about ``c``, converted to moments about
    ``μ_old`` in float64 by ``finish``; tied adds ``Σ_n w_n u uᵀ``, one
    ``(D, B) @ (B, D)`` product.

    Accuracy. An expanded form cancels: its rounding error is about ``ε·S_k``, where
    ``S_k`` (``_bound``) grows with the squared distance of the block's rows and of
    ``μ_k`` from ``c``, measured in component k's narrowest standard deviation. So in
    each block, every component whose bound ``4ε·S_k`` exceeds ``_ERROR_BUDGET``
    (``1e-10``, in units of the squared Mahalanobis distance) is evaluated directly from
    ``x - μ_k``, with its statistics accumulated about ``μ_old``: the fast path is taken
    only where it is as accurate as the driver's float64 tolerance needs. Typical data
    (within a few hundred narrowest standard deviations of their mean) never leave it;
    a nearly singular component, or data with an enormous range, fall back, correctly
    and more slowly, for that component only.

    These kernels always work in float64 (in float32 the cancellation would cost about
    ``1e-5`` relative per row, enough to break monotonicity); float32 data still halve
    the memory and the reads.
    """

    def __init__(
        self, means: np.ndarray, prec_chol: np.ndarray, const: np.ndarray, centre: np.ndarray
    ) -> None:
        k, d = means.shape
        self.k, self.d = k, d
        self.means = means
        self.delta = means - centre  # μ_old - c
        self.centre = centre[:, None].astype(np.float64)
        self.const = const
        lin, offset, quad = self._coefficients(prec_chol)
        self.coef = np.concatenate([lin, (const + offset)[:, None], quad], axis=1)
        width = self.coef.shape[1]
        self.rows = _block_rows(max(width, k))
        self._z = self._new_z(self.rows)
        self._zb = self._z
        #: (components, rows, (x - μ)ᵀ) of the last block's direct evaluations
        self._direct_parts: list[tuple[np.ndarray, Any, np.ndarray]] = []
        self.gram = np.zeros((k, width))
        self.direct_counts = np.zeros(k)
        self.direct_first = np.zeros((k, d))
        self.direct_second = np.zeros(self._second_shape())

    # -- per structure
    def _coefficients(self, prec_chol: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Coefficients of ``-½ (x - μ_k)ᵀ Λ_k (x - μ_k)`` on ``u``, on 1 and on the features."""
        raise NotImplementedError

    def _features(self, u: np.ndarray, out: np.ndarray) -> None:
        raise NotImplementedError

    def _bound(self, u: np.ndarray) -> np.ndarray:
        """``S_k`` for the block ``u`` (``(D, B)``): a bound on the sum of the absolute
        values of the expanded form's terms."""
        raise NotImplementedError

    def _direct(self, diffs: np.ndarray, comps: np.ndarray) -> np.ndarray:
        """``-½`` times the squared Mahalanobis distances of ``diffs[j] = (x - μ_k)ᵀ``,
        ``k = comps[j]``: ``(J, D, B)`` in, ``(J, B)`` out."""
        raise NotImplementedError

    def _second_shape(self) -> tuple[int, ...]:
        raise NotImplementedError

    def _add_direct_second(self, diffs: np.ndarray, r: np.ndarray, comps: np.ndarray) -> None:
        """Add the second moments of ``diffs`` (``(J, D, B)``) weighted by ``r``
        (``(J, B)``) to ``direct_second`` of ``comps``."""
        raise NotImplementedError

    def _second(self, counts: np.ndarray, first: np.ndarray, tail: np.ndarray) -> np.ndarray:
        """Second moments about ``μ_old`` from the expanded moments about ``c``."""
        raise NotImplementedError

    def _add_row_moments(self, u: np.ndarray, row_weights: np.ndarray) -> None:
        """Statistics that need each row's total weight (tied), none by default."""

    # -- shared
    def _new_z(self, b: int) -> np.ndarray:
        z = np.empty((self.coef.shape[1], b))
        z[self.d] = 1.0
        return z

    def table(self, xb: np.ndarray) -> np.ndarray:
        b, d = xb.shape[0], self.d
        z = self._z if b == self.rows else self._new_z(b)
        self._zb = z
        u = z[:d]
        u[...] = xb.T  # a plain (cast) copy, then an unmixed subtraction: both fast
        u -= self.centre
        self._features(u, z[d + 1 :])
        error = 4.0 * _EPS * self._bound(u)  # in the squared distance, (K,)
        out = self.coef @ z
        self._direct_parts = []
        if np.all(error <= _ERROR_BUDGET):
            return out
        # Components over budget are evaluated directly, from (x - μ_k)ᵀ: the means are
        # subtracted from the data as they are, not from x - c, so nothing cancels.
        # Where the bound on the log-density error (half the above) is at most one, only
        # the rows where the component can matter are: within log(2K/ε) of their row's
        # largest log-density, widened by twice the largest error, since rows further
        # down have responsibilities below ε/2K whatever the error (see
        # ``_log_normalize``). A collapsed component is relevant to a few rows of a
        # block and then costs almost nothing; hopeless bounds take the whole block.
        half = 0.5 * error
        over = np.flatnonzero(error > _ERROR_BUDGET)
        whole, rowwise = over[half[over] > 1.0], over[half[over] <= 1.0]
        if whole.size:
            diffs = xb.T[None, :, :] - self.means[whole][:, :, None]
            out[whole] = self._direct(diffs, whole) + self.const[whole][:, None]
            self._direct_parts.append((whole, slice(None), diffs))
        if rowwise.size:
            inexact = half.copy()
            inexact[whole] = 0.0
            margin = math.log(2.0 * self.k / _EPS) + 2.0 * float(inexact.max())
            floor = out.max(axis=0) - margin
            for j in rowwise.tolist():
                rows = np.flatnonzero(out[j] >= floor)
                if rows.size:
                    diffs = (xb[rows] - self.means[j]).T[None, :, :]  # (1, D, rows)
                    comp = np.array([j])
                    out[j, rows] = self._direct(diffs, comp)[0] + self.const[j]
                    self._direct_parts.append((comp, rows, diffs))
        return out

    @property
    def direct_components(self) -> list[int]:
        """The components the last block evaluated directly (on some or all rows)."""
        return sorted({int(j) for comps, _, _ in self._direct_parts for j in comps})

    def accumulate(self, rw: np.ndarray) -> None:
        z = self._zb
        for comps, rows, diffs in self._direct_parts:
            r = rw[comps][:, rows]  # (J, rows)
            self.direct_counts[comps] += r.sum(axis=1)
            self.direct_first[comps] += np.matmul(diffs, r[:, :, None])[:, :, 0]
            self._add_direct_second(diffs, r, comps)
            rw[comps[:, None], rows] = 0.0  # counted above: the products below skip them
        self.gram += rw @ z.T
        self._add_row_moments(z[: self.d], rw.sum(axis=0))

    def finish(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        d, gram = self.d, self.gram
        first = gram[:, :d]  # Σ w r u
        counts = gram[:, d].copy()
        sum_dx = first - counts[:, None] * self.delta
        sum_dxdx = self._second(counts, first, gram[:, d + 1 :])
        return (
            counts + self.direct_counts,
            sum_dx + self.direct_first,
            sum_dxdx + self.direct_second,
        )


class _FullKernel(_ExpandedKernel):
    """Full covariances: the features are the ``D(D+1)/2`` products ``u_i u_j``, ``i ≤ j``.

    ``-½ (u - m_k)ᵀ Λ_k (u - m_k)`` is linear in ``[u, 1, u_i u_j]``, so one block needs
    two matrix products with inner sizes ``P = D + 1 + D(D+1)/2`` and ``B``:
    ``(K, P) @ (P, B)`` for the densities, ``(K, B) @ (B, P)`` for all counts, first
    and second moments. That is ``2·K·P`` FLOP per row each (about half the ``4·K·D²``
    of whitening every component and forming whitened moments), in products that run
    near the BLAS kernel's speed rather than the ``D + 1``-deep products of whitening.
    Where the bound ``S_k = ‖Λ_k‖_F r² + 2‖Λ_k m_k‖ r + m_kᵀΛ_k m_k`` is too large (a
    nearly singular component, data spread over many of its standard deviations), the
    component is evaluated directly: ``y = P_kᵀ (x - μ_k)`` after subtracting the mean.
    """

    def _coefficients(self, prec_chol: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        self.prec_chol_t = np.ascontiguousarray(np.transpose(prec_chol, (0, 2, 1)))
        prec = prec_chol @ self.prec_chol_t  # Λ_k = P_k P_kᵀ
        half = np.einsum("kde,ke->kd", self.prec_chol_t, self.delta)  # P_kᵀ m_k
        lam_m = np.einsum("kde,ke->kd", prec_chol, half)  # Λ_k m_k
        m_lam_m = np.sum(half * half, axis=1)
        d = self.d
        self.iu = np.triu_indices(d)
        quad = -prec[:, self.iu[0], self.iu[1]]
        quad[:, self.iu[0] == self.iu[1]] *= 0.5
        # the rows of the features that hold u_i u_j, i ≤ j: a run of D - i rows per i
        self.starts = np.concatenate([[0], np.cumsum(np.arange(d, 0, -1))])
        self.norms = (
            np.linalg.eigvalsh(np.abs(prec))[:, -1],  # Σ_ij |Λ_ij u_i u_j| ≤ this · ‖u‖²
            2.0 * np.linalg.norm(lam_m, axis=1),
            m_lam_m,
        )
        return lam_m, -0.5 * m_lam_m, quad

    def _features(self, u: np.ndarray, out: np.ndarray) -> None:
        for i in range(self.d):
            np.multiply(u[i], u[i:], out=out[self.starts[i] : self.starts[i + 1]])

    def _bound(self, u: np.ndarray) -> np.ndarray:
        r2 = _largest_norm2(u)
        f, g, h = self.norms
        return f * r2 + g * math.sqrt(r2) + h

    def _direct(self, diffs: np.ndarray, comps: np.ndarray) -> np.ndarray:
        y = self.prec_chol_t[comps] @ diffs
        return -0.5 * np.einsum("kdn,kdn->kn", y, y)

    def _second_shape(self) -> tuple[int, ...]:
        return (self.k, self.d, self.d)

    def _add_direct_second(self, diffs: np.ndarray, r: np.ndarray, comps: np.ndarray) -> None:
        self.direct_second[comps] += (diffs * r[:, None, :]) @ np.transpose(diffs, (0, 2, 1))

    def _second(self, counts: np.ndarray, first: np.ndarray, tail: np.ndarray) -> np.ndarray:
        k, d, delta, iu = self.k, self.d, self.delta, self.iu
        second = np.empty((k, d, d))  # Σ w r u uᵀ
        second[:, iu[0], iu[1]] = tail
        second[:, iu[1], iu[0]] = tail
        cross = np.einsum("kd,ke->kde", delta, first)
        return (
            second
            - cross
            - np.transpose(cross, (0, 2, 1))
            + counts[:, None, None] * np.einsum("kd,ke->kde", delta, delta)
        )


class _DiagKernel(_ExpandedKernel):
    def _coefficients(self, prec_chol: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        self.prec = prec_chol**2  # (K, D)
        delta = self.delta
        return delta * self.prec, -0.5 * np.sum(delta * delta * self.prec, axis=1), -0.5 * self.prec

    def _features(self, u: np.ndarray, out: np.ndarray) -> None:
        np.multiply(u, u, out=out)

    def _bound(self, u: np.ndarray) -> np.ndarray:
        reach = np.maximum(u.max(axis=1), -u.min(axis=1)) if u.size else 0.0  # max |u_i|
        return np.sum((reach + np.abs(self.delta)) ** 2 * self.prec, axis=1)

    def _direct(self, diffs: np.ndarray, comps: np.ndarray) -> np.ndarray:
        return -0.5 * np.matmul(self.prec[comps][:, None, :], diffs * diffs)[:, 0, :]

    def _second_shape(self) -> tuple[int, ...]:
        return (self.k, self.d)

    def _add_direct_second(self, diffs: np.ndarray, r: np.ndarray, comps: np.ndarray) -> None:
        self.direct_second[comps] += np.matmul(diffs * diffs, r[:, :, None])[:, :, 0]

    def _second(self, counts: np.ndarray, first: np.ndarray, tail: np.ndarray) -> np.ndarray:
        delta = self.delta
        return tail - 2.0 * delta * first + counts[:, None] * delta * delta


class _SphericalKernel(_ExpandedKernel):
    def _coefficients(self, prec_chol: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        self.prec = prec_chol**2  # (K,)
        delta = self.delta
        norm2 = np.sum(delta * delta, axis=1)
        return delta * self.prec[:, None], -0.5 * norm2 * self.prec, -0.5 * self.prec[:, None]

    def _features(self, u: np.ndarray, out: np.ndarray) -> None:
        np.einsum("dn,dn->n", u, u, out=out[0])

    def _bound(self, u: np.ndarray) -> np.ndarray:
        radius = math.sqrt(_largest_norm2(u))
        return self.prec * (radius + np.linalg.norm(self.delta, axis=1)) ** 2

    def _direct(self, diffs: np.ndarray, comps: np.ndarray) -> np.ndarray:
        return -0.5 * self.prec[comps][:, None] * np.einsum("kdn,kdn->kn", diffs, diffs)

    def _second_shape(self) -> tuple[int, ...]:
        return (self.k,)

    def _add_direct_second(self, diffs: np.ndarray, r: np.ndarray, comps: np.ndarray) -> None:
        self.direct_second[comps] += np.einsum("kdn,kdn,kn->k", diffs, diffs, r)

    def _second(self, counts: np.ndarray, first: np.ndarray, tail: np.ndarray) -> np.ndarray:
        delta = self.delta
        return (
            tail[:, 0]
            - 2.0 * np.sum(delta * first, axis=1)
            + counts * np.sum(delta * delta, axis=1)
        )


class _TiedKernel(_ExpandedKernel):
    """Tied: ``y = Wᵀ u`` with ``W`` the shared precision Cholesky factor; the feature is
    ``‖y‖²`` and ``-½‖y - W ᵀm_k‖²`` is linear in ``u``, ``1`` and ``‖y‖²``."""

    def _coefficients(self, prec_chol: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        self.whiten = np.ascontiguousarray(prec_chol.T)  # y = Wᵀ u
        self.norm_w = float(np.linalg.norm(prec_chol, 2))
        m = self.delta @ prec_chol  # whitened means, (K, D)
        self.whitened_means = m
        self.tied_second = np.zeros((self.d, self.d))
        k = self.delta.shape[0]
        return m @ prec_chol.T, -0.5 * np.sum(m * m, axis=1), np.full((k, 1), -0.5)

    def _features(self, u: np.ndarray, out: np.ndarray) -> None:
        y = self.whiten @ u
        np.einsum("dn,dn->n", y, y, out=out[0])

    def _bound(self, u: np.ndarray) -> np.ndarray:
        radius = self.norm_w * math.sqrt(_largest_norm2(u))
        return (radius + np.linalg.norm(self.whitened_means, axis=1)) ** 2

    def _direct(self, diffs: np.ndarray, comps: np.ndarray) -> np.ndarray:
        y = self.whiten @ diffs
        return -0.5 * np.einsum("kdn,kdn->kn", y, y)

    def _second_shape(self) -> tuple[int, ...]:
        return (self.d, self.d)

    def _add_direct_second(self, diffs: np.ndarray, r: np.ndarray, comps: np.ndarray) -> None:
        self.direct_second += np.sum((diffs * r[:, None, :]) @ np.transpose(diffs, (0, 2, 1)), 0)

    def _add_row_moments(self, u: np.ndarray, row_weights: np.ndarray) -> None:
        self.tied_second += (u * row_weights) @ u.T

    def _second(self, counts: np.ndarray, first: np.ndarray, tail: np.ndarray) -> np.ndarray:
        delta = self.delta
        cross = delta.T @ first
        second = self.tied_second - cross - cross.T + np.einsum("k,kd,ke->de", counts, delta, delta)
        return 0.5 * (second + second.T)


_KERNELS: dict[str, type[_ExpandedKernel]] = {
    "full": _FullKernel,
    "tied": _TiedKernel,
    "diag": _DiagKernel,
    "spherical": _SphericalKernel,
}

_COVARIANCES: dict[str, _Covariance] = {
    c.name: c for c in (_Full(), _Tied(), _Diag(), _Spherical())
}


# --------------------------------------------------------------------------- the model


@dataclasses.dataclass(frozen=True, eq=False)
class GaussianMixtureModel(FiniteMixture):
    """Gaussian mixture model for the generic EM driver.

    Parameters
    ----------
    n_components : int
        Number of components K.
    covariance_type : {"full", "tied", "diag", "spherical"}
        Covariance structure.
    reg_covar : float, default 1e-6
        Non-negative constant added to the diagonal of every covariance estimate.
    init_params : {"kmeans", "k-means++", "random", "random_from_data"}
        How initial responsibilities are formed: Lloyd's k-means from k-means++ seeds,
        k-means++ seeds alone (nearest-seed assignment), uniform random
        responsibilities, or random data points as means (nearest-point assignment).
    weights_init, means_init, covariances_init : array-like, optional
        User-provided initial values; they override the corresponding part of the
        initialization from ``init_params``.
    dtype : {numpy.float64, numpy.float32}, default float64
        Precision in which the data are held. ``float32`` halves their memory and the
        reads of every pass (in memory, from ``.npy`` files or from Dask). The kernels
        convert each cache-sized block to float64 as they centre it, and all arithmetic,
        statistics and parameters are float64: a float32 fit differs from a float64 fit
        only through the rounding of the data to float32, which the tests bound at
        ``1e-5`` relative in the parameters and ``1e-6`` in the mean log-likelihood
        (``tests/test_float32.py``).
    n_threads : int, optional
        Threads for the fused E-step over a large chunk (default: the environment
        variable ``LATENT_EM_NUM_THREADS`` if set, else the CPUs this process may use).
        From ``N·K ≥ 10⁵`` rows times components the E-step runs the compiled (Numba)
        kernel of :mod:`latent_em.compiled.gaussian`, whose result does not depend on
        ``n_threads`` at all; below, the NumPy kernels, where each thread runs
        single-threaded BLAS on its own run of cache-sized blocks (needs
        ``threadpoolctl``, otherwise one thread) and the result depends on
        ``n_threads`` only through the order of floating-point additions. BLAS stays
        limited to one thread for the whole of a :func:`latent_em.fit`
        (``fit_context``), callbacks included.

    Notes
    -----
    Numerical safeguards, all reported as events of the fit: a component that loses all
    its responsibility is re-seeded by splitting the heaviest component along its main
    axis; a covariance that is not positive definite after the M-step gets the smallest
    diagonal jitter that makes it so; a covariance at the ``reg_covar`` floor (a
    component collapsed onto fewer than D+1 distinct points, or a constant column) is
    reported.
    """

    n_components: int
    covariance_type: str = "full"
    reg_covar: float = 1e-6
    init_params: str = "kmeans"
    weights_init: Any = None
    means_init: Any = None
    covariances_init: Any = None
    dtype: Any = np.float64
    n_threads: int | None = None
    _cov: _Covariance = dataclasses.field(init=False, repr=False)

    def __post_init__(self) -> None:
        try:
            dtype = np.dtype(self.dtype)
        except TypeError as exc:
            raise TypeError(
                f"dtype must be numpy.float32 or numpy.float64; got {self.dtype!r}"
            ) from exc
        if dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
            raise ValueError(f"dtype must be numpy.float32 or numpy.float64; got {dtype}")
        object.__setattr__(self, "dtype", dtype)
        if self.n_threads is not None:
            check_int(self.n_threads, "n_threads", minimum=1)
        check_int(self.n_components, "n_components", minimum=1)
        check_choice(self.covariance_type, "covariance_type", COVARIANCE_TYPES)
        check_positive_float(self.reg_covar, "reg_covar", allow_zero=True)
        check_choice(self.init_params, "init_params", INIT_METHODS)
        object.__setattr__(self, "_cov", _COVARIANCES[self.covariance_type])
        k = self.n_components
        if self.weights_init is not None:
            w = np.asarray(self.weights_init, dtype=float)
            if w.shape != (k,):
                raise ValueError(f"weights_init must have shape ({k},); got {w.shape}")
            if not np.all(np.isfinite(w)) or np.any(w < 0):
                raise ValueError("weights_init must be finite and non-negative")
            if abs(w.sum() - 1.0) > 1e-6:
                raise ValueError(f"weights_init must sum to one; it sums to {w.sum():.8g}")
            object.__setattr__(self, "weights_init", w / w.sum())
        if self.means_init is not None:
            m = np.asarray(self.means_init, dtype=float)
            if m.ndim != 2 or m.shape[0] != k:
                raise ValueError(f"means_init must have shape ({k}, n_features); got {m.shape}")
            if not np.all(np.isfinite(m)):
                raise ValueError("means_init contains NaN or infinite values")
            object.__setattr__(self, "means_init", m)
        if self.covariances_init is not None:
            c = np.asarray(self.covariances_init, dtype=float)
            d = self._n_features_from_init(c)
            expected = self._cov.shape(k, d)
            if c.shape != expected:
                raise ValueError(
                    f"covariances_init for covariance_type={self.covariance_type!r} must have "
                    f"shape {expected}; got {c.shape}"
                )
            bad = self._cov.check_pd(c)
            if bad or (c.ndim >= 2 and c.shape[-1] == c.shape[-2] and not _symmetric(c)):
                what = "symmetric positive definite" if c.ndim >= 2 else "positive"
                where = f" (component {bad[0]})" if bad and c.ndim != 2 else ""
                raise ValueError(f"covariances_init must be {what}{where}")
            object.__setattr__(self, "covariances_init", c)

    def _n_features_from_init(self, c: np.ndarray) -> int:
        if self.means_init is not None:
            return int(np.shape(self.means_init)[1])
        if self.covariance_type in ("full", "tied"):
            return int(c.shape[-1]) if c.ndim >= 2 else 0
        if self.covariance_type == "diag":
            return int(c.shape[-1]) if c.ndim == 2 else 0
        return 1

    @property
    def covariance(self) -> _Covariance:
        return self._cov

    # ---- data
    def check_data(self, x: Any) -> np.ndarray:
        """Validate ``x`` as an ``(n, D)`` float matrix with at least K rows."""
        arr = as_float_matrix(x, "X", min_rows=self.n_components, dtype=self.dtype)
        for name, init in (("means_init", self.means_init),):
            if init is not None and np.shape(init)[1] != arr.shape[1]:
                raise ValueError(
                    f"{name} has {np.shape(init)[1]} features but X has {arr.shape[1]}"
                )
        if self.covariances_init is not None and self.covariance_type in ("full", "tied", "diag"):
            cd = np.shape(self.covariances_init)[-1]
            if cd != arr.shape[1]:
                raise ValueError(f"covariances_init has {cd} features but X has {arr.shape[1]}")
        return arr

    def check_chunk(self, x: Any) -> np.ndarray:
        """Validate one chunk of data read from disk or Dask: as :meth:`check_data`, but
        a chunk may have fewer than K rows."""
        return as_float_matrix(x, "X", dtype=self.dtype)

    # ---- parameters
    def make_params(self, weights: Any, means: Any, covariances: Any) -> GaussianMixtureParams:
        """Validated parameters from arrays (shapes as in :class:`GaussianMixtureParams`)."""
        w = np.asarray(weights, dtype=float)
        m = np.asarray(means, dtype=float)
        c = np.asarray(covariances, dtype=float)
        k = self.n_components
        if w.shape != (k,) or abs(w.sum() - 1) > 1e-6 or np.any(w < 0):
            raise ValueError(f"weights must be {k} non-negative numbers summing to one")
        if m.ndim != 2 or m.shape[0] != k:
            raise ValueError(f"means must have shape ({k}, n_features); got {m.shape}")
        expected = self.covariance.shape(k, m.shape[1])
        if c.shape != expected:
            raise ValueError(f"covariances must have shape {expected}; got {c.shape}")
        if self.covariance.check_pd(c):
            raise ValueError("covariances must be positive definite")
        return GaussianMixtureParams(w, m, c)

    @property
    def constraints(self) -> Mapping[str, Constraint]:
        """Free parameters: weights on the simplex, real means, PD/positive covariances."""
        return {"weights": Simplex(), "means": Real(), "covariances": self.covariance.constraint}

    def n_parameters(self, params: GaussianMixtureParams) -> int:
        """``K - 1 + K D`` plus the covariance parameters of the chosen structure."""
        k, d = params.means.shape
        return k - 1 + k * d + self.covariance.n_parameters(k, d)

    def initialize(self, x: np.ndarray, rng: np.random.Generator) -> GaussianMixtureParams:
        """Initial parameters: responsibilities from ``init_params``, then one M-step,
        then the user's ``*_init`` values where given."""
        x = np.asarray(x, dtype=float)
        k = self.n_components
        n = x.shape[0]
        if self.means_init is not None and self.init_params in ("kmeans", "k-means++"):
            # the user's means define the initial partition
            labels = np.argmin(_sqdist(x, self.means_init), axis=1)
            resp = _one_hot(labels, k)
        elif self.init_params == "kmeans":
            centers, labels = lloyd(x, kmeans_plusplus(x, k, rng))
            resp = _one_hot(labels, k)
        elif self.init_params == "k-means++":
            centers = kmeans_plusplus(x, k, rng)
            resp = _one_hot(np.argmin(_sqdist(x, centers), axis=1), k)
        elif self.init_params == "random":
            resp = rng.uniform(size=(n, k))
            resp /= resp.sum(axis=1, keepdims=True)
        else:  # random_from_data
            centers = x[rng.choice(n, size=k, replace=n < k)]
            resp = _one_hot(np.argmin(_sqdist(x, centers), axis=1), k)
        params = self._params_from_responsibilities(x, resp, rng)
        updates = {}
        if self.weights_init is not None:
            updates["weights"] = self.weights_init.copy()
        if self.means_init is not None:
            updates["means"] = self.means_init.copy()
        if self.covariances_init is not None:
            updates["covariances"] = self.covariances_init.copy()
        return params._replace(**updates)

    def _params_from_responsibilities(
        self, x: np.ndarray, resp: np.ndarray, rng: np.random.Generator
    ) -> GaussianMixtureParams:
        k, d = self.n_components, x.shape[1]
        counts = resp.sum(axis=0)
        empty = counts <= 0
        if np.any(empty):
            # an initial cluster without points: seed it on random rows
            picks = rng.choice(x.shape[0], size=int(empty.sum()))
            resp = resp.copy()
            resp[picks, :] = 0.0
            resp[picks, np.flatnonzero(empty)] = 1.0
            counts = resp.sum(axis=0)
        means = (resp.T @ x) / counts[:, None]
        zero_cov = np.zeros(self.covariance.shape(k, d))
        start = GaussianMixtureParams(counts / counts.sum(), means, zero_cov)
        stats = self.expected_stats(start, x, resp, np.ones(x.shape[0]))
        params = self.m_step(start, stats)
        bad = self.covariance.check_pd(params.covariances)
        if bad:
            params = params._replace(covariances=self.covariance.jitter(params.covariances, bad))
        return params

    # ---- the contract
    def _precisions_cholesky(self, params: GaussianMixtureParams) -> np.ndarray:
        try:
            return self.covariance.precisions_cholesky(np.asarray(params.covariances))
        except (linalg.LinAlgError, ValueError) as exc:
            bad = self.covariance.check_pd(np.asarray(params.covariances))
            raise ValueError(
                f"covariance of component(s) {bad} is not positive definite; increase "
                "reg_covar or check covariances_init"
            ) from exc

    def _log_terms(
        self, params: GaussianMixtureParams, d: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Means, precision Cholesky factors and ``log φ_k - ½ D log 2π + log det P_k``."""
        means = np.asarray(params.means, dtype=float)
        prec_chol = self._precisions_cholesky(params)
        with np.errstate(divide="ignore"):
            log_w = np.log(np.asarray(params.weights, dtype=float))
        const = -0.5 * d * _LOG_2PI + self.covariance.log_det_precisions_cholesky(prec_chol, d)
        return means, prec_chol, np.broadcast_to(const, log_w.shape) + log_w

    def _kernel(self, params: GaussianMixtureParams, d: int) -> _ExpandedKernel:
        means, prec_chol, const = self._log_terms(params, d)
        # centre on the mixture's mean so expanded quadratic forms do not cancel badly
        centre = np.asarray(params.weights, dtype=float) @ means
        return self.covariance.kernel(means, prec_chol, const, centre)

    def _as_working(self, x: Any) -> np.ndarray:
        x = np.asarray(x)
        if x.dtype != self.dtype:
            x = x.astype(self.dtype)
        if x.ndim != 2:
            raise ValueError(f"X must be 2-D (n_samples, n_features); got shape {x.shape}")
        return x

    def log_weighted_densities(self, params: GaussianMixtureParams, x: np.ndarray) -> np.ndarray:
        """``(n, K)`` table of ``log φ_k + log N(x_n; μ_k, Σ_k)`` (float64)."""
        x = self._as_working(x)
        out = np.empty((x.shape[0], self.n_components))
        with _single_threaded_blas():
            kernel = self._kernel(params, x.shape[1])
            for start in range(0, x.shape[0], kernel.rows):
                out[start : start + kernel.rows] = kernel.table(x[start : start + kernel.rows]).T
        return out

    def e_step(
        self, params: GaussianMixtureParams, x: np.ndarray, weights: np.ndarray
    ) -> tuple[GaussianMixtureStats, np.ndarray]:
        """Fused E-step: the statistics of :meth:`expected_stats` at the exact posterior
        and ``log p(x_n)``, without materializing the ``(n, K)`` responsibilities.

        Every block of rows is read once: its log-densities, responsibilities and
        statistics come from the same cache-resident intermediates (see ``_ExpandedKernel``).

        Returns
        -------
        stats : GaussianMixtureStats
            Same values as ``expected_stats(params, x, posterior(params, x)[0], weights)``
            up to round-off.
        log_marginal : (n,) float64
            ``log p(x_n | params)``.
        """
        x = self._as_working(x)
        n, d = x.shape
        if n * self.n_components >= COMPILED_MIN_SIZE and compiled.available():
            with _single_threaded_blas():
                means, prec_chol, const = self._log_terms(params, d)
                w = np.asarray(weights, dtype=float)
                *stats, lm = compiled.gaussian_e_step(
                    self.covariance_type, x, w, means, prec_chol, const, self._threads()
                )
            return GaussianMixtureStats(*stats), lm
        log_marginal = np.empty(n)
        with _single_threaded_blas() as limited:
            kernel = self._kernel(params, d)
            w = np.asarray(weights, dtype=float)  # the tables' dtype: no mixed loops
            starts = range(0, n, kernel.rows)
            threads = min(self._threads(), len(starts) // _MIN_BLOCKS_PER_THREAD)
            if not limited or threads < 2:
                _run_blocks(kernel, x, w, log_marginal, starts)
                kernels = [kernel]
            else:
                # contiguous runs of blocks per thread: the summation order, hence the
                # result, is the same on every call with the same number of threads
                kernels = [kernel] + [self._kernel(params, d) for _ in range(threads - 1)]
                parts = np.array_split(np.asarray(starts), threads)
                with ThreadPoolExecutor(threads) as pool:
                    jobs = [
                        pool.submit(_run_blocks, kern, x, w, log_marginal, part)
                        for kern, part in zip(kernels, parts, strict=True)
                    ]
                    for job in jobs:
                        job.result()
        counts, sum_dx, sum_dxdx = kernels[0].finish()
        for other in kernels[1:]:
            more = other.finish()
            counts, sum_dx, sum_dxdx = counts + more[0], sum_dx + more[1], sum_dxdx + more[2]
        return GaussianMixtureStats(counts, sum_dx, sum_dxdx), log_marginal

    def fit_context(self) -> contextlib.AbstractContextManager[bool]:
        """BLAS limited to one thread for the whole fit (see ``n_threads``).

        The E-step limits it anyway; holding the limit between E-steps as well stops
        OpenBLAS from waking its threads for the M-step's tiny products, after which
        they spin for up to ~0.1 s and take the cores from the E-step's own threads
        (measured: 0.21 s per iteration instead of 0.165 with two threads, N = 200 000,
        D = K = 16, on 2 cores).
        """
        return _single_threaded_blas()

    @property
    def working_dtype(self) -> np.dtype:
        """Precision of the arithmetic: float64 for either ``dtype`` (see there). The
        driver's monotonicity tolerance follows it."""
        return np.dtype(np.float64)

    def _threads(self) -> int:
        if self.n_threads is not None:
            return int(self.n_threads)
        return compiled.default_threads()  # LATENT_EM_NUM_THREADS, else the usable CPUs

    def posterior(
        self, params: GaussianMixtureParams, x: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Responsibilities ``(n, K)`` and ``log p(x_n)`` by log-sum-exp."""
        table = np.ascontiguousarray(self.log_weighted_densities(params, x).T)
        log_marginal = _log_normalize(table)
        return table.T, log_marginal

    def expected_stats(
        self,
        params: GaussianMixtureParams,
        x: np.ndarray,
        posterior: np.ndarray,
        weights: np.ndarray,
    ) -> GaussianMixtureStats:
        """Weighted counts and moments about the current means (additive over rows)."""
        x = np.asarray(x, dtype=float)
        rw = np.asarray(posterior, dtype=float) * weights[:, None]
        counts = rw.sum(axis=0)
        with _single_threaded_blas():  # (D, n) @ (n, D) products: see there
            sum_dx, sum_dxdx = self.covariance.second_moments(x, np.asarray(params.means), rw)
        return GaussianMixtureStats(counts, sum_dx, sum_dxdx)

    def m_step(
        self, params: GaussianMixtureParams, stats: GaussianMixtureStats
    ) -> GaussianMixtureParams:
        """Closed-form maximizer (see module docstring). An empty component keeps its
        mean and covariance and gets weight zero; :meth:`repair` then re-seeds it."""
        counts = stats.counts
        total = counts.sum()
        live = counts > 10 * np.finfo(float).eps * total
        safe = np.where(live, counts, 1.0)
        delta = np.where(live[:, None], stats.sum_dx / safe[:, None], 0.0)
        means = np.asarray(params.means) + delta
        if self.covariance_type == "tied":
            covariances = self.covariance.estimate(counts, delta, stats.sum_dxdx, self.reg_covar)
        else:
            covariances = self.covariance.estimate(safe, delta, stats.sum_dxdx, self.reg_covar)
            old = np.asarray(params.covariances)
            covariances[~live] = old[~live]
        weights = np.where(live, counts, 0.0) / total
        return GaussianMixtureParams(weights, means, covariances)

    def repair(
        self, params: GaussianMixtureParams, stats: GaussianMixtureStats, rng: np.random.Generator
    ) -> tuple[GaussianMixtureParams, tuple[str, ...]]:
        """Re-seed empty components, jitter non-PD covariances, report collapses."""
        messages: list[str] = []
        out = params
        counts = stats.counts
        total = counts.sum()
        empty = np.flatnonzero(counts <= 10 * np.finfo(float).eps * total)
        if empty.size and empty.size < self.n_components:
            out = self._split_heaviest(out, empty)
            messages.extend(
                f"component {k} lost all its responsibility; re-seeded by splitting the "
                "heaviest component"
                for k in empty
            )
        bad = self.covariance.check_pd(np.asarray(out.covariances))
        if bad:
            out = out._replace(covariances=self.covariance.jitter(np.asarray(out.covariances), bad))
            messages.append(
                f"covariance of component(s) {bad} was not positive definite; added the "
                "smallest diagonal jitter that makes it so"
            )
        if self.reg_covar > 0:
            floor = self.covariance.min_variance(np.asarray(out.covariances), self.n_components)
            collapsed = [int(k) for k in np.flatnonzero(floor <= self.reg_covar * (1 + 1e-3))]
            if collapsed:
                messages.append(
                    f"component(s) {collapsed} collapsed: covariance at the reg_covar="
                    f"{self.reg_covar:g} floor (fewer distinct points than dimensions + 1, "
                    "a constant column, or data on a tiny scale)"
                )
        return out, tuple(messages)

    def _split_heaviest(
        self, params: GaussianMixtureParams, empty: np.ndarray
    ) -> GaussianMixtureParams:
        weights = np.array(params.weights, dtype=float)
        means = np.array(params.means, dtype=float)
        covs = np.array(params.covariances, dtype=float)
        k, d = means.shape
        full = self.covariance.to_full(covs, k, d)
        for j in empty:
            heavy = int(np.argmax(weights))
            vals, vecs = np.linalg.eigh(full[heavy])
            step = np.sqrt(max(vals[-1], 0.0)) * vecs[:, -1] * 0.5
            means[j] = means[heavy] + step
            means[heavy] = means[heavy] - step
            weights[j] = weights[heavy] = weights[heavy] / 2.0
            if self.covariance_type != "tied":
                covs[j] = covs[heavy]
            full[j] = full[heavy]
        return GaussianMixtureParams(weights / weights.sum(), means, covs)

    def sample(
        self, params: GaussianMixtureParams, n: int, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """Draw ``n`` rows; returns ``(x (n, D), z (n,))`` grouped by component."""
        k, d = np.shape(params.means)
        counts = rng.multinomial(n, params.weights)
        full = self.covariance.to_full(np.asarray(params.covariances), k, d)
        xs, zs = [], []
        for j in range(k):
            if counts[j] == 0:
                continue
            chol = np.linalg.cholesky(full[j])
            draws = params.means[j] + rng.standard_normal((counts[j], d)) @ chol.T
            xs.append(draws)
            zs.append(np.full(counts[j], j))
        return np.concatenate(xs), np.concatenate(zs)


def _symmetric(c: np.ndarray) -> bool:
    return bool(np.allclose(c, np.swapaxes(c, -1, -2), rtol=1e-8, atol=0))


def _one_hot(labels: np.ndarray, k: int) -> np.ndarray:
    out = np.zeros((labels.shape[0], k))
    out[np.arange(labels.shape[0]), labels] = 1.0
    return out


def _sqdist(x: np.ndarray, centers: np.ndarray) -> np.ndarray:
    from ._kmeans import squared_distances

    return squared_distances(x, np.asarray(centers, dtype=float))
