"""``latent-em demo``: a Gaussian mixture on Old Faithful, K and covariance chosen by BIC."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

import numpy as np

__all__ = ["register", "run_demo"]


def register(sub: Any) -> None:
    p = sub.add_parser(
        "demo",
        help="fit a Gaussian mixture to the bundled Old Faithful data, choosing K by BIC",
        description=(
            "Fit Gaussian mixtures with K = 1..KMAX components and every covariance type "
            "to the bundled Old Faithful data, choose the model with the smallest BIC, "
            "print the BIC table and the fitted components, and save a plot."
        ),
    )
    p.add_argument("--kmax", type=int, default=6, help="largest K tried")
    p.add_argument(
        "--covariance",
        choices=("all", "full", "tied", "diag", "spherical"),
        default="all",
        help="covariance type(s) to compare (default: all)",
    )
    p.add_argument("--n-init", type=int, default=5, help="restarts per fit")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument("--out", default="latent_em_demo.png", help="PNG file for the plot")
    p.add_argument(
        "--compare",
        action="store_true",
        help="cross-check the best fit against NUTS in PyMC (report and plots next to --out)",
    )
    p.add_argument("--draws", type=int, default=500, help="NUTS draws per chain with --compare")
    p.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    from ._common import CommandError

    if args.kmax < 1:
        raise CommandError(f"--kmax must be >= 1; got {args.kmax}")
    if args.n_init < 1:
        raise CommandError(f"--n-init must be >= 1; got {args.n_init}")
    types = (
        ("full", "tied", "diag", "spherical") if args.covariance == "all" else (args.covariance,)
    )
    if args.draws < 1:
        raise CommandError(f"--draws must be >= 1; got {args.draws}")
    text = run_demo(
        kmax=args.kmax,
        covariance_types=types,
        n_init=args.n_init,
        seed=args.seed,
        out=args.out,
        compare=args.compare,
        draws=args.draws,
    )
    sys.stdout.write(text)
    return 0


def run_demo(
    *,
    kmax: int = 6,
    covariance_types: tuple[str, ...] = ("full", "tied", "diag", "spherical"),
    n_init: int = 5,
    seed: int = 0,
    out: str = "latent_em_demo.png",
    compare: bool = False,
    draws: int = 500,
) -> str:
    """Run the demo and return its report as text (the plot is written to ``out``).

    With ``compare`` the best fit is cross-checked against NUTS
    (:func:`latent_em.bridges.crosscheck`, ``draws`` per chain, 2 chains); the report
    and its plots go to the directory ``<out without .png>_compare``.
    """
    from ..datasets import load_faithful
    from ..estimators import GaussianMixture
    from ..plotting import plot_gaussian_mixture

    X, names = load_faithful(return_names=True)
    bic: dict[str, dict[int, float]] = {t: {} for t in covariance_types}
    fits: dict[tuple[str, int], GaussianMixture] = {}
    for t in covariance_types:
        for k in range(1, kmax + 1):
            gm = GaussianMixture(k, covariance_type=t, n_init=n_init, random_state=seed)
            gm.fit(X)
            fits[t, k] = gm
            bic[t][k] = gm.bic(X)
    best_t, best_k = min(fits, key=lambda key: bic[key[0]][key[1]])
    best = fits[best_t, best_k]

    lines = [
        f"Old Faithful: {X.shape[0]} eruptions, columns {names[0]!r} (min) and {names[1]!r} (min)",
        "",
        "BIC = -2 log L + p log n (smaller is better; mclust reports the negative)",
        "   K " + "".join(f"{t:>12}" for t in covariance_types),
    ]
    for k in range(1, kmax + 1):
        row = "".join(
            f"{bic[t][k]:>11.2f}{'*' if (t, k) == (best_t, best_k) else ' '}"
            for t in covariance_types
        )
        lines.append(f"{k:>4} {row}")
    lines += [
        "",
        f"Best: covariance_type={best_t!r}, K={best_k}  (log-likelihood "
        f"{best.log_likelihood_:.3f}, {best.n_parameters_} free parameters, "
        f"{best.n_iter_} iterations, converged={best.converged_})",
        "",
        f"{'k':>3} {'weight':>7} {'mean ' + names[0]:>16} {'mean ' + names[1]:>14} "
        f"{'sd ' + names[0]:>14} {'sd ' + names[1]:>12} {'corr':>6}",
    ]
    full = best.model_.covariance.to_full(best.covariances_, best_k, X.shape[1])
    order = np.argsort(best.means_[:, 0])
    for k in order:
        sd = np.sqrt(np.diag(full[k]))
        corr = full[k][0, 1] / (sd[0] * sd[1])
        lines.append(
            f"{k:>3} {best.weights_[k]:>7.3f} {best.means_[k, 0]:>16.3f} "
            f"{best.means_[k, 1]:>14.3f} {sd[0]:>14.3f} {sd[1]:>12.3f} {corr:>6.3f}"
        )
    parent = os.path.dirname(os.path.abspath(out))
    os.makedirs(parent, exist_ok=True)
    plot_gaussian_mixture(
        X,
        best.weights_,
        best.means_,
        full,
        out,
        labels=best.predict(X),
        # units as the demo's header line states them (load_faithful: minutes)
        feature_names=(f"{names[0]} (min)", f"{names[1]} (min)"),
        title=f"Old Faithful: {best_t} covariance, K={best_k} (best BIC)",
    )
    lines += ["", f"Plot saved to {out}", ""]
    if compare:
        from ._common import is_terminal
        from .compare import quiet_pytensor_off_a_terminal, write_report

        quiet_pytensor_off_a_terminal()
        from ..bridges import crosscheck

        sys.stderr.write(f"sampling 2 chains x (500 tune + {draws} draws) with NUTS...\n")
        report = crosscheck(
            best,
            X,
            draws=draws,
            tune=500,
            chains=2,
            random_seed=seed,
            progressbar=is_terminal(sys.stderr),
        )
        folder = os.path.splitext(out)[0] + "_compare"
        written = write_report(report, folder)
        lines += ["Cross-check against NUTS (PyMC):", "", report.to_table()]
        lines += ["written:"] + [f"  {p}" for p in written] + [""]
    return "\n".join(lines)
