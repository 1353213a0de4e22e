"""Blocked expanded-form E-step kernels of the Gaussian mixture, one per covariance
structure, the log-normalization of a block, and the loop over blocks. ``KERNELS``
maps a structure name to its kernel class: the only place that pairs them.
:func:`latent_em.compiled.use_compiled` decides when the compiled (Numba) kernel of
:mod:`latent_em.compiled.gaussian`, which covers every structure by name
(:func:`compiled_e_step`), runs instead.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ... import compiled

# the threshold every compiled E-step shares (at N = 200 000, D = K = 16 the compiled
# kernel takes 1.9x (full) and 2.1x (diag) less CPU than the NumPy kernels below)
from ...compiled import use_compiled as use_compiled  # re-exported


def compiled_e_step(
    structure: str,
    x: np.ndarray,
    weights: np.ndarray,
    means: np.ndarray,
    prec_chol: np.ndarray,
    const: np.ndarray,
    n_threads: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(counts, sum_dx, sum_dxdx, log_marginal)`` from the compiled kernel of the
    structure named ``structure`` (see :func:`latent_em.compiled.gaussian_e_step`).

    A structure runs the compiled kernel of the family its block kernel belongs to in
    :data:`KERNELS` (mclust's parsimonious structures hold full matrices: the full one).
    """
    family = _FAMILY_OF_KERNEL[KERNELS[structure]]
    counts, sum_dx, sum_dxdx, log_marginal = compiled.gaussian_e_step(
        family, x, weights, means, prec_chol, const, n_threads
    )
    return counts, sum_dx, sum_dxdx, log_marginal


# ------------------------------------------------------------------ E-step kernels
#
# One kernel per covariance structure evaluates ``log φ_k + log N(x_n; μ_k, Σ_k)`` for a
# block of rows and accumulates the statistics of that block from the intermediates it
# already holds, so the fused E-step (:meth:`GaussianMixtureModel.e_step`) touches every
# row once. Every kernel writes the block once as the rows of ``Z = [u; 1; features]``
# (``u = x - c``, centred at the mixture mean ``c``), the quadratic forms being linear
# in those rows; then a block costs two matrix products of BLAS-3 shape,
# ``(K, P) @ (P, B)`` for the densities and ``(K, B) @ (B, P)`` for every statistic,
# and one normalization pass (``log_normalize``). Blocks are sized for cache
# (``_KERNEL_ELEMENTS`` elements in the widest per-block buffer); the buffers are
# allocated once per pass and reused for every block. Expanded forms cancel for data
# far from ``c`` in units of a component's standard deviation: an a-priori error bound
# per block and component sends such components to a direct evaluation
# (``ExpandedKernel``). All kernels compute in float64, whatever the data's dtype, and
# convert the statistics to moments about ``μ_old`` in float64.

#: elements of the widest per-block buffer (1713 rows x 153 for D = 16): measured on a
#: 2-core AMD EPYC (Zen 3) for K = D = 16, full covariance, float64, one thread, the
#: E-step over 200 000 rows took 0.27 s with 214-row blocks, 0.17 s with 856, 0.15 s
#: with 1713 and 0.16 s with 3426 (per-call overheads against cache misses)
_KERNEL_ELEMENTS = 1 << 18


def run_blocks(
    kernel: ExpandedKernel, x: np.ndarray, w: np.ndarray, log_marginal: np.ndarray, starts: Any
) -> None:
    n, rows = x.shape[0], kernel.rows
    for start in starts:
        stop = min(n, int(start) + rows)
        table = kernel.table(x[start:stop])
        log_marginal[start:stop] = log_normalize(table, w[start:stop])
        kernel.accumulate(table)


def _block_rows(width: int) -> int:
    return max(64, _KERNEL_ELEMENTS // max(1, width))


#: log-ratios are raised to this before ``exp`` (see ``log_normalize``): far from the
#: subnormal range, and, in float64, above -512, below which glibc's ``exp`` takes a
#: slow special-case path (13.4 ns instead of 9 ns per entry, measured)
_SUBNORMAL_CUTOFF = {
    np.dtype(np.float32).char: 0.8 * math.log(np.finfo(np.float32).tiny),
    np.dtype(np.float64).char: -500.0,
}


def log_normalize(table: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
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
#: Mahalanobis distance (see ``ExpandedKernel``).
_ERROR_BUDGET = 1e-10
_EPS = float(np.finfo(np.float64).eps)


def _largest_norm2(u: np.ndarray) -> float:
    """The largest squared norm of the columns of ``u`` (``(D, B)``), 0 if none."""
    return float(np.einsum("dn,dn->n", u, u).max()) if u.shape[1] else 0.0


class ExpandedKernel:
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
        # ``log_normalize``). A collapsed component is relevant to a few rows of a
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


class FullKernel(ExpandedKernel):
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


class DiagKernel(ExpandedKernel):
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


class SphericalKernel(ExpandedKernel):
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


class TiedKernel(ExpandedKernel):
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


KERNELS: dict[str, type[ExpandedKernel]] = {
    "full": FullKernel,
    "tied": TiedKernel,
    "diag": DiagKernel,
    "spherical": SphericalKernel,
}
# mclust's other parsimonious structures (and its 1-D E and V) hold full (K, D, D)
# covariances: their E-step is the full structure's kernel on those matrices
KERNELS.update(
    dict.fromkeys(
        ("EII", "EEI", "VEI", "EVI", "VEE", "EVE", "VVE", "EEV", "VEV", "EVV", "E", "V"),
        FullKernel,
    )
)

# the compiled kernel of each block-kernel family (the structure -> kernel table stays KERNELS)
_FAMILY_OF_KERNEL: dict[type[ExpandedKernel], str] = {
    FullKernel: "full",
    TiedKernel: "tied",
    DiagKernel: "diag",
    SphericalKernel: "spherical",
}
