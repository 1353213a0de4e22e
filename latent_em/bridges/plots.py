"""PNG plots of a cross-check: EM trace, EM vs NUTS forest, responsibilities vs membership.

matplotlib is imported lazily with the non-interactive Agg backend (through
:mod:`latent_em.plotting`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["plot_em_trace", "plot_forest_comparison", "plot_membership"]


def _pyplot() -> Any:
    from ..plotting import _pyplot as pyplot

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


def plot_forest_comparison(report: Any, path: str) -> str:
    """EM estimate (± 2 SE when known) next to the posterior mean and 94 % interval; PNG.

    One panel per parameter group, so parameters on different scales stay readable.
    """
    plt = _pyplot()
    groups: dict[str, list[Any]] = {}
    for p in report.parameters:
        groups.setdefault(p.name.split("[")[0], []).append(p)
    fig, axes = plt.subplots(
        1,
        len(groups),
        figsize=(3.6 * len(groups), 0.9 + 0.32 * max(len(v) for v in groups.values())),
        dpi=100,
        squeeze=False,
    )
    for ax, (group, rows) in zip(axes[0], groups.items(), strict=True):
        y = np.arange(len(rows))[::-1]
        post_lo = [r.lower for r in rows]
        post_hi = [r.upper for r in rows]
        ax.hlines(y + 0.15, post_lo, post_hi, color="tab:blue", lw=2, label="NUTS 94%")
        ax.plot([r.mean for r in rows], y + 0.15, "o", color="tab:blue", ms=4)
        em = np.array([r.em for r in rows])
        se = np.array([np.nan if r.se is None else r.se for r in rows])
        if np.any(np.isfinite(se)):
            ax.hlines(y - 0.15, em - 2 * se, em + 2 * se, color="tab:orange", lw=2)
        ax.plot(em, y - 0.15, "D", color="tab:orange", ms=4, label="EM")
        bad = [i for i, r in enumerate(rows) if r.verdict != "agree"]
        for i in bad:
            ax.axhspan(y[i] - 0.4, y[i] + 0.4, color="tab:red", alpha=0.12)
        ax.set_yticks(y)
        ax.set_yticklabels([r.name for r in rows], fontsize=8)
        ax.set_title(group)
    axes[0][0].legend(loc="best", fontsize=8)
    fig.suptitle(f"EM vs NUTS: {report.verdict}")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


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
