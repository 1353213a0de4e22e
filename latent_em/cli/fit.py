"""``latent-em fit``: fit a mixture to a CSV or ``.npy`` file, choosing K by a criterion."""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from ._common import ProgressBar

__all__ = [
    "register",
    "MODELS",
    "ModelSpec",
    "parse_k_range",
    "run_fit",
    "add_reader_options",
    "read_args_data",
]


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """How the CLI builds one model family.

    Attributes
    ----------
    estimator : str
        Name of the estimator class exported by :mod:`latent_em.estimators`.
    description : str
        Shown in ``--help`` and the summary.
    covariance : bool
        Whether the estimator takes ``covariance_type``.
    categorical : bool
        Whether the data are category labels (non-numeric cells allowed).
    """

    estimator: str
    description: str
    covariance: bool = False
    categorical: bool = False


#: model families of ``--model``; a family whose estimator is not (yet) exported by
#: latent_em.estimators gives a clear error instead of a traceback
MODELS: dict[str, ModelSpec] = {
    "gmm": ModelSpec("GaussianMixture", "Gaussian mixture (continuous data)", covariance=True),
    "bernoulli": ModelSpec("BernoulliMixture", "Bernoulli mixture (0/1 data)"),
    "categorical": ModelSpec(
        "CategoricalMixture", "latent class model (categorical data)", categorical=True
    ),
    "poisson": ModelSpec("PoissonMixture", "Poisson mixture (count data)"),
}
COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")
#: mclust's names (the 14 parsimonious structures, then the univariate E and V)
MCLUST_COVARIANCES = (
    *("EII", "VII", "EEI", "VEI", "EVI", "VVI", "EEE"),
    *("VEE", "EVE", "VVE", "EEV", "VEV", "EVV", "VVV"),
    *("E", "V"),
)
CRITERIA = ("bic", "aic", "icl")


#: most values of K one ``-k`` may ask for (each is a separate fit)
MAX_K_VALUES = 1000


def parse_k_range(text: str) -> list[int]:
    """``"3"``, ``"1-6"`` or ``"2,3,5"`` (or a mix, ``"1-3,6"``) as a sorted list of K.

    A range is checked before it is expanded: more than :data:`MAX_K_VALUES` values are
    refused at once (``-k 1-10000000`` would otherwise build ten million fits).
    """
    intervals: list[tuple[int, int]] = []
    for part in text.split(","):
        part = part.strip()
        try:
            if "-" in part:
                lo_text, hi_text = part.split("-", 1)
                lo, hi = int(lo_text), int(hi_text)
                if lo > hi:
                    raise ValueError
            else:
                lo = hi = int(part)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"invalid K {text!r}: use a number (3), a range (1-6) or a list (2,3,5)"
            ) from None
        if lo < 1:
            raise argparse.ArgumentTypeError(f"invalid K {text!r}: K must be >= 1")
        intervals.append((lo, hi))
    count = sum(hi - lo + 1 for lo, hi in intervals)
    if count > MAX_K_VALUES:
        raise argparse.ArgumentTypeError(
            f"invalid K {text!r}: {count} values of K (one fit each); at most {MAX_K_VALUES}"
        )
    return sorted({k for lo, hi in intervals for k in range(lo, hi + 1)})


def add_reader_options(p: Any) -> None:
    """The data-reading options shared by ``fit``, ``predict`` and ``compare``."""
    from ._common import parse_separator

    header = p.add_mutually_exclusive_group()
    header.add_argument(
        "--header",
        dest="header",
        action="store_true",
        default=None,
        help="the CSV's first line holds column names (default: guessed)",
    )
    header.add_argument(
        "--no-header", dest="header", action="store_false", help="the CSV has no header line"
    )
    p.add_argument(
        "--sep",
        "--delimiter",
        dest="sep",
        type=parse_separator,
        default=",",
        metavar="CHAR",
        help="field separator of the CSV: one character, or 'tab'",
    )
    p.add_argument(
        "--columns",
        default=None,
        metavar="LIST",
        help="columns to use, by header name or 1-based number, e.g. 'waiting,2' (default: all)",
    )
    p.add_argument(
        "--drop-columns",
        default=None,
        metavar="LIST",
        help="columns to leave out, by header name or 1-based number, e.g. 'id'",
    )


def read_args_data(
    args: argparse.Namespace, categorical: bool = False, missing: bool = False
) -> Any:
    """Read ``args.data`` with the reader options of :func:`add_reader_options`; with
    ``missing``, empty cells (and ``NA``, ``NaN``, ``NULL``) are read as NaN."""
    from ._common import read_data

    return read_data(
        args.data,
        header=args.header,
        categorical=categorical,
        delimiter=args.sep,
        columns=args.columns,
        drop_columns=args.drop_columns,
        missing=missing,
    )


def register(sub: Any) -> None:
    models = "; ".join(f"{name}: {spec.description}" for name, spec in MODELS.items())
    p = sub.add_parser(
        "fit",
        help="fit a mixture model to a data file, choosing K by BIC",
        description=(
            "Fit a mixture with every K in the range (and every covariance type asked "
            "for), choose the best by an information criterion, print a summary table, "
            "save the fitted model (JSON + .npz, reload with latent_em.io.load or "
            f"'latent-em predict') and a plot. Models: {models}."
        ),
    )
    p.add_argument("data", metavar="DATA", help="a .csv file (header optional) or a .npy file")
    p.add_argument("--model", choices=tuple(MODELS), default="gmm", help="model family")
    p.add_argument(
        "-k",
        "--components",
        dest="k",
        type=parse_k_range,
        default="1-6",
        metavar="K",
        help="numbers of components to try: 3, 1-6 or 2,3,5",
    )
    p.add_argument(
        "--covariance",
        choices=(*COVARIANCE_TYPES, *MCLUST_COVARIANCES, "all"),
        default=None,
        metavar="COVARIANCE",
        help="covariance structure for --model gmm (default full): full, tied, diag, "
        "spherical, one of mclust's EII VII EEI VEI EVI VVI EEE VEE EVE VVE EEV VEV EVV VVV "
        "(E, V for one column), or all (mclust's 14; E and V for one column)",
    )
    p.add_argument(
        "--missing",
        choices=("error", "marginalize"),
        default="error",
        help="rows with missing values (empty cells, NA, NaN, NULL) for --model gmm: error "
        "(default) refuses them; marginalize fits them under missing-at-random",
    )
    p.add_argument(
        "--prior",
        choices=("none", "default"),
        default="none",
        help="for --model gmm: default is mclust's conjugate prior (priorControl()), "
        "fitted by MAP-EM; with --covariance all only the structures that have one "
        "(mclust's ten and E, V)",
    )
    p.add_argument(
        "--select", choices=CRITERIA, default="bic", help="criterion (smaller is better)"
    )
    p.add_argument("--n-init", type=int, default=3, help="restarts per fit")
    p.add_argument("--max-iter", type=int, default=1000, help="EM iterations per restart")
    p.add_argument("--tol", type=float, default=1e-6, help="convergence tolerance per row")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    add_reader_options(p)
    p.add_argument("--out", default="fit.json", help="model file (its arrays go to .npz)")
    p.add_argument("--plot", default=None, help="PNG plot (default: --out with .png)")
    p.add_argument("--no-plot", action="store_true", help="do not write a plot")
    p.add_argument(
        "--parameters",
        action="store_true",
        help="also print the chosen model's parameters (weights, means, covariances, ...)",
    )
    p.add_argument("--no-progress", action="store_true", help="never show a progress bar")
    p.set_defaults(func=_main)


def _estimator_class(model: str) -> type:
    from .. import estimators
    from ._common import CommandError

    cls = getattr(estimators, MODELS[model].estimator, None)
    if cls is None:
        raise CommandError(f"model {model!r} is not available in this version of latent_em")
    return cls  # type: ignore[no-any-return]


def _main(args: argparse.Namespace) -> int:
    from ._common import CommandError

    spec = MODELS[args.model]
    if args.covariance is not None and not spec.covariance:
        raise CommandError(f"--covariance applies to --model gmm only, not {args.model!r}")
    if args.missing != "error" and args.model != "gmm":
        raise CommandError(f"--missing applies to --model gmm only, not {args.model!r}")
    if args.prior != "none" and args.model != "gmm":
        raise CommandError(f"--prior applies to --model gmm only, not {args.model!r}")
    if args.n_init < 1:
        raise CommandError(f"--n-init must be >= 1; got {args.n_init}")
    if args.max_iter < 1:
        raise CommandError(f"--max-iter must be >= 1; got {args.max_iter}")
    if not args.tol >= 0:
        raise CommandError(f"--tol must be >= 0; got {args.tol}")
    if not args.out.endswith(".json"):
        raise CommandError(f"--out must end in .json; got {args.out!r}")
    covariances: tuple[str | None, ...] = (None,)
    marginalize = args.missing == "marginalize"
    data = read_args_data(args, categorical=spec.categorical, missing=marginalize)
    if not marginalize and not spec.categorical:
        holes = np.argwhere(np.isnan(np.asarray(data.values, dtype=float)))
        if holes.size:  # a .npy file (the CSV reader refuses missing cells itself)
            hint = ", or fit them with --missing marginalize" if args.model == "gmm" else ""
            raise CommandError(
                f"{args.data!r} has missing values (NaN; the first at row {holes[0][0] + 1}, "
                f"column {holes[0][1] + 1}); remove or impute incomplete rows first{hint}"
            )
    prior = None if args.prior == "none" else args.prior
    if spec.covariance:
        from ..models.gaussian.covariance import mclust_names

        choice = args.covariance or "full"
        d = data.values.shape[1] if data.values.ndim == 2 else 1
        covariances = mclust_names(d) if choice == "all" else (choice,)
        if choice == "all" and prior is not None:
            from ..models.gaussian.covariance import canonical_covariance
            from ..models.gaussian.prior import PRIOR_STRUCTURES

            covariances = tuple(
                c for c in covariances if canonical_covariance(str(c)) in PRIOR_STRUCTURES
            )
    plot = None if args.no_plot else (args.plot or os.path.splitext(args.out)[0] + ".png")
    text = run_fit(
        data.values,
        model=args.model,
        ks=args.k,
        covariances=covariances,
        select=args.select,
        n_init=args.n_init,
        max_iter=args.max_iter,
        tol=args.tol,
        seed=args.seed,
        out=args.out,
        plot=plot,
        names=data.names,
        source=args.data,
        progress=not args.no_progress,
        parameters=args.parameters,
        missing=args.missing,
        prior=prior,
    )
    sys.stdout.write(text)
    return 0


def run_fit(
    x: np.ndarray,
    *,
    model: str = "gmm",
    ks: list[int],
    covariances: tuple[str | None, ...] = (None,),
    select: str = "bic",
    n_init: int = 3,
    max_iter: int = 1000,
    tol: float = 1e-6,
    seed: int = 0,
    out: str = "fit.json",
    plot: str | None = None,
    names: list[str] | None = None,
    source: str = "data",
    progress: bool = True,
    parameters: bool = False,
    missing: str = "error",
    prior: str | None = None,
) -> str:
    """Fit every (K, covariance) candidate, save the best, return the summary as text.

    The text is the table of candidates, then the chosen model's summary as mclust
    prints it (:meth:`~latent_em.MixtureEstimator.summary`; with ``parameters`` the
    labelled parameters). Fits that stopped at ``max_iter`` are reported on stderr.
    ``missing`` and ``prior`` are passed to the Gaussian mixture (``missing=
    "marginalize"`` fits rows with NaN, ``prior="default"`` mclust's conjugate prior).
    """
    from ..exceptions import ConvergenceWarning
    from ._common import CommandError, ProgressBar

    cls = _estimator_class(model)
    n = x.shape[0]
    too_big = [k for k in ks if k > n]
    if too_big:
        raise CommandError(f"K={too_big[0]} is larger than the number of rows ({n})")
    candidates = [(k, c) for c in covariances for k in ks]
    fits: dict[tuple[int, str | None], Any] = {}
    scores: dict[tuple[int, str | None], float] = {}
    failures: dict[tuple[int, str | None], str] = {}
    import warnings

    with ProgressBar(len(candidates), enabled=None if progress else False) as bar:
        for i, (k, cov) in enumerate(candidates):
            name = f"K={k}" + (f" {cov}" if cov else "")
            bar.update(i, name)
            # per-iteration updates only where a bar can be drawn (a terminal)
            callback = _CandidateProgress(bar, i, name, n_init) if bar.enabled else None
            options: dict[str, Any] = {
                "n_init": n_init,
                "max_iter": max_iter,
                "tol": tol,
                "random_state": seed,
            }
            if cov is not None:
                options["covariance_type"] = cov
            if missing != "error":
                options["missing"] = missing
            if prior is not None:
                options["prior"] = prior
            est = cls(k, **options)
            try:
                # non-convergence is shown in the table, not as a warning per fit
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", ConvergenceWarning)
                    est.fit(x, callback=callback)
                score = float(getattr(est, select)(x))
            except _FIT_ERRORS as exc:
                # one candidate failing must not lose the others: reported in the table
                failures[k, cov] = f"{type(exc).__name__}: {exc}"
                continue
            fits[k, cov] = est
            scores[k, cov] = score
        bar.update(len(candidates), "done")
    if not scores:
        reasons = "; ".join(f"K={k}: {why}" for (k, _), why in failures.items())
        raise CommandError(f"every candidate failed to fit: {reasons}")
    best_key = min(scores, key=lambda key: scores[key])
    best = fits[best_key]
    if names is not None:
        # as scikit-learn keeps a DataFrame's column names (an object array of str)
        best.feature_names_in_ = np.asarray(names, dtype=object)
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    best.save(out)
    lines = [
        f"{source}: {n} rows x {x.shape[1]} columns; {MODELS[model].description}",
        f"{select.upper()} (smaller is better; * marks the chosen model)",
        "",
        f"{'K':>3} {'covariance':>10} {'log-lik':>13} {'params':>7} {select.upper():>13} "
        f"{'iter':>5} {'converged':>9}",
    ]
    for key in candidates:
        if key in failures:
            lines.append(f"{key[0]:>3} {key[1] or '-':>10}  failed: {failures[key]}")
            continue
        est = fits[key]
        mark = "*" if key == best_key else " "
        lines.append(
            f"{key[0]:>3} {key[1] or '-':>10} {est.log_likelihood_:>13.3f} "
            f"{est.n_parameters_:>7d} {scores[key]:>13.3f} {est.n_iter_:>5d} "
            f"{'yes' if est.converged_ else 'NO':>9}{mark}"
        )
    if len(covariances) > 1:
        from ..selection import format_model_table

        table = {(str(c), k): scores[k, c] for k, c in candidates if (k, c) in scores}
        lines += ["", *format_model_table(table, select).rstrip("\n").split("\n")]
    lines += [
        "",
        f"Chosen: K={best_key[0]}" + (f", covariance={best_key[1]}" if best_key[1] else ""),
        "",
    ]
    lines += best.summary(parameters=parameters).rstrip("\n").splitlines()
    _report_non_convergence(fits, candidates, best_key, max_iter)
    events = best.result_.events
    if events:
        lines += ["", "Events during the chosen fit:"]
        lines += [f"  restart {e.restart}, iteration {e.iteration}: {e.message}" for e in events]
    npz = os.path.splitext(out)[0] + ".npz"
    lines += ["", f"Model saved to {out} (arrays in {npz})"]
    if plot is not None:
        with warnings.catch_warnings():
            # the CSV's names are kept on the model; the values here are the same columns
            warnings.filterwarnings("ignore", "X does not have valid feature names", UserWarning)
            _plot(best, x, best_key, scores, candidates, plot, names, select, model)
        lines.append(f"Plot saved to {plot}")
    return "\n".join(lines) + "\n"


#: errors of one candidate's fit that the table reports instead of stopping the command:
#: bad data for that K (ValueError), numerical failures (ArithmeticError, LinAlgError is a
#: ValueError), and the driver's checks (ModelContractError is a TypeError,
#: MonotonicityError a RuntimeError)
_FIT_ERRORS = (ValueError, ArithmeticError, TypeError, RuntimeError)


class _CandidateProgress:
    """Fit callback that shows the candidate, the restart and the EM iteration on the bar,
    e.g. ``K=3 full  init 2/3  iter 57``.

    The driver passes no restart index, but every restart starts at iteration 0
    (:func:`latent_em.fit`), so the restarts are counted from those.
    """

    def __init__(self, bar: ProgressBar, done: int, name: str, n_init: int) -> None:
        self.bar = bar
        self.done = done
        self.name = name
        self.n_init = n_init
        self.restart = 0

    def __call__(self, iteration: int, params: Any, objective: float) -> None:
        if iteration == 0:
            self.restart += 1
        label = f"{self.name}  init {self.restart}/{self.n_init}  iter {iteration}"
        self.bar.update(self.done, label)


def _report_non_convergence(
    fits: dict[tuple[int, str | None], Any],
    candidates: list[tuple[int, str | None]],
    best_key: tuple[int, str | None],
    max_iter: int,
) -> None:
    """Say on stderr which fits stopped at ``max_iter`` (the chosen one first)."""
    stopped = [key for key in candidates if key in fits and not fits[key].converged_]
    if not stopped:
        return

    def name(key: tuple[int, str | None]) -> str:
        return f"K={key[0]}" + (f" {key[1]}" if key[1] else "")

    if best_key in stopped:
        sys.stderr.write(
            f"warning: the chosen fit ({name(best_key)}) did not converge: EM stopped at "
            f"--max-iter {max_iter}; its estimates and criteria are not at a maximum "
            "(raise --max-iter or --tol)\n"
        )
    others = [name(key) for key in stopped if key != best_key]
    if others:
        sys.stderr.write(
            f"warning: {len(others)} other fit(s) did not converge within --max-iter "
            f"{max_iter}: {', '.join(others)}\n"
        )


def _plot(
    best: Any,
    x: np.ndarray,
    best_key: tuple[int, str | None],
    scores: dict[tuple[int, str | None], float],
    candidates: list[tuple[int, str | None]],
    path: str,
    names: list[str] | None,
    select: str,
    model: str,
) -> None:
    from ..plotting import plot_criterion, plot_gaussian_mixture

    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    if model == "gmm" and x.shape[1] >= 2:
        k, d = best.means_.shape
        full = best.model_.covariance.to_full(best.covariances_, k, d)
        feature_names = (names[0], names[1]) if names else ("column 1", "column 2")
        plot_gaussian_mixture(
            x,
            best.weights_,
            best.means_,
            full,
            path,
            labels=best.predict(x),
            feature_names=feature_names,
            title=f"{best_key[1]} covariance, K={best_key[0]} (best {select.upper()})",
        )
        return
    table: dict[str, dict[int, float]] = {}
    from ..estimators.summary import MCLUST_NAMES

    for k, cov in candidates:
        if (k, cov) not in scores:  # a candidate that failed
            continue
        label = MODELS[model].description if cov is None else f"{cov} covariance"
        if cov in MCLUST_NAMES:
            label += f" ({MCLUST_NAMES[cov][0 if x.shape[1] > 1 else 1]})"
        elif cov in ("E", "V"):  # mclust's univariate models, as its summary words them
            label += " (equal variance)" if cov == "E" else " (unequal variance)"
        table.setdefault(label, {})[k] = scores[k, cov]
    plot_criterion(table, path, criterion=select.upper(), best=f"K={best_key[0]}")
