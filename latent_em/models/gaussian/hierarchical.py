"""Deterministic starts: model-based hierarchical agglomeration (``init_params="hc"``,
Ward's; ``init_params="mclust"``, mclust's default, :func:`vvv_partition`).

mclust starts EM from a hierarchical agglomeration that merges, at each step, the pair of
groups whose merger least lowers the classification likelihood (Banfield & Raftery 1993;
Fraley 1998, "Algorithms for model-based Gaussian hierarchical clustering", SIAM J. Sci.
Comput. 20, 270-281). For the spherical, equal-volume model (mclust's ``hcEII``) that
criterion is Ward's sum-of-squares criterion (Fraley 1998, section 2), which scipy
implements; it is what ``"hc"`` uses, so the start, and the fit, do not depend on the
random seed. mclust's own default, ``mclust.options("hcModelName")`` = ``"VVV"`` and
``mclust.options("hcUse")`` = ``"SVD"``, is the regularized VVV criterion on the scaled,
SVD-rotated and whitened data, from repeated rows grouped: ``"mclust"``
(:func:`vvv_partition`; mclust agglomerates at most 2000 random rows, this all of them).
docs/mclust.md, "What differs", lists the differences. The agglomerations need
``O(n²)`` memory: they are limited to ``MAX_ROWS`` rows.
"""

from __future__ import annotations

import numpy as np

from ..._lazy import lazy_module

# scipy submodules on first use, so that import latent_em stays light
hierarchy = lazy_module("scipy.cluster.hierarchy")

__all__ = ["MAX_ROWS", "ward_partition", "vvv_partition", "svd_transform"]

#: largest number of rows of the agglomeration (its distances take 8·n²/2 bytes: 400 MB)
MAX_ROWS = 10_000


def ward_partition(x: np.ndarray, k: int) -> np.ndarray:
    """Labels ``0 .. k-1`` of the ``k`` groups of Ward's agglomeration of the rows of
    ``x``, numbered in the order of their first row."""
    n = x.shape[0]
    if n > MAX_ROWS:
        raise ValueError(
            f"init_params='hc' agglomerates all rows and is limited to {MAX_ROWS} rows; X "
            f"has {n}: use init_params='kmeans' (or fit on a subsample first)"
        )
    if k == 1:
        return np.zeros(n, dtype=np.intp)
    tree = hierarchy.linkage(np.asarray(x, dtype=float), method="ward")
    raw = hierarchy.cut_tree(tree, n_clusters=k).reshape(-1)
    _, first = np.unique(raw, return_index=True)
    order = np.argsort(np.argsort(first))  # group -> rank of its first row
    return order[raw].astype(np.intp)


def svd_transform(x: np.ndarray) -> np.ndarray:
    """mclust's ``hc(..., use = "SVD")`` data (``R/mbahc.R``): the columns centred and
    scaled to unit variance (R's ``scale``, ``n - 1`` denominator; constant columns
    dropped), then ``Z = X_s V diag(s)^(-1/2)`` for the SVD ``X_s = U diag(s) Vᵀ``."""
    x = np.asarray(x, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        xs = (x - x.mean(axis=0)) / x.std(axis=0, ddof=1)
    xs = xs[:, np.all(np.isfinite(xs), axis=0)]
    _, s, vt = np.linalg.svd(xs, full_matrices=False)
    keep = s > 0
    return (xs @ vt[keep].T) / np.sqrt(s[keep])


def _vvv_terms(counts: np.ndarray, scatter: np.ndarray, alpha: float, beta: float) -> np.ndarray:
    """mclust's ``vvvtij`` (``src/mclust.f``) for groups of ``counts`` rows with scatter
    matrices ``scatter``: ``l log(|W/l| + β (tr W + α)/l)``, the determinant left out
    (it is 0) for ``l <= p``."""
    p = scatter.shape[-1]
    trace = np.trace(scatter, axis1=-2, axis2=-1)
    det = np.zeros_like(trace)
    big = counts > p
    if np.any(big):
        det[big] = np.clip(np.linalg.det(scatter[big] / counts[big, None, None]), 0.0, None)
    return counts * np.log(det + beta * (trace + alpha) / counts)


def vvv_partition(x: np.ndarray, k: int, *, alpha: float = 1.0, beta: float = 1.0) -> np.ndarray:
    """Labels ``0 .. k-1`` (numbered in the order of their first row) of mclust's default
    hierarchical start, ``hc(x, modelName = "VVV", use = "SVD")`` cut at ``k`` groups.

    Starting from the groups of identical rows (mclust's ``dupPartition``), the pair of
    groups merged next is the one with the smallest increase of
    ``Σ_g l_g log(|W_g/l_g| + β (tr W_g + α)/l_g)`` (mclust's ``hcvvv``/``vvvtij``, the
    regularized VVV classification criterion of Fraley 1998), on :func:`svd_transform` of
    the data, with ``α`` = (alpha) ``tr W(Z) / (n p)``, as mclust's ``hcVVV``.
    """
    z = svd_transform(x)
    n, p = z.shape
    if n > MAX_ROWS:
        raise ValueError(
            f"init_params='mclust' agglomerates all rows and is limited to {MAX_ROWS} rows; "
            f"X has {n}: use init_params='kmeans' (or fit on a subsample first)"
        )
    unique, inverse = np.unique(z, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    g = unique.shape[0]
    if k >= g or k == 1:
        labels = inverse if k >= g else np.zeros(n, dtype=np.intp)
        return _first_row_order(labels)
    centred = z - z.mean(axis=0)
    a = max(alpha * float(np.sum(centred**2)) / (n * p), np.finfo(float).eps)
    counts = np.bincount(inverse, minlength=g).astype(float)
    means = unique.copy()
    scatter = np.zeros((g, p, p))
    terms = _vvv_terms(counts, scatter, a, beta)
    active = np.ones(g, dtype=bool)
    cost = np.full((g, g), np.inf)

    def row(i: int) -> np.ndarray:
        """Increase of the criterion merging group i with every group (inf if inactive)."""
        others = np.flatnonzero(active & (np.arange(g) != i))
        out = np.full(g, np.inf)
        if others.size == 0:
            return out
        nij = counts[i] + counts[others]
        diff = means[others] - means[i]
        w = (
            scatter[i][None]
            + scatter[others]
            + ((counts[i] * counts[others]) / nij)[:, None, None]
            * np.einsum("md,me->mde", diff, diff)
        )
        out[others] = _vvv_terms(nij, w, a, beta) - terms[i] - terms[others]
        return out

    for i in range(g):
        cost[i] = row(i)
    best = cost.min(axis=1)
    partner = cost.argmin(axis=1)
    groups = np.arange(g)  # row group -> current group
    for _ in range(g - k):
        i = int(np.argmin(np.where(active, best, np.inf)))
        j = int(partner[i])
        i, j = min(i, j), max(i, j)
        nij = counts[i] + counts[j]
        diff = means[j] - means[i]
        scatter[i] = scatter[i] + scatter[j] + (counts[i] * counts[j] / nij) * np.outer(diff, diff)
        means[i] = (counts[i] * means[i] + counts[j] * means[j]) / nij
        counts[i] = nij
        terms[i] = _vvv_terms(counts[i : i + 1], scatter[i : i + 1], a, beta)[0]
        active[j] = False
        groups[groups == j] = i
        cost[j] = np.inf
        cost[:, j] = np.inf
        new = row(i)
        cost[i] = new
        cost[:, i] = new
        best[i] = new.min()
        partner[i] = int(new.argmin())
        best[j] = np.inf
        for r in np.flatnonzero(active):
            if r == i:
                continue
            if partner[r] in (i, j):
                best[r] = cost[r].min()
                partner[r] = int(cost[r].argmin())
            elif new[r] < best[r]:
                best[r] = new[r]
                partner[r] = i
    return _first_row_order(groups[inverse])


def _first_row_order(raw: np.ndarray) -> np.ndarray:
    _, first = np.unique(raw, return_index=True)
    order = np.argsort(np.argsort(first))
    _, dense = np.unique(raw, return_inverse=True)
    return order[dense.reshape(-1)].astype(np.intp)
