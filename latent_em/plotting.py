"""Plots (matplotlib is imported lazily, with a non-interactive backend)."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["plot_gaussian_mixture", "plot_criterion"]


def pyplot() -> Any:
    """matplotlib.pyplot, switched to the non-interactive Agg backend unless inline."""
    import matplotlib

    if matplotlib.get_backend().lower() not in ("agg", "module://matplotlib_inline.backend_inline"):
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_gaussian_mixture(
    X: np.ndarray,
    weights: np.ndarray,
    means: np.ndarray,
    covariances_full: np.ndarray,
    path: str,
    *,
    labels: np.ndarray | None = None,
    feature_names: tuple[str, str] = ("x1", "x2"),
    title: str = "Gaussian mixture",
) -> str:
    """Scatter the first two columns of ``X`` with 1-, 2- and 3-sigma ellipses per component.

    ``covariances_full`` has shape ``(K, D, D)``. Writes a PNG to ``path`` and returns it.
    """
    plt = pyplot()
    from matplotlib.patches import Ellipse

    fig, ax = plt.subplots(figsize=(6.4, 4.8), dpi=110)
    colors = plt.get_cmap("tab10")
    c = None if labels is None else [colors(int(k) % 10) for k in labels]
    ax.scatter(X[:, 0], X[:, 1], s=10, c=c, alpha=0.6, edgecolors="none")
    for k, (w, mu, cov) in enumerate(zip(weights, means, covariances_full, strict=True)):
        vals, vecs = np.linalg.eigh(cov[:2, :2])
        angle = float(np.degrees(np.arctan2(vecs[1, -1], vecs[0, -1])))
        for n_sd in (1, 2, 3):
            width, height = 2 * n_sd * np.sqrt(np.maximum(vals[::-1], 0))
            ax.add_patch(
                Ellipse(
                    (mu[0], mu[1]),
                    width,
                    height,
                    angle=angle,
                    fill=False,
                    lw=1.6 / n_sd,
                    color=colors(k % 10),
                )
            )
        ax.plot(mu[0], mu[1], marker="x", color="black", ms=8)
        ax.annotate(f"k={k} (φ={w:.2f})", (mu[0], mu[1]), textcoords="offset points", xytext=(6, 6))
    ax.set_xlabel(feature_names[0])
    ax.set_ylabel(feature_names[1])
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_criterion(
    table: dict[str, dict[int, float]], path: str, *, criterion: str = "BIC", best: Any = None
) -> str:
    """Line plot of a criterion against K, one line per model family; writes a PNG."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=110)
    for name, values in table.items():
        ks = sorted(values)
        ax.plot(ks, [values[k] for k in ks], marker="o", label=name)
    if best is not None:
        ax.set_title(f"{criterion} by number of components (best: {best})")
    ax.set_xlabel("number of components K")
    ax.set_ylabel(f"{criterion} (smaller is better)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
