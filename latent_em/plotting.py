"""Plots (matplotlib is imported lazily, with a non-interactive backend)."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = [
    "plot_gaussian_mixture",
    "plot_criterion",
    "plot_mixture",
    "ellipse_mass",
    "MIXTURE_VIEWS",
]

#: the views of :func:`plot_mixture`, as mclust's ``plot.Mclust`` names them
MIXTURE_VIEWS = ("classification", "uncertainty", "density")


def ellipse_mass(n_sd: float, dim: int = 2) -> float:
    """Probability mass of a Gaussian inside the ellipse ``n_sd`` standard deviations out.

    In the plane (``dim=2``) the squared Mahalanobis radius is chi-square with 2 degrees
    of freedom, so the mass is ``1 - exp(-n_sd**2 / 2)``: 39.3%, 86.5% and 98.9% for 1, 2
    and 3 standard deviations.
    """
    from scipy.stats import chi2

    return float(chi2.cdf(n_sd**2, dim))


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

    fig, ax = plt.subplots(figsize=(6.4, 4.8), dpi=110)
    colors = plt.get_cmap("tab10")
    _classification_panel(ax, X, 0, 1, weights, means, covariances_full, labels, colors)
    ax.set_xlabel(feature_names[0])
    ax.set_ylabel(feature_names[1])
    ax.set_title(title)
    ax.legend(handles=_legend_handles(weights, colors), fontsize="small", loc="best")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def _legend_handles(weights: np.ndarray, colors: Any) -> list[Any]:
    """Legend entries: one per component (with its weight), one per ellipse line width
    labelled by the probability mass it encloses."""
    from matplotlib.lines import Line2D

    handles = [
        Line2D([], [], color=colors(k % 10), marker="o", ls="", label=f"component {k} (φ={w:.2f})")
        for k, w in enumerate(weights)
    ]
    for n_sd in (1, 2, 3):
        handles.append(
            Line2D(
                [],
                [],
                color="grey",
                lw=1.6 / n_sd,
                label=f"{n_sd} sd: {100 * ellipse_mass(n_sd):.1f}% of the component",
            )
        )
    return handles


def _classification_panel(
    ax: Any,
    X: np.ndarray,
    i: int,
    j: int,
    weights: np.ndarray,
    means: np.ndarray,
    covariances_full: np.ndarray,
    labels: np.ndarray | None,
    colors: Any,
    sizes: Any = 10,
) -> None:
    """Points of columns (i, j) coloured by label, with each component's 1-2-3 sd ellipses
    of the (i, j) marginal."""
    from matplotlib.patches import Ellipse

    c = None if labels is None else [colors(int(k) % 10) for k in labels]
    ax.scatter(X[:, i], X[:, j], s=sizes, c=c, alpha=0.6, edgecolors="none")
    idx = [i, j]
    for k, (_, mu, cov) in enumerate(zip(weights, means, covariances_full, strict=True)):
        sub = cov[np.ix_(idx, idx)]
        vals, vecs = np.linalg.eigh(sub)
        angle = float(np.degrees(np.arctan2(vecs[1, -1], vecs[0, -1])))
        for n_sd in (1, 2, 3):
            width, height = 2 * n_sd * np.sqrt(np.maximum(vals[::-1], 0))
            ax.add_patch(
                Ellipse(
                    (mu[i], mu[j]),
                    width,
                    height,
                    angle=angle,
                    fill=False,
                    lw=1.6 / n_sd,
                    color=colors(k % 10),
                )
            )
        ax.plot(mu[i], mu[j], marker="x", color="black", ms=8)


def _density_panel(
    ax: Any,
    X: np.ndarray,
    i: int,
    j: int,
    weights: np.ndarray,
    means: np.ndarray,
    covariances_full: np.ndarray,
    grid: int = 80,
) -> None:
    """Contours of the (i, j) marginal density of the mixture (exact: a mixture of the
    marginal Gaussians), over the data's range."""
    from scipy.stats import multivariate_normal

    pad_i = 0.1 * np.ptp(X[:, i]) or 1.0
    pad_j = 0.1 * np.ptp(X[:, j]) or 1.0
    u = np.linspace(X[:, i].min() - pad_i, X[:, i].max() + pad_i, grid)
    v = np.linspace(X[:, j].min() - pad_j, X[:, j].max() + pad_j, grid)
    uu, vv = np.meshgrid(u, v)
    points = np.column_stack([uu.ravel(), vv.ravel()])
    idx = [i, j]
    density = np.zeros(points.shape[0])
    for w, mu, cov in zip(weights, means, covariances_full, strict=True):
        density += w * multivariate_normal(mu[idx], cov[np.ix_(idx, idx)]).pdf(points)
    ax.contour(uu, vv, density.reshape(uu.shape), levels=10, cmap="viridis", linewidths=0.8)
    ax.scatter(X[:, i], X[:, j], s=3, color="grey", alpha=0.4, edgecolors="none")


def plot_mixture(
    X: Any,
    weights: np.ndarray,
    means: np.ndarray,
    covariances_full: np.ndarray,
    *,
    what: str = "classification",
    responsibilities: np.ndarray | None = None,
    feature_names: Any = None,
    path: str | None = None,
    title: str | None = None,
) -> Any:
    """mclust's views of a fitted Gaussian mixture: ``"classification"``,
    ``"uncertainty"`` or ``"density"`` (as ``plot.Mclust(fit, what = ...)``).

    Two columns give one panel; more give a pairs layout (one panel per pair of columns,
    the names on the diagonal).

    * classification: the points coloured by their most probable component, with every
      component's 1-2-3 standard-deviation ellipses (legend: the mass each encloses);
    * uncertainty: the same, with each point's size growing with its classification
      uncertainty ``1 - max_k r_nk`` (mclust's uncertainty plot);
    * density: contours of the mixture density (of each pair's marginal, which is again
      a Gaussian mixture).

    Parameters
    ----------
    X : array-like of shape (n, D), D >= 2
    weights, means : arrays of shape (K,), (K, D)
    covariances_full : array of shape (K, D, D)
    what : {"classification", "uncertainty", "density"}
    responsibilities : array of shape (n, K), optional
        Needed for "classification" and "uncertainty".
    feature_names : sequence of str, optional
        Axis labels (default ``x1 .. xD``).
    path : str, optional
        Write a PNG there (and close the figure); otherwise the figure is returned open.
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure or str
        The figure, or ``path`` when it was written.
    """
    if what not in MIXTURE_VIEWS:
        raise ValueError(f"what must be one of {MIXTURE_VIEWS}; got {what!r}")
    X = np.asarray(X, dtype=float)
    if X.ndim != 2 or X.shape[1] < 2:
        raise ValueError(f"plot_mixture needs X with at least 2 columns; got shape {X.shape}")
    d = X.shape[1]
    names = list(feature_names) if feature_names is not None else [f"x{j + 1}" for j in range(d)]
    if len(names) != d:
        raise ValueError(f"feature_names has {len(names)} names for {d} columns")
    labels = sizes = None
    if what != "density":
        if responsibilities is None:
            raise ValueError(f"what={what!r} needs the responsibilities")
        r = np.asarray(responsibilities, dtype=float)
        labels = np.argmax(r, axis=1)
        if what == "uncertainty":
            uncertainty = 1.0 - r.max(axis=1)
            # as mclust: the larger the uncertainty, the larger the point
            sizes = 4.0 + 120.0 * uncertainty / max(float(uncertainty.max()), 1e-12)
    plt = pyplot()
    colors = plt.get_cmap("tab10")
    pairs = d > 2
    size = 2.6 * d if pairs else 6.4
    fig, axes = plt.subplots(
        d if pairs else 1,
        d if pairs else 1,
        figsize=(size, size * 0.75 if not pairs else size),
        dpi=100,
        squeeze=False,
    )
    panels = [(a, b) for a in range(d) for b in range(d)] if pairs else [(0, 1)]
    for a, b in panels:
        ax = axes[a, b] if pairs else axes[0, 0]
        if pairs and a == b:
            ax.text(0.5, 0.5, names[a], ha="center", va="center", transform=ax.transAxes)
            ax.set_xticks([])
            ax.set_yticks([])
            continue
        i, j = (b, a) if pairs else (a, b)  # x: column b, y: row a, as R's pairs()
        if what == "density":
            _density_panel(ax, X, i, j, weights, means, covariances_full)
        else:
            _classification_panel(
                ax,
                X,
                i,
                j,
                weights,
                means,
                covariances_full,
                labels,
                colors,
                sizes=10 if sizes is None else sizes,
            )
        if not pairs:
            ax.set_xlabel(names[i])
            ax.set_ylabel(names[j])
    if what != "density":
        handles = _legend_handles(np.asarray(weights), colors)
        if pairs:
            fig.legend(handles=handles, fontsize="small", loc="upper right")
        else:
            axes[0, 0].legend(handles=handles, fontsize="small", loc="best")
    fig.suptitle(title or f"Gaussian mixture: {what}")
    fig.tight_layout()
    if path is None:
        return fig
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
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("number of components K")
    ax.set_ylabel(f"{criterion} (smaller is better)")
    ax.legend(title="model")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
