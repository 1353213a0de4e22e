"""Compiled fused E-steps of the discrete mixtures: Bernoulli, Poisson, categorical.

Each kernel makes one pass per block of rows: the ``(K, B)`` table of
``log φ_k + log p(x_n | θ_k)``, one log-sum-exp per row (with
:func:`latent_em.compiled.fastexp.exp_inplace`), the weighted responsibilities
``w_n r_nk`` and, while the block is still in cache, the statistics of the M-step.

* Bernoulli and Poisson share one *linear* kernel: their tables are affine in the data,
  ``log p(x | θ_k) = c_k + Σ_d a_kd x_d - g(x)``, with ``a_kd = log θ_kd - log(1 - θ_kd)``
  and ``c_k = log φ_k + Σ_d log(1 - θ_kd)``, ``g = 0`` (Bernoulli), or ``a_kd = log λ_kd``,
  ``c_k = log φ_k - Σ_d λ_kd`` and ``g(x) = Σ_d log x_d!`` from a lookup table (Poisson).
  A block is transposed into a ``(D, B)`` buffer (rows on SIMD lanes), the table is
  formed two components and four coordinates per pass, and the statistics are
  ``N_k = Σ w r`` and ``S_kd = Σ w r x_d``. Parameters on the boundary (``θ`` exactly 0
  or 1, ``λ = 0``) enter the affine part with log 0 replaced by 0, and the cells that use
  them (``x > 0`` under ``θ = 0`` or ``λ = 0``, ``1 - x > 0`` under ``θ = 1``) are then set
  to ``-inf``: the same values as ``bernoulli_log_table`` and ``poisson_log_table``.
* The categorical kernel adds, per row, the log-probability of every item's observed
  code from a ``(Σ_j C_j, K)`` table (``-inf`` for a zero probability), in the NumPy
  model's order (``log φ`` first, then item by item: the same table, bit for bit), and
  adds ``w r`` to the row of every observed (item, category) in ``(Σ_j C_j, K)`` sums.

A row impossible under every component (its largest entry ``-inf``, or NaN) gets that
largest entry as its log-marginal and uniform responsibilities ``1/K``, as
``latent_em.models`` ``posterior_from_table`` gives.

Parallelism and determinism, as :mod:`latent_em.compiled.gaussian`: the rows are cut
into segments whose size depends only on ``N`` and the size of the statistics; each
segment accumulates its own partial statistics, summed in segment order at the end;
segments run on the persistent thread pool of :mod:`.pool` (``nogil`` kernels). The
result is the same, bit for bit, for any number of threads. No BLAS is called.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

from .fastexp import exp_inplace
from .jit import jit
from .normalize import FLUSH_BELOW, normalize_columns
from .pool import run_items

__all__ = [
    "FLUSH_BELOW",
    "bernoulli_e_step",
    "block_rows",
    "categorical_e_step",
    "poisson_e_step",
    "segment_rows",
]

_STRIDE_PAD = 8  # extra columns of the block buffers (see _segment_linear)
_LANES = 4  # coordinates per pass over a block (D is padded to a multiple)
#: bytes of the transposed block ``(Dp, B)`` of the linear kernel: about the L1 cache
_BLOCK_BYTES = 32 << 10
_MIN_BLOCK = 32
_MAX_BLOCK = 256
#: rows per block of the categorical kernel (row-major ``(B, K)`` table)
_CATEGORICAL_BLOCK = 128
#: at most this many segments (partial statistics) per call, at least this many rows each
_MAX_SEGMENTS = 256
_MIN_SEGMENT_ROWS = 4096
_SEGMENT_QUANTUM = 256
#: bytes of per-segment partial statistics allowed per call (fewer, longer segments above)
_PARTIALS_BUDGET = 64 << 20


def segment_rows(n: int, partial_floats: int = 0) -> int:
    """Rows per segment for ``n`` rows when one segment's partial statistics hold
    ``partial_floats`` numbers: a multiple of 256 that depends only on these two (never
    on the thread count), with at most 256 segments and at most 64 MB of partial
    statistics in all."""
    most = max(1, min(_MAX_SEGMENTS, _PARTIALS_BUDGET // max(1, 8 * partial_floats)))
    rows = max(_MIN_SEGMENT_ROWS, -(-n // most))
    return -(-rows // _SEGMENT_QUANTUM) * _SEGMENT_QUANTUM


def block_rows(n_features: int) -> int:
    """Rows per block of the linear kernel: the transposed block of ``n_features``
    (padded to a multiple of 4) float64 columns fills about 32 KB; a multiple of 8
    between 32 and 256."""
    dp = -(-max(1, n_features) // _LANES) * _LANES
    rows = _BLOCK_BYTES // (8 * dp)
    return int(min(_MAX_BLOCK, max(_MIN_BLOCK, rows - rows % 8)))


# ------------------------------------------------------------------ block helpers


@jit()
def _load_block(x, b0, nb, xt):  # pragma: no cover - compiled
    d = x.shape[1]
    for b in range(nb):
        for i in range(d):
            xt[i, b] = x[b0 + b, i]


@jit()
def _linear_table(xt, coef, const, nb, tab):  # pragma: no cover - compiled
    """``tab[j, b] = const[j] + Σ_i coef[j, i] xt[i, b]``; ``coef`` is ``(K, Dp)``,
    zero-padded, ``xt`` has ``Dp`` rows. Two components, four coordinates per pass."""
    k, dp = coef.shape
    for j in range(0, k - 1, 2):
        r0 = tab[j]
        r1 = tab[j + 1]
        c0 = const[j]
        c1 = const[j + 1]
        for b in range(nb):
            r0[b] = c0
            r1[b] = c1
        for i in range(0, dp, 4):
            a00 = coef[j, i]
            a01 = coef[j, i + 1]
            a02 = coef[j, i + 2]
            a03 = coef[j, i + 3]
            a10 = coef[j + 1, i]
            a11 = coef[j + 1, i + 1]
            a12 = coef[j + 1, i + 2]
            a13 = coef[j + 1, i + 3]
            x0 = xt[i]
            x1 = xt[i + 1]
            x2 = xt[i + 2]
            x3 = xt[i + 3]
            for b in range(nb):
                e0 = x0[b]
                e1 = x1[b]
                e2 = x2[b]
                e3 = x3[b]
                r0[b] += a00 * e0 + a01 * e1 + a02 * e2 + a03 * e3
                r1[b] += a10 * e0 + a11 * e1 + a12 * e2 + a13 * e3
    if k % 2:
        j = k - 1
        r0 = tab[j]
        c0 = const[j]
        for b in range(nb):
            r0[b] = c0
        for i in range(0, dp, 4):
            a00 = coef[j, i]
            a01 = coef[j, i + 1]
            a02 = coef[j, i + 2]
            a03 = coef[j, i + 3]
            x0 = xt[i]
            x1 = xt[i + 1]
            x2 = xt[i + 2]
            x3 = xt[i + 3]
            for b in range(nb):
                r0[b] += a00 * x0[b] + a01 * x1[b] + a02 * x2[b] + a03 * x3[b]


@jit()
def _linear_stats(xt, tab, nb, counts, sums):  # pragma: no cover - compiled
    """``counts[j] += Σ_b tab[j, b]``, ``sums[j, i] += Σ_b tab[j, b] xt[i, b]``; two
    components, four coordinates per pass (eight running sums)."""
    k, dp = sums.shape
    for j in range(0, k - 1, 2):
        r0 = tab[j]
        r1 = tab[j + 1]
        s0 = 0.0
        s1 = 0.0
        for b in range(nb):
            s0 += r0[b]
            s1 += r1[b]
        counts[j] += s0
        counts[j + 1] += s1
        for i in range(0, dp, 4):
            x0 = xt[i]
            x1 = xt[i + 1]
            x2 = xt[i + 2]
            x3 = xt[i + 3]
            q00 = 0.0
            q01 = 0.0
            q02 = 0.0
            q03 = 0.0
            q10 = 0.0
            q11 = 0.0
            q12 = 0.0
            q13 = 0.0
            for b in range(nb):
                u = r0[b]
                v = r1[b]
                e0 = x0[b]
                e1 = x1[b]
                e2 = x2[b]
                e3 = x3[b]
                q00 += u * e0
                q01 += u * e1
                q02 += u * e2
                q03 += u * e3
                q10 += v * e0
                q11 += v * e1
                q12 += v * e2
                q13 += v * e3
            sums[j, i] += q00
            sums[j, i + 1] += q01
            sums[j, i + 2] += q02
            sums[j, i + 3] += q03
            sums[j + 1, i] += q10
            sums[j + 1, i + 1] += q11
            sums[j + 1, i + 2] += q12
            sums[j + 1, i + 3] += q13
    if k % 2:
        j = k - 1
        r0 = tab[j]
        s0 = 0.0
        for b in range(nb):
            s0 += r0[b]
        counts[j] += s0
        for i in range(0, dp, 4):
            x0 = xt[i]
            x1 = xt[i + 1]
            x2 = xt[i + 2]
            x3 = xt[i + 3]
            q00 = 0.0
            q01 = 0.0
            q02 = 0.0
            q03 = 0.0
            for b in range(nb):
                u = r0[b]
                q00 += u * x0[b]
                q01 += u * x1[b]
                q02 += u * x2[b]
                q03 += u * x3[b]
            sums[j, i] += q00
            sums[j, i + 1] += q01
            sums[j, i + 2] += q02
            sums[j, i + 3] += q03


@jit()
def _row_term(xt, d, nb, log_factorial, out):  # pragma: no cover - compiled
    """``out[b] = Σ_i log_factorial[xt[i, b]]`` over the ``d`` data rows of the block;
    returns how many values are not a count in ``0 .. len(log_factorial) - 1`` (NaN
    included), in which case ``out`` is not computed."""
    top = log_factorial.shape[0] - 1.0
    bad = 0
    for i in range(d):
        xi = xt[i]
        for b in range(nb):
            v = xi[b]
            bad += not (v >= 0.0 and v <= top)
    if bad:
        return bad
    for b in range(nb):
        out[b] = 0.0
    for i in range(d):
        xi = xt[i]
        for b in range(nb):
            out[b] += log_factorial[np.int64(xi[b])]
    return 0


@jit()
def _normalize_rows(flat, nb, k, w, b0, log_marginal, top, scale_bits):  # pragma: no cover
    """As :func:`latent_em.compiled.normalize.normalize_columns` (uniform responsibilities
    for an impossible row) for a row-major ``(B, K)`` table stored in ``flat``."""
    bad = 0
    for b in range(nb):
        base = b * k
        t = flat[base]
        for j in range(1, k):
            v = flat[base + j]
            t = v if (v > t or v != v) else t
        top[b] = t
        bad += (t - t) != 0.0
    for b in range(nb):
        t = top[b]
        shift = t if (t - t) == 0.0 else 0.0
        base = b * k
        for j in range(k):
            flat[base + j] -= shift
    exp_inplace(flat[: nb * k], scale_bits, FLUSH_BELOW)
    share = 1.0 / k
    for b in range(nb):
        base = b * k
        s = 0.0
        for j in range(k):
            s += flat[base + j]
        t = top[b]
        wb = w[b0 + b]
        if (t - t) == 0.0:
            log_marginal[b0 + b] = math.log(s) + t
            scale = wb / s
            for j in range(k):
                flat[base + j] *= scale
        else:
            log_marginal[b0 + b] = t
            for j in range(k):
                flat[base + j] = share * wb
    return bad


# ------------------------------------------------------------------ segment kernels


@jit()
def _segment_linear(
    x, w, start, stop, coef, const, log_factorial, cells, log_marginal, counts, sums, bsize
):  # pragma: no cover - compiled
    """Bernoulli / Poisson rows ``start:stop`` (see the module docstring). ``coef`` and
    ``sums`` are ``(K, Dp)``, zero beyond D; ``log_factorial`` empty (no row term) or the
    table of ``log c!``; ``cells`` ``(M, 3)`` boundary cells ``(k, d, kind)``: kind 0
    makes ``x_d > 0`` impossible under component k, kind 1 ``1 - x_d > 0``. Returns 0,
    or 1 if a value is not a count of the ``log_factorial`` table (nothing is then
    accumulated for the rest of the segment)."""
    d = x.shape[1]
    k, dp = coef.shape
    # rows of the buffers ``stride`` apart, not a power of two: with 2 KB strides the
    # rows of a block share cache sets (measured: 3x slower at D = 50, B = 256)
    stride = bsize + _STRIDE_PAD
    xt = np.zeros((dp, stride))
    flat = np.zeros(k * stride)
    tab = flat.reshape((k, stride))
    rowterm = np.zeros(bsize)
    top = np.zeros(bsize)
    total = np.zeros(bsize)
    scale_bits = np.zeros(k * stride, dtype=np.int64)
    # statistics accumulated here and added to the outputs at the end: the outputs of
    # neighbouring segments share cache lines, and other threads write to them
    seg_counts = np.zeros(k)
    seg_sums = np.zeros((k, dp))
    has_row_term = log_factorial.shape[0] > 0
    for b0 in range(start, stop, bsize):
        nb = min(bsize, stop - b0)
        _load_block(x, b0, nb, xt)
        _linear_table(xt, coef, const, nb, tab)
        if has_row_term:
            if _row_term(xt, d, nb, log_factorial, rowterm):
                return 1
            for j in range(k):
                row = tab[j]
                for b in range(nb):
                    row[b] -= rowterm[b]
        for m in range(cells.shape[0]):
            row = tab[cells[m, 0]]
            xi = xt[cells[m, 1]]
            if cells[m, 2] == 0:
                for b in range(nb):
                    if xi[b] > 0.0:
                        row[b] = -np.inf
            else:
                for b in range(nb):
                    if 1.0 - xi[b] > 0.0:
                        row[b] = -np.inf
        normalize_columns(tab, nb, w, b0, log_marginal, top, total, scale_bits, True)
        _linear_stats(xt, tab, nb, seg_counts, seg_sums)
    counts += seg_counts
    sums += seg_sums
    return 0


@jit()
def _segment_categorical(
    codes, w, start, stop, log_probs, offsets, sizes, log_weights, log_marginal, counts, sums, bsize
):  # pragma: no cover - compiled
    """Categorical rows ``start:stop``: ``codes`` ``(N, J)`` int64, ``log_probs`` and
    ``sums`` ``(Σ_j C_j, K)`` (item j's category c in row ``offsets[j] + c``). Returns 0,
    or 1 if a code is outside ``0 .. sizes[j] - 1`` (nothing is then accumulated for the
    rest of the segment)."""
    nj = codes.shape[1]
    k = log_weights.shape[0]
    flat = np.zeros(bsize * k)
    index = np.zeros((bsize, nj), dtype=np.int64)
    top = np.zeros(bsize)
    scale_bits = np.zeros(bsize * k, dtype=np.int64)
    # statistics accumulated here and added to the outputs at the end: the outputs of
    # neighbouring segments share cache lines, and other threads write to them
    seg_counts = np.zeros(k)
    seg_sums = np.zeros(sums.shape)
    for b0 in range(start, stop, bsize):
        nb = min(bsize, stop - b0)
        bad = 0
        for b in range(nb):
            for j in range(nj):
                c = codes[b0 + b, j]
                bad += (c < 0) | (c >= sizes[j])
                index[b, j] = offsets[j] + c
        if bad:
            return 1
        # log φ first, then the items in order: the NumPy model's additions exactly
        for b in range(nb):
            base = b * k
            for q in range(k):
                flat[base + q] = log_weights[q]
            for j in range(nj):
                row = log_probs[index[b, j]]
                for q in range(k):
                    flat[base + q] += row[q]
        _normalize_rows(flat, nb, k, w, b0, log_marginal, top, scale_bits)
        for b in range(nb):
            base = b * k
            for q in range(k):
                seg_counts[q] += flat[base + q]
            for j in range(nj):
                row = seg_sums[index[b, j]]
                for q in range(k):
                    row[q] += flat[base + q]
    counts += seg_counts
    sums += seg_sums
    return 0


# ------------------------------------------------------------------ the drivers


def _run_segments(run: Callable[[int, int, int], int], n: int, seg: int, n_threads: int) -> int:
    """Run ``run(s, lo, hi)`` over the segments; returns the sum of their flags."""
    n_seg = max(1, -(-n // seg))
    bounds = [(s, s * seg, min(n, (s + 1) * seg)) for s in range(n_seg)]
    flags = [0] * n_seg

    def item(s: int, lo: int, hi: int) -> None:
        flags[s] = int(run(s, lo, hi))

    run_items(item, bounds, n_threads)
    return sum(flags)


def _ordered_sum(parts: np.ndarray) -> np.ndarray:
    # a reduction over the leading axis adds the segments in order, element by element
    # (one NumPy call instead of one per segment)
    return parts.sum(axis=0)


def _padded(n: int) -> int:
    return -(-n // _LANES) * _LANES


def _as_float_matrix(x: np.ndarray, name: str = "x") -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"{name} must be 2-D (n_samples, n_features); got shape {x.shape}")
    return np.ascontiguousarray(x, dtype=np.float64)


def _row_weights(weights: np.ndarray, n: int) -> np.ndarray:
    w = np.ascontiguousarray(weights, dtype=np.float64)
    if w.shape != (n,):
        raise ValueError(f"weights must have shape ({n},) (one per row); got {w.shape}")
    return w


def _component_log_weights(log_weights: np.ndarray, k: int) -> np.ndarray:
    lw = np.ascontiguousarray(log_weights, dtype=np.float64)
    if lw.shape != (k,):
        raise ValueError(f"log_weights must have shape ({k},); got {lw.shape}")
    return lw


def _finite_log(p: np.ndarray, boundary: np.ndarray) -> np.ndarray:
    """``log p`` where not ``boundary``, 0 there (no warning)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(boundary, 0.0, np.log(np.where(boundary, 1.0, p)))


def _linear_e_step(
    x: np.ndarray,
    w: np.ndarray,
    coef: np.ndarray,
    const: np.ndarray,
    log_factorial: np.ndarray,
    cells: np.ndarray,
    n_threads: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n, d = x.shape
    k = coef.shape[0]
    dp = _padded(d)
    padded = np.zeros((k, dp))
    padded[:, :d] = coef
    seg = segment_rows(n, k + k * dp)
    n_seg = max(1, -(-n // seg))
    log_marginal = np.empty(n)
    counts = np.zeros((n_seg, k))
    sums = np.zeros((n_seg, k, dp))
    bsize = block_rows(d)

    def run(s: int, lo: int, hi: int) -> int:
        return _segment_linear(
            x,
            w,
            lo,
            hi,
            padded,
            const,
            log_factorial,
            cells,
            log_marginal,
            counts[s],
            sums[s],
            bsize,
        )

    if _run_segments(run, n, seg, n_threads):
        raise ValueError(
            "x must hold non-negative integer counts no larger than "
            f"{log_factorial.shape[0] - 1} (the log-factorial table's last entry)"
        )
    # partial statistics added in segment order: independent of the thread count
    return _ordered_sum(counts), _ordered_sum(sums)[:, :d], log_marginal


def bernoulli_e_step(
    x: np.ndarray,
    weights: np.ndarray,
    log_weights: np.ndarray,
    probs: np.ndarray,
    n_threads: int = 1,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fused E-step statistics of a Bernoulli mixture, compiled.

    Parameters
    ----------
    x : (N, D) array_like
        0/1 data (any real or boolean dtype; converted to float64).
    weights : (N,) array_like
        Row (sample) weights ``w_n``.
    log_weights : (K,) array_like
        ``log φ_k`` (``-inf`` for an empty component).
    probs : (K, D) array_like
        ``θ_kd = P(x_d = 1 | z = k)``; 0 and 1 are legal (cells using them are ``-inf``).
    n_threads : int, default 1
        Threads to run the row segments on; does not change the result.

    Returns
    -------
    counts : (K,) numpy.ndarray
        ``N_k = Σ_n w_n r_nk``.
    sum_x : (K, D) numpy.ndarray
        ``S_kd = Σ_n w_n r_nk x_nd``.
    log_marginal : (N,) numpy.ndarray
        ``log p(x_n)``.
    """
    x = _as_float_matrix(x)
    probs = np.asarray(probs, dtype=np.float64)
    n, d = x.shape
    if probs.ndim != 2 or probs.shape[1] != d:
        raise ValueError(f"probs must have shape (K, {d}); got {probs.shape}")
    k = probs.shape[0]
    w = _row_weights(weights, n)
    zero1 = probs <= 0.0  # θ = 0: x = 1 impossible
    zero0 = probs >= 1.0  # θ = 1: x = 0 impossible
    log1 = _finite_log(probs, zero1)
    log0 = _finite_log(1.0 - probs, zero0)
    const = _component_log_weights(log_weights, k) + log0.sum(axis=1)
    cells = np.concatenate(
        [
            np.column_stack([np.argwhere(zero1), np.zeros(int(zero1.sum()), dtype=np.intp)]),
            np.column_stack([np.argwhere(zero0), np.ones(int(zero0.sum()), dtype=np.intp)]),
        ]
    ).astype(np.int64)
    return _linear_e_step(
        x, w, log1 - log0, const, np.zeros(0), np.ascontiguousarray(cells), n_threads
    )


def poisson_e_step(
    x: np.ndarray,
    weights: np.ndarray,
    log_weights: np.ndarray,
    rates: np.ndarray,
    log_factorial: np.ndarray,
    n_threads: int = 1,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fused E-step statistics of a Poisson mixture, compiled.

    Parameters
    ----------
    x : (N, D) array_like
        Counts (any real dtype; converted to float64).
    weights : (N,) array_like
        Row (sample) weights ``w_n``.
    log_weights : (K,) array_like
        ``log φ_k`` (``-inf`` for an empty component).
    rates : (K, D) array_like
        ``λ_kd ≥ 0``; a rate of 0 is legal (a positive count under it is ``-inf``).
    log_factorial : (M,) array_like
        ``log c!`` for ``c = 0 .. M - 1`` (``M ≥ 1``), covering every count in ``x``.
    n_threads : int, default 1
        Threads to run the row segments on; does not change the result.

    Returns
    -------
    counts : (K,) numpy.ndarray
        ``N_k = Σ_n w_n r_nk``.
    sum_x : (K, D) numpy.ndarray
        ``S_kd = Σ_n w_n r_nk x_nd``.
    log_marginal : (N,) numpy.ndarray
        ``log p(x_n)``.

    Raises
    ------
    ValueError
        If a value of ``x`` is negative, NaN, or beyond the ``log_factorial`` table.
    """
    x = _as_float_matrix(x)
    rates = np.asarray(rates, dtype=np.float64)
    n, d = x.shape
    if rates.ndim != 2 or rates.shape[1] != d:
        raise ValueError(f"rates must have shape (K, {d}); got {rates.shape}")
    k = rates.shape[0]
    table = np.ascontiguousarray(log_factorial, dtype=np.float64)
    if table.ndim != 1 or table.shape[0] < 1:
        raise ValueError(f"log_factorial must be a non-empty 1-D table; got shape {table.shape}")
    w = _row_weights(weights, n)
    zero = rates <= 0.0
    const = _component_log_weights(log_weights, k) - rates.sum(axis=1)
    cells = np.column_stack([np.argwhere(zero), np.zeros(int(zero.sum()), dtype=np.intp)])
    return _linear_e_step(
        x,
        w,
        _finite_log(rates, zero),
        const,
        table,
        np.ascontiguousarray(cells, dtype=np.int64),
        n_threads,
    )


def categorical_e_step(
    codes: np.ndarray,
    weights: np.ndarray,
    log_weights: np.ndarray,
    probs: Sequence[np.ndarray],
    n_threads: int = 1,
) -> tuple[np.ndarray, tuple[np.ndarray, ...], np.ndarray]:
    """Fused E-step statistics of a categorical mixture (latent class model), compiled.

    Parameters
    ----------
    codes : (N, J) array_like
        Category codes ``0 .. C_j - 1`` (converted to integers).
    weights : (N,) array_like
        Row (sample) weights ``w_n``.
    log_weights : (K,) array_like
        ``log φ_k`` (``-inf`` for an empty component).
    probs : sequence of J (K, C_j) arrays
        ``P(x_j = c | z = k)``; a zero probability makes that code impossible (``-inf``).
    n_threads : int, default 1
        Threads to run the row segments on; does not change the result.

    Returns
    -------
    counts : (K,) numpy.ndarray
        ``N_k = Σ_n w_n r_nk``.
    sum_onehot : tuple of J (K, C_j) numpy.ndarray
        ``Σ_n w_n r_nk [x_nj = c]``.
    log_marginal : (N,) numpy.ndarray
        ``log p(x_n)``.

    Raises
    ------
    ValueError
        If a code is negative or not below its item's number of categories.
    """
    codes = np.asarray(codes)
    if codes.ndim != 2:
        raise ValueError(f"codes must be 2-D (n_samples, n_items); got shape {codes.shape}")
    codes = np.ascontiguousarray(codes, dtype=np.int64)
    n, nj = codes.shape
    if len(probs) != nj:
        raise ValueError(f"codes has {nj} columns but probs describes {len(probs)} items")
    tables = [np.asarray(p, dtype=np.float64) for p in probs]
    k = tables[0].shape[0] if tables else np.shape(log_weights)[0]
    for j, p in enumerate(tables):
        if p.ndim != 2 or p.shape[0] != k:
            raise ValueError(f"probs[{j}] must have shape ({k}, C_{j}); got {p.shape}")
    lw = _component_log_weights(log_weights, k)
    w = _row_weights(weights, n)
    sizes = np.array([p.shape[1] for p in tables], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    with np.errstate(divide="ignore"):
        log_probs = np.ascontiguousarray(
            np.concatenate([np.log(p).T for p in tables]) if tables else np.zeros((0, k))
        )
    total = int(sizes.sum())
    seg = segment_rows(n, k + total * k)
    n_seg = max(1, -(-n // seg))
    log_marginal = np.empty(n)
    counts = np.zeros((n_seg, k))
    sums = np.zeros((n_seg, total, k))

    def run(s: int, lo: int, hi: int) -> int:
        return _segment_categorical(
            codes,
            w,
            lo,
            hi,
            log_probs,
            offsets,
            sizes,
            lw,
            log_marginal,
            counts[s],
            sums[s],
            _CATEGORICAL_BLOCK,
        )

    if _run_segments(run, n, seg, n_threads):
        bad = (codes < 0) | (codes >= sizes[None, :])
        row, col = np.argwhere(bad)[0]
        raise ValueError(
            f"column {col} holds the code {codes[row, col]} at row {row}, but the parameters "
            f"give that item only {sizes[col]} categories (codes 0 .. {sizes[col] - 1})"
        )
    flat_sums = _ordered_sum(sums)
    per_item = tuple(
        np.ascontiguousarray(flat_sums[o : o + c].T) for o, c in zip(offsets, sizes, strict=True)
    )
    return _ordered_sum(counts), per_item, log_marginal
