"""The log-sum-exp of a block's table of log weights, shared by the compiled E-steps.

``tab`` is ``(K, B)``: component by row, rows on SIMD lanes. Each row is shifted by its
largest entry, exponentiated with :func:`latent_em.compiled.fastexp.exp_inplace`,
summed, and scaled by its sample weight over the sum, giving ``w_n r_nk`` in place and
``log p(x_n)``.
"""

from __future__ import annotations

import math

import numpy as np

from .fastexp import exp_inplace
from .jit import jit

__all__ = ["FLUSH_BELOW", "normalize_columns"]

#: log-ratios (to a row's largest entry) below this give responsibility 0 rather than
#: exp(·) < 7e-218, a precaution: products of such responsibilities with the data could
#: reach subnormal numbers, on which arithmetic can be many times slower (the NumPy
#: kernels measured ~10x on AMD Zen 3 and clip at the same -500; not re-measured for the
#: compiled kernels). A row's total loses less than K·7e-218 relative (nothing, in
#: float64), and a component's statistics lose less than 7e-218 per row: nothing unless
#: its count is itself below N·7e-218, far below the M-step's empty-component threshold.
FLUSH_BELOW = -500.0


@jit()
def normalize_columns(
    tab, nb, w, b0, log_marginal, top, total, scale_bits, uniform_if_impossible
):  # pragma: no cover - compiled
    """Columns ``0 .. nb-1`` of ``tab`` (``(K, B)`` log weights) -> ``w_n r_nk`` in place;
    ``log p(x_n)`` into ``log_marginal[b0:b0 + nb]``.

    A row whose largest entry is not finite (all ``-inf``, or NaN) gets that value as
    its log-marginal and, if ``uniform_if_impossible``, uniform responsibilities
    (``w_n / K`` each: the discrete mixtures' ``posterior_from_table``), else NaN
    (the Gaussian mixture's NumPy normalization). ``top``, ``total`` (``B``) and
    ``scale_bits`` (int64, ``K·B``) are scratch.
    """
    k = tab.shape[0]
    for b in range(nb):
        top[b] = tab[0, b]
    for j in range(1, k):
        for b in range(nb):
            v = tab[j, b]
            t = top[b]
            top[b] = v if (v > t or v != v) else t
    bad = 0
    for b in range(nb):
        t = top[b]
        bad += (t - t) != 0.0  # inf - inf and NaN - NaN are NaN
    worst = top
    if bad:
        worst = top[:nb].copy()
        for b in range(nb):
            t = top[b]
            if (t - t) != 0.0:
                top[b] = 0.0
    for j in range(k):
        for b in range(nb):
            tab[j, b] -= top[b]
    exp_inplace(tab.reshape(tab.size), scale_bits, FLUSH_BELOW)
    for b in range(nb):
        total[b] = 0.0
    for j in range(k):
        for b in range(nb):
            total[b] += tab[j, b]
    for b in range(nb):
        log_marginal[b0 + b] = math.log(total[b]) + top[b]
        total[b] = w[b0 + b] / total[b]  # now the scale of the row
    for j in range(k):
        for b in range(nb):
            tab[j, b] *= total[b]
    if bad:
        fill = 1.0 / k if uniform_if_impossible else np.nan
        for b in range(nb):
            t = worst[b]
            if (t - t) != 0.0:
                log_marginal[b0 + b] = t
                for j in range(k):
                    tab[j, b] = fill * w[b0 + b]
