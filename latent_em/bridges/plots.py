"""PNG plots of a cross-check: EM trace, EM vs NUTS forest, responsibilities vs membership.

matplotlib is imported lazily with the non-interactive Agg backend (through
:mod:`latent_em.plotting`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["plot_em_trace", "plot_forest_comparison", "plot_membership"]


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


def plot_forest_comparison(report: Any, path: str) -> str:
    """EM estimate next to the posterior 94 % interval, every parameter on one scale; PNG.

    Parameters differ in scale by orders of magnitude (a weight, a mean of 80, a variance
    of 0.07), so each row is standardized by its posterior: ``(value - posterior mean) /
    posterior sd``. The EM estimate then sits at ``z``; its ± 2 SE bar is drawn when
    standard errors are known; dashed lines mark ``± threshold``.
    """
    plt = _pyplot()
    rows = list(report.parameters)
    n = len(rows)
    fig, ax = plt.subplots(figsize=(7.0, 1.2 + 0.28 * n), dpi=100)
    y = np.arange(n)[::-1].astype(float)
    sd = np.array([r.sd if r.sd and np.isfinite(r.sd) and r.sd > 0 else np.nan for r in rows])
    mean = np.array([r.mean for r in rows])
    lo = (np.array([r.lower for r in rows]) - mean) / sd
    hi = (np.array([r.upper for r in rows]) - mean) / sd
    ax.hlines(y + 0.15, lo, hi, color="tab:blue", lw=2.5, label="NUTS 94% interval")
    ax.plot(np.zeros(n), y + 0.15, "o", color="tab:blue", ms=4)
    z = np.array([r.z for r in rows])
    se = np.array([np.nan if r.se is None else r.se for r in rows]) / sd
    if np.any(np.isfinite(se)):
        ax.hlines(y - 0.15, z - 2 * se, z + 2 * se, color="tab:orange", lw=2.5, label="EM ± 2 SE")
    ax.plot(z, y - 0.15, "D", color="tab:orange", ms=4, label="EM estimate")
    threshold = float(report.settings.get("threshold", 3.0))
    for x in (-threshold, threshold):
        ax.axvline(x, color="grey", ls="--", lw=0.8)
    for i, r in enumerate(rows):
        if r.verdict != "agree":
            ax.axhspan(y[i] - 0.45, y[i] + 0.45, color="tab:red", alpha=0.12)
    ax.set_yticks(y)
    ax.set_yticklabels([f"{r.name} = {r.em:.4g}" for r in rows], fontsize=8)
    ax.set_xlabel("(value - posterior mean) / posterior sd")
    ax.set_title(f"EM vs NUTS: {report.verdict}", pad=22)
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=3, fontsize=8, frameon=False)
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
