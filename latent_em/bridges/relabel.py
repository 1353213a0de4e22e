"""Relabeling posterior draws of a mixture to a reference solution (the EM estimate).

Two ways to choose, for every draw, the permutation of its components:

* :func:`allocation_permutations` — on the *whole component*: the draw's allocation
  probabilities ``p_nk`` (responsibilities, which carry weights, means, variances and
  every other parameter) are matched to the reference allocation ``q_nk`` by the
  permutation ``σ`` minimizing the Kullback-Leibler divergence
  ``Σ_n Σ_k q_nk log(q_nk / p_nσ(k))``. This is one step of Stephens' (2000) relabeling
  algorithm (M. Stephens, "Dealing with label switching in mixture models", JRSS B 62,
  795-809, Algorithm 2) with the EM allocation as the fixed reference, as in the pivotal
  reordering of Marin, Mengersen & Robert (2005). Used by the cross-check whenever the
  builder maps draws back to latent_em parameters.
* :func:`feature_permutations` — nearest components in a feature space (squared
  distance); the fallback for builders without a latent_em model.

Features such as standardized means and raw weights ignore the variances: a small
component whose mean wanders in a draw can be closer to the dominant component's
reference than its own, and the dominant component then inherits the small one's
variance (issue 15: posterior mean variance 13.8-30.9 for a median of 4.6). The
allocation cost sees the whole component and does not make that mistake
(``tests/test_bridges_relabel.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

__all__ = [
    "allocation_cost",
    "allocation_permutations",
    "feature_permutations",
    "permute_components",
    "relabel_by_allocation",
]

#: responsibilities are clipped here before the logarithm (a draw can give a row zero
#: probability in a component; the cost must stay finite to rank permutations)
TINY = 1e-300


def allocation_cost(reference: np.ndarray, allocation: np.ndarray) -> np.ndarray:
    """``cost[i, j] = -Σ_n q_ni log p_nj``: reference component ``i`` labeled by the draw's ``j``.

    Parameters
    ----------
    reference : (n, K)
        Reference allocation probabilities ``q`` (EM responsibilities).
    allocation : (n, K)
        The draw's allocation probabilities ``p``.

    Returns
    -------
    (K, K) array
        The permutation minimizing ``Σ_i cost[i, σ(i)]`` minimizes the KL divergence
        ``Σ_n Σ_i q_ni log(q_ni / p_nσ(i))`` (the entropy term does not depend on ``σ``).
    """
    logp = np.log(np.clip(np.asarray(allocation, dtype=float), TINY, None))
    return -np.asarray(reference, dtype=float).T @ logp


def allocation_permutations(reference: np.ndarray, allocations: np.ndarray) -> np.ndarray:
    """Stephens' KL relabeling of every draw to a fixed reference allocation.

    Parameters
    ----------
    reference : (n, K)
        Reference allocation probabilities (EM responsibilities).
    allocations : (..., n, K)
        Allocation probabilities of every draw.

    Returns
    -------
    (..., K) int array
        ``perms[..., i]`` is the draw's component now labeled ``i``.
    """
    ref = np.asarray(reference, dtype=float)
    alloc = np.asarray(allocations, dtype=float)
    if ref.ndim != 2 or alloc.shape[-2:] != ref.shape:
        raise ValueError(
            f"allocations must have shape (..., n, K) = (..., {ref.shape}); got {alloc.shape}"
        )
    lead = alloc.shape[:-2]
    flat = alloc.reshape(-1, *ref.shape)
    perms = np.empty((flat.shape[0], ref.shape[1]), dtype=np.intp)
    for s, a in enumerate(flat):
        _, perms[s] = linear_sum_assignment(allocation_cost(ref, a))
    return perms.reshape(*lead, ref.shape[1])


def feature_permutations(reference: np.ndarray, features: np.ndarray) -> np.ndarray:
    """Nearest-feature relabeling: ``Σ_i ‖reference_i - features_σ(i)‖²`` minimized per draw.

    Parameters
    ----------
    reference : (K, F)
    features : (..., K, F)

    Returns
    -------
    (..., K) int array
    """
    ref = np.asarray(reference, dtype=float)
    feats = np.asarray(features, dtype=float)
    lead = feats.shape[:-2]
    flat = feats.reshape(-1, *feats.shape[-2:])
    perms = np.empty((flat.shape[0], feats.shape[-2]), dtype=np.intp)
    for s, f in enumerate(flat):
        diff = ref[:, None, :] - f[None, :, :]
        _, perms[s] = linear_sum_assignment(np.einsum("abf,abf->ab", diff, diff))
    return perms.reshape(*lead, feats.shape[-2])


def permute_components(
    draws: Mapping[str, Any], perms: np.ndarray, component_axes: Mapping[str, int | None]
) -> dict[str, np.ndarray]:
    """Apply per-draw permutations ``(chain, draw, K)`` to the component axis of every
    parameter (``component_axes[name]`` counts after chain and draw; ``None`` leaves the
    parameter as it is)."""
    c, s, k = perms.shape
    out: dict[str, np.ndarray] = {}
    for name, values in draws.items():
        axis = component_axes.get(name)
        values = np.asarray(values)
        if axis is None:
            out[name] = values
            continue
        moved = np.moveaxis(values, axis + 2, 2)  # (chain, draw, K, ...)
        idx = perms.reshape(c, s, k, *([1] * (moved.ndim - 3)))
        picked = np.take_along_axis(moved, idx, axis=2)
        out[name] = np.moveaxis(picked, 2, axis + 2)
    return out


def relabel_by_allocation(
    draws: Mapping[str, Any],
    component_axes: Mapping[str, int | None],
    reference: np.ndarray,
    allocate: Callable[[dict[str, np.ndarray]], tuple[np.ndarray, float]],
) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray, np.ndarray]:
    """Relabel every draw by :func:`allocation_permutations`, streaming over the draws.

    Parameters
    ----------
    draws : dict of str to (chain, draw, ...) arrays
    component_axes : dict of str to int or None
        Component axis of every parameter (after chain and draw).
    reference : (n, K)
        Reference allocation probabilities (EM responsibilities).
    allocate : callable
        ``allocate({name: value of one draw}) -> (responsibilities (n, K), log-likelihood)``.

    Returns
    -------
    relabeled : dict of str to numpy.ndarray
    perms : (chain, draw, K) int array
    membership : (chain, n, K)
        Posterior allocation probabilities of every chain: its relabeled
        responsibilities averaged over its draws.
    log_likelihood : (chain, draw)
        Log-likelihood of every draw.
    """
    arrays = {k: np.asarray(v) for k, v in draws.items()}
    c, s = next(iter(arrays.values())).shape[:2]
    ref = np.asarray(reference, dtype=float)
    k = ref.shape[1]
    perms = np.empty((c, s, k), dtype=np.intp)
    membership = np.zeros((c, *ref.shape))
    loglik = np.empty((c, s))
    for i in range(c):
        for j in range(s):
            resp, ll = allocate({name: v[i, j] for name, v in arrays.items()})
            resp = np.asarray(resp, dtype=float)
            _, cols = linear_sum_assignment(allocation_cost(ref, resp))
            perms[i, j] = cols
            membership[i] += resp[:, cols]
            loglik[i, j] = ll
    return permute_components(arrays, perms, component_axes), perms, membership / s, loglik
