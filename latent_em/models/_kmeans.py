"""k-means++ seeding and Lloyd's algorithm, used to initialize mixtures."""

from __future__ import annotations

import numpy as np

__all__ = ["kmeans_plusplus", "lloyd", "squared_distances"]


def squared_distances(x: np.ndarray, centers: np.ndarray) -> np.ndarray:
    """``(n, K)`` squared Euclidean distances, clipped at zero against round-off."""
    d = (
        np.einsum("nd,nd->n", x, x)[:, None]
        - 2.0 * (x @ centers.T)
        + np.einsum("kd,kd->k", centers, centers)[None, :]
    )
    return np.maximum(d, 0.0)


def kmeans_plusplus(x: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k-means++ seeding (Arthur & Vassilvitskii 2007) with greedy local trials.

    Each new center is the best (lowest potential) of ``2 + log k`` candidates drawn
    with probability proportional to the squared distance to the nearest center, as in
    scikit-learn. When every point coincides with a chosen center, candidates are drawn
    uniformly (duplicated centers are then unavoidable).
    """
    n = x.shape[0]
    n_trials = 2 + int(np.log(k))
    centers = np.empty((k, x.shape[1]))
    centers[0] = x[rng.integers(n)]
    closest = squared_distances(x, centers[:1])[:, 0]
    for c in range(1, k):
        total = closest.sum()
        if total > 0:
            cdf = np.cumsum(closest)
            candidates = np.searchsorted(cdf, rng.uniform(size=n_trials) * total, side="right")
            candidates = np.minimum(candidates, n - 1)
        else:
            candidates = rng.integers(n, size=n_trials)
        dist = np.minimum(closest[None, :], squared_distances(x, x[candidates]).T)
        best = int(np.argmin(dist.sum(axis=1)))
        centers[c] = x[candidates[best]]
        closest = dist[best]
    return centers


def lloyd(x: np.ndarray, centers: np.ndarray, max_iter: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """Lloyd's k-means iterations from ``centers``; returns ``(centers, labels)``.

    A cluster that loses all its points keeps its previous center.
    """
    labels = np.argmin(squared_distances(x, centers), axis=1)
    k = centers.shape[0]
    for _ in range(max_iter):
        counts = np.bincount(labels, minlength=k).astype(float)
        sums = np.stack(
            [np.bincount(labels, weights=x[:, d], minlength=k) for d in range(x.shape[1])], axis=1
        )
        nonempty = counts > 0
        centers = centers.copy()
        centers[nonempty] = sums[nonempty] / counts[nonempty, None]
        new_labels = np.argmin(squared_distances(x, centers), axis=1)
        if np.array_equal(new_labels, labels):
            break
        labels = new_labels
    return centers, labels
