"""PNG plots of a cross-check: EM trace, EM vs NUTS forest, responsibilities vs membership.

matplotlib is imported lazily with the non-interactive Agg backend (through
:mod:`latent_em.plotting`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["plot_em_trace", "plot_forest_comparison", "forest_figure", "plot_membership"]


def _pyplot() -> Any:
    from ..plotting import pyplot

    return pyplot()


def plot_em_trace(history: Any, path: str, *, title: str = "EM convergence") -> str:
    """Log-likelihood after every E-step, and its increments on a log scale; PNG."""
    plt = _pyplot()
    h = np.asarray(history, dtype=float)
    if h.ndim != 1 or h.size == 0:
        raise ValueError(f"history must be a non-empty 1-D array; got shape {h.shape}")
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.6), dpi=100)
    ax1.plot(np.arange(h.size), h, marker=".", lw=1)
    ax1.set_xlabel("iteration")
    ax1.set_ylabel("log-likelihood")
    ax1.set_title(title)
    if h.size > 1:
        inc = np.diff(h)
        ax2.semilogy(np.arange(1, h.size), np.maximum(inc, 1e-16), marker=".", lw=1)
    ax2.set_xlabel("iteration")
    ax2.set_ylabel("increase of log-likelihood")
    ax2.set_title("monotone increase (log scale)")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def _group(name: str) -> str:
    """Parameter group of an element label: ``"means[1,0]"`` -> ``"means"``."""
    return name.split("[", 1)[0]


def plot_forest_comparison(report: Any, path: str) -> str:
    """:func:`forest_figure` saved as a PNG at ``path`` (long labels kept inside)."""
    plt = _pyplot()
    fig = forest_figure(report)
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)
    return path


def forest_figure(report: Any) -> Any:
    """EM estimate next to the posterior interval, one panel per parameter group.

    Each group (weights, means, covariances, ...) is drawn on its own natural scale —
    standardizing by the posterior sd would hide scale errors — on a log scale when its
    values are positive and span more than two decades (a collapsed variance of 1e-6
    next to a posterior reaching 7000). Rows: the posterior central interval (94 % by
    default) with its mean, the EM estimate with ± 2 SE when standard errors are known;
    disagreeing rows are shaded and their signals named in the label.
    """
    plt = _pyplot()
    rows = list(report.parameters)
    groups: dict[str, list[Any]] = {}
    for r in rows:
        groups.setdefault(_group(r.name), []).append(r)
    prob = float(report.settings.get("thresholds", {}).get("interval", 0.94))
    heights = [len(g) for g in groups.values()]
    fig, axes = plt.subplots(
        len(groups),
        1,
        figsize=(8.0, 1.6 + 0.32 * len(rows) + 0.5 * len(groups)),
        dpi=100,
        gridspec_kw={"height_ratios": heights},
        squeeze=False,
    )
    handles: dict[str, Any] = {}
    for ax, (name, members) in zip(axes[:, 0], groups.items(), strict=True):
        y = np.arange(len(members))[::-1].astype(float)
        lo = np.array([r.lower for r in members])
        hi = np.array([r.upper for r in members])
        em = np.array([r.em for r in members])
        mean = np.array([r.mean for r in members])
        values = np.concatenate([lo, hi, em, mean])
        values = values[np.isfinite(values)]
        positive = values.size and np.all(values > 0)
        if positive and values.max() / values.min() > 100:
            ax.set_xscale("log")
        handles["interval"] = ax.hlines(
            y + 0.12, lo, hi, color="tab:blue", lw=2.5, label=f"posterior {100 * prob:g}% interval"
        )
        (handles["mean"],) = ax.plot(
            mean, y + 0.12, "o", color="tab:blue", ms=4, label="posterior mean"
        )
        se = np.array([np.nan if r.se is None else r.se for r in members])
        if np.any(np.isfinite(se)):
            handles["se"] = ax.hlines(
                y - 0.12, em - 2 * se, em + 2 * se, color="tab:orange", lw=2.5, label="EM ± 2 SE"
            )
        (handles["em"],) = ax.plot(em, y - 0.12, "D", color="tab:orange", ms=4, label="EM estimate")
        for i, r in enumerate(members):
            if r.verdict != "agree":
                handles["disagree"] = ax.axhspan(
                    y[i] - 0.45, y[i] + 0.45, color="tab:red", alpha=0.12, label="disagrees"
                )
        ax.set_yticks(y)
        ax.set_yticklabels(
            [r.name + (f"  ({', '.join(r.signals)})" if r.signals else "") for r in members],
            fontsize=8,
        )
        ax.set_ylim(-0.6, len(members) - 0.4)
        ax.set_title(name, fontsize=9, loc="left")
        ax.grid(axis="x", alpha=0.3)
    order = ["interval", "mean", "em", "se", "disagree"]
    legend = [handles[k] for k in order if k in handles]
    fig.tight_layout()
    # legend and title above the panels; savefig(bbox_inches="tight") keeps them in
    fig.legend(
        legend,
        [h.get_label() for h in legend],
        loc="lower center",
        bbox_to_anchor=(0.5, 1.0),
        ncol=min(len(legend), 5),
        fontsize=8,
        frameon=False,
    )
    fig.suptitle(f"EM vs NUTS: {report.verdict}", y=1.04, fontsize=10, va="bottom")
    return fig


def plot_membership(report: Any, path: str) -> str:
    """EM responsibilities against posterior membership probabilities, per component; PNG."""
    em = report.em_responsibilities
    post = report.posterior_membership
    if em is None or post is None:
        raise ValueError("this report has no posterior membership (builder without to_params)")
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4.8, 4.4), dpi=100)
    colors = plt.get_cmap("tab10")
    for k in range(em.shape[1]):
        ax.scatter(em[:, k], post[:, k], s=8, alpha=0.6, color=colors(k % 10), label=f"k={k}")
    ax.plot([0, 1], [0, 1], color="black", lw=0.8)
    ax.set_xlabel("EM responsibility")
    ax.set_ylabel("posterior membership probability")
    ax.set_title("responsibilities vs posterior membership")
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
