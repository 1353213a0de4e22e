"""``latent-em compare``: fit a mixture by EM, then cross-check it with NUTS in PyMC.

Writes to ``--out``: ``report.txt`` (the table), ``report.json``, ``em_trace.png``,
``forest.png`` (EM vs NUTS) and ``membership.png`` (responsibilities vs posterior
membership probabilities).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

import numpy as np

__all__ = [
    "register",
    "run_compare",
    "run_compare_components",
    "write_report",
    "load_csv",
    "parse_k",
    "MODELS",
]

#: ``--model`` choices: estimator class name in :mod:`latent_em.estimators`
MODELS = {
    "gmm": "GaussianMixture",
    "bernoulli": "BernoulliMixture",
    "poisson": "PoissonMixture",
    "categorical": "CategoricalMixture",
}


def register(sub: Any) -> None:
    p = sub.add_parser(
        "compare",
        help="fit a mixture by EM and cross-check it against NUTS (PyMC)",
        description=(
            "Fit a mixture model to DATA.csv by EM, sample the equivalent PyMC model with "
            "NUTS started at the EM estimate, relabel the draws to the EM solution and "
            "compare them. Writes report.txt, report.json and PNG plots to --out."
        ),
    )
    from .fit import add_reader_options

    p.add_argument(
        "data",
        metavar="DATA",
        help="a .csv file (header optional) or a .npy file, one row per observation",
    )
    p.add_argument("--model", choices=sorted(MODELS), default="gmm", help="mixture model")
    p.add_argument(
        "-k",
        "--n-components",
        type=parse_k,
        default=[2],
        help="components K: one number, a range 2-5 or a list 2,3,5 (several K: a table "
        "of EM's BIC/ICL next to the posterior's LOO)",
    )
    p.add_argument(
        "--covariance",
        choices=("full", "tied", "diag", "spherical"),
        default="full",
        help="covariance type (gmm only)",
    )
    p.add_argument("--draws", type=int, default=1000, help="NUTS draws per chain")
    p.add_argument("--tune", type=int, default=1000, help="NUTS tuning steps per chain")
    p.add_argument("--chains", type=int, default=2, help="chains")
    p.add_argument("--n-init", type=int, default=5, help="EM restarts")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    add_reader_options(p)
    p.add_argument("--out", default="latent_em_compare", help="output directory")
    p.add_argument(
        "--no-progress",
        action="store_true",
        help="hide PyMC's sampling progress (it is shown only on a terminal anyway)",
    )
    p.set_defaults(func=_main)


def parse_k(text: str) -> list[int]:
    """``"3"`` -> [3], ``"2-5"`` -> [2, 3, 4, 5], ``"2,3,5"`` -> [2, 3, 5]."""
    try:
        if "-" in text.strip()[1:]:
            lo, hi = (int(v) for v in text.split("-", 1))
            ks = list(range(lo, min(hi, lo + 101) + 1))  # more than 100 is refused below
        else:
            ks = [int(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected K, a range K1-K2 or a list K1,K2,...; got {text!r}"
        ) from None
    if not ks:
        raise argparse.ArgumentTypeError(f"the range {text!r} is empty")
    if len(ks) > 100:
        # checked before any data are read: each K is a NUTS run
        raise argparse.ArgumentTypeError(
            f"{text!r} asks for more than 100 values of K; compare samples a posterior "
            "for each, so give at most 100"
        )
    return ks


def load_csv(path: str, *, delimiter: str = ",") -> np.ndarray:
    """Numeric CSV as an ``(n, D)`` array, read as ``latent-em fit`` reads it (a first
    line that is not numeric is a header; same messages)."""
    from ._common import read_data

    return read_data(path, delimiter=delimiter).values


def _main(args: argparse.Namespace) -> int:
    from ._common import CommandError, is_terminal

    for name in ("draws", "chains", "n_init"):
        if getattr(args, name) < 1:
            raise CommandError(
                f"--{name.replace('_', '-')} must be >= 1; got {getattr(args, name)}"
            )
    if min(args.n_components) < 1:
        raise CommandError(f"--n-components must be >= 1; got {args.n_components}")
    if args.tune < 0:
        raise CommandError(f"--tune must be >= 0; got {args.tune}")
    from .fit import read_args_data

    X = read_args_data(args, categorical=args.model == "categorical").values
    if len(args.n_components) > 1:
        text = run_compare_components(
            X,
            args.n_components,
            model=args.model,
            covariance_type=args.covariance,
            draws=args.draws,
            tune=args.tune,
            chains=args.chains,
            n_init=args.n_init,
            seed=args.seed,
            out=args.out,
            progressbar=not args.no_progress,
        )
        sys.stdout.write(text)
        return 0
    text = run_compare(
        X,
        model=args.model,
        n_components=args.n_components[0],
        covariance_type=args.covariance,
        draws=args.draws,
        tune=args.tune,
        chains=args.chains,
        n_init=args.n_init,
        seed=args.seed,
        out=args.out,
        progressbar=not args.no_progress and is_terminal(sys.stderr),
    )
    sys.stdout.write(text)
    return 0


def quiet_pytensor_off_a_terminal() -> None:
    """Off a terminal (logs, pipes, CI), hide PyTensor's "could not link to a BLAS"
    warning (it concerns the machine's setup, is printed at import and is not about the
    user's data) and PyMC's informational log lines. On a terminal both are left as is."""
    from ._common import is_terminal

    if not is_terminal(sys.stderr):
        import logging
        import warnings

        warnings.filterwarnings(
            "ignore", message="PyTensor could not link to a BLAS", category=UserWarning
        )
        # PyMC's "Auto-assigning NUTS sampler...", "Sampling 2 chains..." lines: the
        # command writes its own one-line notes; errors and warnings still show
        logging.getLogger("pymc").setLevel(logging.WARNING)


def _make_estimator(model: str, n_components: int, covariance_type: str, n_init: int, seed: int):
    from .. import estimators
    from ._common import CommandError

    if model not in MODELS:
        raise CommandError(f"--model must be one of {sorted(MODELS)}; got {model!r}")
    cls = getattr(estimators, MODELS[model], None)
    if cls is None:
        raise CommandError(f"--model {model}: {MODELS[model]} is not available in this version")
    options: dict[str, Any] = {"n_init": n_init, "random_state": seed}
    if model == "gmm":
        options["covariance_type"] = covariance_type
    return cls(n_components, **options)


def run_compare(
    X: Any,
    *,
    model: str = "gmm",
    n_components: int = 2,
    covariance_type: str = "full",
    draws: int = 1000,
    tune: int = 1000,
    chains: int = 2,
    n_init: int = 5,
    seed: int = 0,
    out: str = "latent_em_compare",
    progressbar: bool = True,
) -> str:
    """Fit, cross-check, write the report and plots to ``out``; return the report text."""
    quiet_pytensor_off_a_terminal()
    from ..bridges import crosscheck

    estimator = _make_estimator(model, n_components, covariance_type, n_init, seed)
    os.makedirs(out, exist_ok=True)
    sys.stderr.write(f"fitting {type(estimator).__name__}(K={n_components}) by EM...\n")
    estimator.fit(X)
    sys.stderr.write(
        f"sampling {chains} chain(s) x ({tune} tune + {draws} draws) with NUTS "
        "from the EM estimate...\n"
    )
    sys.stderr.flush()
    report = crosscheck(
        estimator,
        X,
        draws=draws,
        tune=tune,
        chains=chains,
        random_seed=seed,
        progressbar=progressbar,
    )
    table = report.to_table()
    written = "\n".join(f"  {p}" for p in write_report(report, out))
    return f"{table}\nwritten:\n{written}\n"


def run_compare_components(
    X: Any,
    ks: list[int],
    *,
    model: str = "gmm",
    covariance_type: str = "full",
    draws: int = 1000,
    tune: int = 1000,
    chains: int = 2,
    n_init: int = 5,
    seed: int = 0,
    out: str = "latent_em_compare",
    progressbar: bool = True,
) -> str:
    """Fit and cross-check every K; write ``comparison.txt``/``.json`` and one report folder
    per K (``out/K=<k>``); return the comparison table."""
    from ..bridges import compare_components

    estimator = _make_estimator(model, ks[0], covariance_type, n_init, seed)
    os.makedirs(out, exist_ok=True)
    sys.stderr.write(
        f"fitting and cross-checking K = {ks} ({chains} chain(s) x ({tune} tune + {draws} "
        "draws) each)...\n"
    )
    sys.stderr.flush()
    result = compare_components(
        estimator,
        X,
        ks,
        draws=draws,
        tune=tune,
        chains=chains,
        random_seed=seed,
        progressbar=progressbar,
    )
    table = result.to_table()
    with open(os.path.join(out, "comparison.txt"), "w", encoding="utf-8") as fh:
        fh.write(table)
    written = [
        os.path.join(out, "comparison.txt"),
        result.to_json(os.path.join(out, "comparison.json")),
    ]
    for k, report in result.reports.items():
        written += write_report(report, os.path.join(out, f"K={k}"))
    listing = "\n".join(f"  {p}" for p in written)
    return f"{table}\nwritten:\n{listing}\n"


def write_report(report: Any, out: str) -> list[str]:
    """Write ``report.txt``, ``report.json`` and the PNG plots to ``out``; return the paths."""
    os.makedirs(out, exist_ok=True)
    paths = {
        "table": os.path.join(out, "report.txt"),
        "json": os.path.join(out, "report.json"),
        "trace": os.path.join(out, "em_trace.png"),
        "forest": os.path.join(out, "forest.png"),
        "membership": os.path.join(out, "membership.png"),
    }
    with open(paths["table"], "w", encoding="utf-8") as fh:
        fh.write(report.to_table())
    report.to_json(paths["json"])
    report.plot_trace(paths["trace"])
    report.plot_forest(paths["forest"])
    if report.posterior_membership is not None:
        report.plot_membership(paths["membership"])
    else:
        del paths["membership"]
    return list(paths.values())
