"""A deterministic start: model-based hierarchical agglomeration (``init_params="hc"``).

mclust starts EM from a hierarchical agglomeration that merges, at each step, the pair of
groups whose merger least lowers the classification likelihood (Banfield & Raftery 1993;
Fraley 1998, "Algorithms for model-based Gaussian hierarchical clustering", SIAM J. Sci.
Comput. 20, 270-281). For the spherical, equal-volume model (mclust's ``hcEII``) that
criterion is Ward's sum-of-squares criterion (Fraley 1998, section 2), which scipy
implements; it is what this start uses, so the start, and the fit, do not depend on the
random seed. (mclust's own default, ``mclust.options("hcModelName")`` = ``"VVV"`` and
``mclust.options("hcUse")`` = ``"SVD"``, is the VVV criterion on the scaled, SVD-rotated
and whitened data, from duplicates grouped, on at most 2000 random rows, so its starts can
differ: docs/mclust.md, "What differs", lists the four differences.) The agglomeration needs the
``n(n-1)/2`` pairwise distances: it is limited to ``MAX_ROWS`` rows.
"""

from __future__ import annotations

import numpy as np

from ..._lazy import lazy_module

# scipy submodules on first use, so that import latent_em stays light
hierarchy = lazy_module("scipy.cluster.hierarchy")

__all__ = ["MAX_ROWS", "ward_partition"]

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
