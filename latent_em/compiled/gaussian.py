"""Compiled fused E-step of the Gaussian mixture: one pass per block of rows.

For a block of ``B`` rows (transposed into a ``(D, B)`` float64 buffer, so that rows
lie on SIMD lanes and float32 data are widened as they are read), every component k
gets its differences ``x - μ_k``, its log-density ``log φ_k + log N(x; μ_k, Σ_k)``
(full and tied: ``y = Pₖᵀ(x - μ_k)`` on the upper-triangular Cholesky factor of the
precision, a 4 x 4 panel of the triangle per pass; diag and spherical: per coordinate),
then one log-sum-exp per row (with :func:`latent_em.compiled.fastexp.exp_inplace`),
the weighted responsibilities ``w_n r_nk`` and, while the block is still in cache,
the M-step statistics about the current means: ``N_k``, ``Σ w r (x - μ_k)`` and the
second moments in the covariance type's shape. Differences are taken before any
product, so nothing cancels: the values are those of the textbook formulas (scipy's,
scikit-learn's) up to round-off.

Parallelism and determinism. The rows are cut into *segments* whose size depends only
on ``N`` and the size of the statistics (``segment_rows``); each segment accumulates
its own partial statistics, and the partials are added in segment order at the end.
Segments are handed to a persistent thread pool dynamically (:mod:`.pool`: whichever
thread is free takes the next one, which copes with cores shared with other
processes), and the kernels release the GIL. So the result is the same, bit for bit,
for any number of threads. There is no BLAS inside the kernels.

Spherical covariances run the diag kernel (the same precision in every coordinate, the
per-coordinate second moments summed at the end); tied covariances run the full kernel
with the one factor for every component and the second moments summed over k.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .buffers import zeros_aligned
from .jit import jit
from .normalize import normalize_columns
from .pool import run_items

__all__ = ["BLOCK_ROWS", "gaussian_e_step", "segment_rows"]

#: rows per block: the (D, B) differences of one component and a few B-vectors stay in
#: the L1 data cache. Measured on the 2-core AMD EPYC (AVX-512, 48 KB L1d), N = 200 000,
#: D = K = 16, one thread, alternating in one process, with cache-line-aligned buffers
#: and 4 x 4 panels: full 0.038 s per E-step with 128 rows, 0.041 with 256, 0.044 with
#: 64; diag 0.0098 s with 256 or 128, 0.0157 with 512. Segments are multiples of
#: ``BLOCK_ROWS``.
BLOCK_ROWS = 256
_CHOLESKY_BLOCK = 128
_DIAGONAL_BLOCK = 256
#: at most this many segments (partial statistics) per call, at least this many rows each
_MAX_SEGMENTS = 256
_MIN_SEGMENT_ROWS = 16 * BLOCK_ROWS
#: bytes of per-segment partial statistics allowed per call (fewer, longer segments above)
_PARTIALS_BUDGET = 64 << 20
_LANES = 4  # rows of the triangle / of the second moments handled together


def segment_rows(n: int, partial_floats: int = 0) -> int:
    """Rows per segment for ``n`` rows when one segment's partial statistics hold
    ``partial_floats`` numbers: a multiple of ``BLOCK_ROWS``, depending only on these two
    (never on the thread count), with at most ``_MAX_SEGMENTS`` segments and at most
    ``_PARTIALS_BUDGET`` bytes of partial statistics in all (``K·D²`` numbers each for
    full covariances: 2 KB at D = K = 16, 4 MB at D = 100, K = 50)."""
    most = max(1, min(_MAX_SEGMENTS, _PARTIALS_BUDGET // max(1, 8 * partial_floats)))
    rows = max(_MIN_SEGMENT_ROWS, -(-n // most))
    return -(-rows // BLOCK_ROWS) * BLOCK_ROWS


# ------------------------------------------------------------------ block helpers


@jit()
def _load_block(x, b0, nb, xt):  # pragma: no cover - compiled
    d = x.shape[1]
    for b in range(nb):
        for i in range(d):
            xt[i, b] = x[b0 + b, i]


@jit()
def _differences(xt, mean, nb, diff):  # pragma: no cover - compiled
    for i in range(mean.shape[0]):
        m = mean[i]
        for b in range(nb):
            diff[i, b] = xt[i, b] - m


@jit()
def _triangle_mahalanobis(diff, pc, nb, y0, y1, y2, y3, maha):  # pragma: no cover - compiled
    """``maha[b] = ‖Pᵀ diff[:, b]‖²``, ``pc`` the upper-triangular factor padded with
    zeros to ``(Dp, Dp)`` (``Dp`` a multiple of 4; ``diff`` has zero rows beyond D).
    A 4 x 4 panel of the triangle per pass over the block: four loads of ``diff`` feed
    sixteen multiply-adds into four accumulating rows ``y``; the diagonal panel, which
    starts them, only its ten upper entries."""
    dp = pc.shape[1]
    for b in range(nb):
        maha[b] = 0.0
    for j in range(0, dp, 4):
        # the diagonal panel (lower entries zero) starts the four rows of y
        p00 = pc[j, j]
        p01 = pc[j, j + 1]
        p11 = pc[j + 1, j + 1]
        p02 = pc[j, j + 2]
        p12 = pc[j + 1, j + 2]
        p22 = pc[j + 2, j + 2]
        p03 = pc[j, j + 3]
        p13 = pc[j + 1, j + 3]
        p23 = pc[j + 2, j + 3]
        p33 = pc[j + 3, j + 3]
        d0 = diff[j]
        d1 = diff[j + 1]
        d2 = diff[j + 2]
        d3 = diff[j + 3]
        for b in range(nb):
            e0 = d0[b]
            e1 = d1[b]
            e2 = d2[b]
            e3 = d3[b]
            y0[b] = p00 * e0
            y1[b] = p01 * e0 + p11 * e1
            y2[b] = p02 * e0 + p12 * e1 + p22 * e2
            y3[b] = p03 * e0 + p13 * e1 + p23 * e2 + p33 * e3
        for i in range(0, j, 4):
            p00 = pc[i, j]
            p10 = pc[i + 1, j]
            p20 = pc[i + 2, j]
            p30 = pc[i + 3, j]
            p01 = pc[i, j + 1]
            p11 = pc[i + 1, j + 1]
            p21 = pc[i + 2, j + 1]
            p31 = pc[i + 3, j + 1]
            p02 = pc[i, j + 2]
            p12 = pc[i + 1, j + 2]
            p22 = pc[i + 2, j + 2]
            p32 = pc[i + 3, j + 2]
            p03 = pc[i, j + 3]
            p13 = pc[i + 1, j + 3]
            p23 = pc[i + 2, j + 3]
            p33 = pc[i + 3, j + 3]
            d0 = diff[i]
            d1 = diff[i + 1]
            d2 = diff[i + 2]
            d3 = diff[i + 3]
            for b in range(nb):
                e0 = d0[b]
                e1 = d1[b]
                e2 = d2[b]
                e3 = d3[b]
                y0[b] += p00 * e0 + p10 * e1 + p20 * e2 + p30 * e3
                y1[b] += p01 * e0 + p11 * e1 + p21 * e2 + p31 * e3
                y2[b] += p02 * e0 + p12 * e1 + p22 * e2 + p32 * e3
                y3[b] += p03 * e0 + p13 * e1 + p23 * e2 + p33 * e3
        for b in range(nb):
            maha[b] += y0[b] * y0[b] + y1[b] * y1[b] + y2[b] * y2[b] + y3[b] * y3[b]


@jit()
def _moments(xt, mean, diff, r, nb, rd, sum_dx, second):  # pragma: no cover - compiled
    """Add ``Σ r``, ``Σ r·diff`` and the upper triangle (4 x 4 panels, rows padded) of
    ``Σ r·diff·diffᵀ`` of one component (the diagonal panels only their upper ten
    entries; below the diagonal ``second`` is not written); returns ``Σ r``. The
    differences ``xt - mean`` (into ``diff``, whose rows beyond D stay zero) and
    ``r·diff`` (into ``rd``) are formed in the same pass."""
    dp = diff.shape[0]
    d = sum_dx.shape[0]
    count = 0.0
    for b in range(nb):
        count += r[b]
    for i in range(d):
        m = mean[i]
        xi = xt[i]
        di = diff[i]
        ri = rd[i]
        s = 0.0
        for b in range(nb):
            t = xi[b] - m
            v = r[b] * t
            di[b] = t
            ri[b] = v
            s += v
        sum_dx[i] += s
    for i in range(0, d, 4):
        r0 = rd[i]
        r1 = rd[i + 1]
        r2 = rd[i + 2]
        r3 = rd[i + 3]
        # the diagonal panel: its upper triangle only (ten sums)
        e = diff[i]
        f = diff[i + 1]
        g = diff[i + 2]
        h = diff[i + 3]
        s00 = 0.0
        s01 = 0.0
        s11 = 0.0
        s02 = 0.0
        s12 = 0.0
        s22 = 0.0
        s03 = 0.0
        s13 = 0.0
        s23 = 0.0
        s33 = 0.0
        for bb in range(nb):
            a0 = r0[bb]
            a1 = r1[bb]
            a2 = r2[bb]
            a3 = r3[bb]
            u = e[bb]
            v = f[bb]
            x2 = g[bb]
            x3 = h[bb]
            s00 += a0 * u
            s01 += a0 * v
            s11 += a1 * v
            s02 += a0 * x2
            s12 += a1 * x2
            s22 += a2 * x2
            s03 += a0 * x3
            s13 += a1 * x3
            s23 += a2 * x3
            s33 += a3 * x3
        second[i, i] += s00
        second[i, i + 1] += s01
        second[i + 1, i + 1] += s11
        second[i, i + 2] += s02
        second[i + 1, i + 2] += s12
        second[i + 2, i + 2] += s22
        second[i, i + 3] += s03
        second[i + 1, i + 3] += s13
        second[i + 2, i + 3] += s23
        second[i + 3, i + 3] += s33
        for j in range(i + 4, dp, 4):  # columns beyond D are zero rows of diff: harmless
            e = diff[j]
            f = diff[j + 1]
            g = diff[j + 2]
            h = diff[j + 3]
            s00 = 0.0
            s10 = 0.0
            s20 = 0.0
            s30 = 0.0
            s01 = 0.0
            s11 = 0.0
            s21 = 0.0
            s31 = 0.0
            s02 = 0.0
            s12 = 0.0
            s22 = 0.0
            s32 = 0.0
            s03 = 0.0
            s13 = 0.0
            s23 = 0.0
            s33 = 0.0
            for bb in range(nb):
                u = e[bb]
                v = f[bb]
                x2 = g[bb]
                x3 = h[bb]
                a0 = r0[bb]
                a1 = r1[bb]
                a2 = r2[bb]
                a3 = r3[bb]
                s00 += a0 * u
                s10 += a1 * u
                s20 += a2 * u
                s30 += a3 * u
                s01 += a0 * v
                s11 += a1 * v
                s21 += a2 * v
                s31 += a3 * v
                s02 += a0 * x2
                s12 += a1 * x2
                s22 += a2 * x2
                s32 += a3 * x2
                s03 += a0 * x3
                s13 += a1 * x3
                s23 += a2 * x3
                s33 += a3 * x3
            second[i, j] += s00
            second[i + 1, j] += s10
            second[i + 2, j] += s20
            second[i + 3, j] += s30
            second[i, j + 1] += s01
            second[i + 1, j + 1] += s11
            second[i + 2, j + 1] += s21
            second[i + 3, j + 1] += s31
            second[i, j + 2] += s02
            second[i + 1, j + 2] += s12
            second[i + 2, j + 2] += s22
            second[i + 3, j + 2] += s32
            second[i, j + 3] += s03
            second[i + 1, j + 3] += s13
            second[i + 2, j + 3] += s23
            second[i + 3, j + 3] += s33
    return count


# ------------------------------------------------------------------ segment kernels


@jit()
def _segment_cholesky(
    x, w, start, stop, means, pc, const, log_marginal, counts, sum_dx, second, per_component, bsize
):  # pragma: no cover - compiled
    """Full (``per_component = 1``) or tied (``0``: one ``second[0]`` for all k)
    covariances over rows ``start:stop``. ``pc`` is ``(K, Dp, Dp)``: each component's
    upper-triangular precision factor, zero-padded (``Dp`` a multiple of 4);
    ``second`` is ``(K or 1, Dp, Dp)``, upper triangles."""
    k, d = means.shape
    dp = pc.shape[1]
    xt = zeros_aligned(d * bsize).reshape((d, bsize))
    diff = zeros_aligned(dp * bsize).reshape((dp, bsize))
    rd = zeros_aligned(dp * bsize).reshape((dp, bsize))
    flat = zeros_aligned(k * bsize)
    tab = flat.reshape((k, bsize))
    y0 = zeros_aligned(bsize)
    y1 = zeros_aligned(bsize)
    y2 = zeros_aligned(bsize)
    y3 = zeros_aligned(bsize)
    maha = zeros_aligned(bsize)
    top = zeros_aligned(bsize)
    total = zeros_aligned(bsize)
    scale_bits = zeros_aligned(k * bsize).view(np.int64)
    for b0 in range(start, stop, bsize):
        nb = min(bsize, stop - b0)
        _load_block(x, b0, nb, xt)
        for j in range(k):
            _differences(xt, means[j], nb, diff)
            _triangle_mahalanobis(diff, pc[j], nb, y0, y1, y2, y3, maha)
            c = const[j]
            row = tab[j]
            for b in range(nb):
                row[b] = c - 0.5 * maha[b]
        normalize_columns(tab, nb, w, b0, log_marginal, top, total, scale_bits, False)
        for j in range(k):
            counts[j] += _moments(
                xt, means[j], diff, tab[j], nb, rd, sum_dx[j], second[j * per_component]
            )


@jit()
def _segment_diagonal(
    x, w, start, stop, means, pc, const, log_marginal, counts, sum_dx, second, bsize
):  # pragma: no cover - compiled
    """Diagonal (and spherical) covariances over rows ``start:stop``: ``pc`` is
    ``(K, Dp)``, the inverse standard deviations, ``means`` ``(K, Dp)``, both zero beyond
    D (``Dp`` a multiple of 4); ``sum_dx`` and ``second`` are ``(K, Dp)``. Four
    coordinates per pass over the block."""
    k, dp = means.shape
    xt = zeros_aligned(dp * bsize).reshape((dp, bsize))
    flat = zeros_aligned(k * bsize)
    tab = flat.reshape((k, bsize))
    maha = zeros_aligned(bsize)
    top = zeros_aligned(bsize)
    total = zeros_aligned(bsize)
    scale_bits = zeros_aligned(k * bsize).view(np.int64)
    for b0 in range(start, stop, bsize):
        nb = min(bsize, stop - b0)
        _load_block(x, b0, nb, xt)
        for j in range(k):
            for b in range(nb):
                maha[b] = 0.0
            for i in range(0, dp, 4):
                m0 = means[j, i]
                m1 = means[j, i + 1]
                m2 = means[j, i + 2]
                m3 = means[j, i + 3]
                p0 = pc[j, i]
                p1 = pc[j, i + 1]
                p2 = pc[j, i + 2]
                p3 = pc[j, i + 3]
                x0 = xt[i]
                x1 = xt[i + 1]
                x2 = xt[i + 2]
                x3 = xt[i + 3]
                for b in range(nb):
                    t0 = (x0[b] - m0) * p0
                    t1 = (x1[b] - m1) * p1
                    t2 = (x2[b] - m2) * p2
                    t3 = (x3[b] - m3) * p3
                    maha[b] += t0 * t0 + t1 * t1 + t2 * t2 + t3 * t3
            c = const[j]
            row = tab[j]
            for b in range(nb):
                row[b] = c - 0.5 * maha[b]
        normalize_columns(tab, nb, w, b0, log_marginal, top, total, scale_bits, False)
        for j in range(k):
            r = tab[j]
            s = 0.0
            for b in range(nb):
                s += r[b]
            counts[j] += s
            for i in range(0, dp, 4):
                m0 = means[j, i]
                m1 = means[j, i + 1]
                m2 = means[j, i + 2]
                m3 = means[j, i + 3]
                x0 = xt[i]
                x1 = xt[i + 1]
                x2 = xt[i + 2]
                x3 = xt[i + 3]
                a0 = 0.0
                a1 = 0.0
                a2 = 0.0
                a3 = 0.0
                q0 = 0.0
                q1 = 0.0
                q2 = 0.0
                q3 = 0.0
                for b in range(nb):
                    rb = r[b]
                    t0 = x0[b] - m0
                    t1 = x1[b] - m1
                    t2 = x2[b] - m2
                    t3 = x3[b] - m3
                    v0 = rb * t0
                    v1 = rb * t1
                    v2 = rb * t2
                    v3 = rb * t3
                    a0 += v0
                    a1 += v1
                    a2 += v2
                    a3 += v3
                    q0 += v0 * t0
                    q1 += v1 * t1
                    q2 += v2 * t2
                    q3 += v3 * t3
                sum_dx[j, i] += a0
                sum_dx[j, i + 1] += a1
                sum_dx[j, i + 2] += a2
                sum_dx[j, i + 3] += a3
                second[j, i] += q0
                second[j, i + 1] += q1
                second[j, i + 2] += q2
                second[j, i + 3] += q3


# ------------------------------------------------------------------ the driver


def _padded(n: int) -> int:
    return -(-n // _LANES) * _LANES


def gaussian_e_step(
    covariance_type: str,
    x: np.ndarray,
    weights: np.ndarray,
    means: np.ndarray,
    prec_chol: np.ndarray,
    const: np.ndarray,
    n_threads: int = 1,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Fused E-step statistics of a Gaussian mixture, compiled.

    Parameters
    ----------
    covariance_type : {"full", "tied", "diag", "spherical"}
    x : (N, D) float64 or float32, C-contiguous
        Data; float32 rows are widened to float64 block by block.
    weights : (N,) float64
        Row (sample) weights ``w_n``.
    means : (K, D)
        Current means ``μ_k``; the statistics are moments about them.
    prec_chol : array
        Cholesky factors of the precisions in scikit-learn's convention: ``(K, D, D)``
        upper triangular (full), ``(D, D)`` (tied), ``(K, D)`` (diag), ``(K,)``
        (spherical): ``‖(x - μ_k) P_k‖²`` is the squared Mahalanobis distance.
    const : (K,)
        ``log φ_k - ½ D log 2π + log det P_k``.
    n_threads : int
        Threads to run the row segments on; does not change the result.

    Returns
    -------
    counts : (K,)
        ``Σ_n w_n r_nk``.
    sum_dx : (K, D)
        ``Σ_n w_n r_nk (x_n - μ_k)``.
    sum_dxdx : array
        ``Σ_n w_n r_nk (x_n - μ_k)(x_n - μ_k)ᵀ`` as ``(K, D, D)`` (full), summed over k
        ``(D, D)`` (tied), its diagonal ``(K, D)`` (diag), its trace ``(K,)``
        (spherical).
    log_marginal : (N,)
        ``log p(x_n)``.
    """
    if covariance_type not in ("full", "tied", "diag", "spherical"):
        raise ValueError(
            "covariance_type must be one of 'full', 'tied', 'diag', 'spherical'; "
            f"got {covariance_type!r}"
        )
    x = np.ascontiguousarray(x)
    if x.ndim != 2:
        raise ValueError(f"x must be 2-D (n_samples, n_features); got shape {x.shape}")
    if x.dtype not in (np.float32, np.float64):
        x = x.astype(np.float64)
    w = np.ascontiguousarray(weights, dtype=np.float64)
    means = np.ascontiguousarray(means, dtype=np.float64)
    const = np.ascontiguousarray(const, dtype=np.float64)
    n, d = x.shape
    k = means.shape[0]
    dp = _padded(d)
    width = (
        k * dp * dp if covariance_type == "full" else dp * dp if covariance_type == "tied" else 0
    )
    seg = segment_rows(n, k + 2 * k * dp + width)
    n_seg = max(1, -(-n // seg))
    log_marginal = np.empty(n)
    counts = np.zeros((n_seg, k))
    run: Callable[[int, int, int], Any]
    if covariance_type in ("full", "tied"):
        pc = np.zeros((k, dp, dp))
        pc[:, :d, :d] = prec_chol if covariance_type == "full" else prec_chol[None]
        per = 1 if covariance_type == "full" else 0
        sum_dx = np.zeros((n_seg, k, d))
        second = np.zeros((n_seg, k if per else 1, dp, dp))

        def run(s: int, lo: int, hi: int) -> None:
            _segment_cholesky(
                x,
                w,
                lo,
                hi,
                means,
                pc,
                const,
                log_marginal,
                counts[s],
                sum_dx[s],
                second[s],
                per,
                _CHOLESKY_BLOCK,
            )

    else:
        pc = np.zeros((k, dp))
        pc[:, :d] = prec_chol if covariance_type == "diag" else np.asarray(prec_chol)[:, None]
        padded_means = np.zeros((k, dp))
        padded_means[:, :d] = means
        sum_dx = np.zeros((n_seg, k, dp))
        second = np.zeros((n_seg, k, dp))

        def run(s: int, lo: int, hi: int) -> None:
            _segment_diagonal(
                x,
                w,
                lo,
                hi,
                padded_means,
                pc,
                const,
                log_marginal,
                counts[s],
                sum_dx[s],
                second[s],
                _DIAGONAL_BLOCK,
            )

    bounds = [(s, s * seg, min(n, (s + 1) * seg)) for s in range(n_seg)]
    run_items(run, bounds, n_threads)
    # partial statistics added in segment order: independent of the thread count
    total_counts = _ordered_sum(counts)
    total_dx = _ordered_sum(sum_dx)[:, :d]
    total_second = _ordered_sum(second)
    if covariance_type in ("full", "tied"):
        upper = np.triu(total_second[:, :d, :d])
        full = upper + np.swapaxes(np.triu(upper, 1), -1, -2)
        sum_dxdx = full[0] if covariance_type == "tied" else full
    elif covariance_type == "diag":
        sum_dxdx = total_second[:, :d]
    else:
        sum_dxdx = total_second[:, :d].sum(axis=1)
    return total_counts, total_dx, sum_dxdx, log_marginal


def _ordered_sum(parts: np.ndarray) -> np.ndarray:
    # a reduction over the leading axis adds the segments in order, element by element
    # (one NumPy call instead of one per segment)
    return parts.sum(axis=0)
