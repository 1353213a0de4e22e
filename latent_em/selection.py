"""Choosing the number of components K by information criteria.

Sign convention: every criterion is "smaller is better",

* ``BIC = -2 log L + p log n`` (Schwarz 1978),
* ``AIC = -2 log L + 2 p`` (Akaike 1974),
* ``ICL = BIC - 2 Σ_n w_n log r_{n ĉ_n}`` (Biernacki, Celeux & Govaert 2000), with
  ``ĉ_n`` the most probable component of row n (the entropy-like penalty of a fuzzy
  classification),

where ``log L`` is the (weighted) log-likelihood at the fitted parameters, ``p`` the
number of free parameters and ``n = Σ_n w_n``. This is scikit-learn's convention.

Nested fits. A mixture with K + 1 components contains every K-component mixture (one
component duplicated, its weight shared), so its maximum likelihood is never lower; a
fit from random starts can still stop at a poorer local optimum (on Old Faithful, tied,
one restart: K = 6 at -1117.55 below K = 5 at -1116.16). For a model that can split a
component (``split_component``, as the Gaussian mixture), K + 1 is therefore also
fitted from splits of the K fit: each of its three heaviest components halved and moved
half a standard deviation apart along its main axis, and, when all those stop lower, the
exact duplicate (the same density as the K fit). The best is kept and ``start`` in the
row says where it came from, so ``log L`` never decreases from K to K + 1 (up to the
driver's round-off tolerance).
R's mclust reports ``2 log L - p log n`` (larger is better), which is exactly the
negative: compare ``-row.bic`` with mclust's ``BIC`` (and ``-row.icl`` with its ``icl``).
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from .em import EMResult, check_sample_weight, fit, posterior
from .models.gaussian.covariance import COVARIANCE_NAMES, mclust_names

__all__ = [
    "SelectionRow",
    "SelectionResult",
    "ModelSelectionResult",
    "select_components",
    "format_model_table",
    "CRITERIA",
]

CRITERIA = ("bic", "aic", "icl")


@dataclasses.dataclass(frozen=True)
class SelectionRow:
    """One row of the model-selection table.

    Attributes
    ----------
    n_components : int
        K.
    log_likelihood : float
        Weighted log-likelihood ``log L`` of the best restart.
    n_parameters : int
        Free parameters ``p``.
    bic, aic, icl : float
        Criteria, smaller is better (module docstring).
    converged : bool
        Whether the best restart converged.
    restarts : int
        Number of restarts from an initialization fitted for this K (the fits started
        from splits of the K - 1 fit come in addition).
    start : str
        Where the kept fit started: ``"initialization"``, or a split of the K - 1 fit
        (module docstring: nested fits).
    """

    n_components: int
    log_likelihood: float
    n_parameters: int
    bic: float
    aic: float
    icl: float
    converged: bool
    restarts: int
    start: str = "initialization"


@dataclasses.dataclass(frozen=True)
class SelectionResult:
    """What :func:`select_components` found.

    Attributes
    ----------
    rows : tuple of SelectionRow
        One row per K, in the order of ``k_range``.
    criterion : str
        The criterion used to choose (``"bic"``, ``"aic"`` or ``"icl"``).
    best_k : int
        The K with the smallest criterion.
    best : Any
        The fit for ``best_k``: a fitted estimator, or an :class:`~latent_em.EMResult`
        when a model was given.
    fits : dict
        The fit for every K.
    """

    rows: tuple[SelectionRow, ...]
    criterion: str
    best_k: int
    best: Any
    fits: dict[int, Any]

    def column(self, name: str) -> np.ndarray:
        """One column of the table as an array (e.g. ``"bic"``, ``"n_components"``)."""
        if name not in {f.name for f in dataclasses.fields(SelectionRow)}:
            raise ValueError(f"unknown column {name!r}")
        return np.asarray([getattr(row, name) for row in self.rows])

    def to_dataframe(self) -> Any:
        """The table as a :class:`pandas.DataFrame` (pandas is imported here)."""
        import pandas as pd

        return pd.DataFrame([dataclasses.asdict(r) for r in self.rows]).set_index("n_components")

    def format(self) -> str:
        """The table as fixed-width text, the chosen K marked with ``*``; ``start`` says
        where the kept fit started (``init``, ``split j`` of the K - 1 fit, or ``dup j``:
        its exact duplicate)."""
        head = (
            f"{'K':>3} {'logL':>12} {'p':>4} {'BIC':>12} {'AIC':>12} {'ICL':>12} conv "
            "restarts start"
        )
        lines = [head]
        for r in self.rows:
            mark = "*" if r.n_components == self.best_k else " "
            lines.append(
                f"{r.n_components:>3}{mark}{r.log_likelihood:12.3f} {r.n_parameters:>4} "
                f"{r.bic:12.3f} {r.aic:12.3f} {r.icl:12.3f} {str(r.converged):>5} "
                f"{r.restarts:>8} {_short_start(r.start)}"
            )
        return "\n".join(lines) + "\n"

    def plot(self, path: str, *, label: str = "model") -> str:
        """Draw the criterion against K as a PNG at ``path`` (returns ``path``)."""
        from .plotting import plot_criterion

        values = {r.n_components: float(getattr(r, self.criterion)) for r in self.rows}
        return plot_criterion(
            {label: values}, path, criterion=self.criterion.upper(), best=f"K={self.best_k}"
        )


def format_model_table(
    scores: dict[tuple[str, int], float], criterion: str = "bic", *, top: int = 3
) -> str:
    """A model x K table of a criterion as mclust prints ``mclustBIC``: in mclust's sign
    (``-criterion``, larger is better), one column per model, one row per K, then the
    best ``top`` models with their differences from the best.

    Parameters
    ----------
    scores : dict
        ``{(model name, K): criterion}`` in latent_em's sign (smaller is better).
    criterion : str
        Its name, for the headings.
    top : int
        How many of the best models to list.
    """
    name = criterion.upper()
    models = list(dict.fromkeys(m for m, _ in scores))
    ks = sorted({k for _, k in scores})
    width = max(10, *(len(m) + 1 for m in models))
    lines = [
        f"{name} in mclust's sign ({'2 log L - p log n' if name == 'BIC' else '-' + name}, "
        "larger is better; latent_em reports the negative):",
        " " * 3 + "".join(f"{m:>{width}}" for m in models),
    ]
    for k in ks:
        cells = [
            f"{-scores[m, k]:>{width}.3f}" if (m, k) in scores else f"{'NA':>{width}}"
            for m in models
        ]
        lines.append(f"{k:>3}" + "".join(cells))
    best = sorted(scores, key=lambda key: scores[key])[:top]
    labels = [f"{m},{k}" for m, k in best]
    width = max(10, *(len(lab) + 1 for lab in labels))
    lines += [
        "",
        f"Top {len(best)} models based on the {name} criterion:",
        " " * 9 + "".join(f"{lab:>{width}}" for lab in labels),
        f"{name:<9}" + "".join(f"{-scores[key]:>{width}.3f}" for key in best),
        f"{name + ' diff':<9}"
        + "".join(f"{scores[best[0]] - scores[key]:>{width}.3f}" for key in best),
    ]
    return "\n".join(lines) + "\n"


@dataclasses.dataclass(frozen=True)
class ModelSelectionResult:
    """What :func:`select_components` found over covariance structures and K.

    Attributes
    ----------
    results : dict
        One :class:`SelectionResult` per covariance structure (its rows are the K).
    criterion : str
        The criterion used to choose.
    best_covariance : str
        The structure of the best (structure, K).
    best_k : int
        The K of the best (structure, K).
    best : Any
        The fit of the best (structure, K).
    """

    results: dict[str, SelectionResult]
    criterion: str
    best_covariance: str
    best_k: int
    best: Any

    @property
    def scores(self) -> dict[tuple[str, int], float]:
        """``{(structure, K): criterion}``, smaller is better."""
        return {
            (cov, row.n_components): float(getattr(row, self.criterion))
            for cov, res in self.results.items()
            for row in res.rows
        }

    def top(self, n: int = 3) -> list[tuple[str, int, float]]:
        """The ``n`` best ``(structure, K, criterion)``, best first."""
        scores = self.scores
        return [(c, k, scores[c, k]) for c, k in sorted(scores, key=lambda key: scores[key])[:n]]

    def format(self) -> str:
        """The model x K table in mclust's layout and sign, then the best three."""
        return format_model_table(self.scores, self.criterion)

    def plot(self, path: str) -> str:
        """The criterion against K, one line per structure, as a PNG at ``path``."""
        from .plotting import plot_criterion

        table: dict[str, dict[int, float]] = {}
        for (cov, k), value in self.scores.items():
            table.setdefault(cov, {})[k] = value
        return plot_criterion(
            table,
            path,
            criterion=self.criterion.upper(),
            best=f"{self.best_covariance}, K={self.best_k}",
        )


def _covariance_list(covariance_types: Any, x: Any) -> list[str]:
    if isinstance(covariance_types, str):
        if covariance_types == "all":
            shape = np.shape(x)
            return list(mclust_names(int(shape[1]) if len(shape) == 2 else 1))
        covariance_types = [covariance_types]
    names = list(covariance_types)
    if not names:
        raise ValueError("covariance_types is empty: give 'all' or at least one structure")
    for name in names:
        if name not in COVARIANCE_NAMES:
            raise ValueError(
                f"covariance_types: unknown covariance_type {name!r}; expected 'all' or "
                f"some of {', '.join(repr(c) for c in COVARIANCE_NAMES)}"
            )
    return names


def _short_start(start: str) -> str:
    """``init``, ``split j`` or ``dup j`` for the table (see ``SelectionRow.start``)."""
    words = start.split()
    if start.startswith("split of component"):
        return f"split {words[3]}"
    if "duplicated" in start:
        return f"dup {words[3]}"
    return "init"


def _check_k_range(k_range: Iterable[int]) -> list[int]:
    try:
        ks = list(k_range)
    except TypeError as exc:
        raise TypeError(f"k_range must be an iterable of integers; got {k_range!r}") from exc
    if not ks:
        raise ValueError("k_range is empty: give at least one number of components")
    for k in ks:
        if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1:
            raise ValueError(f"k_range must hold integers >= 1; got {k!r}")
    if len(set(ks)) != len(ks):
        raise ValueError(f"k_range has repeated values: {ks}")
    return [int(k) for k in ks]


def _icl(bic: float, resp: np.ndarray, weights: np.ndarray) -> float:
    best = resp[np.arange(resp.shape[0]), np.argmax(resp, axis=1)]
    with np.errstate(divide="ignore"):
        log_best = np.log(best)
    return bic - 2.0 * float(np.dot(weights[weights > 0], log_best[weights > 0]))


def _row_from_result(
    k: int,
    result: EMResult,
    x: Any,
    weights: np.ndarray,
    restarts: int | None = None,
    start: str = "initialization",
) -> SelectionRow:
    if result.n_parameters is None:
        raise ValueError(
            f"{type(result.model).__name__} does not state its number of free parameters; "
            "give it n_parameters(params) or constraints"
        )
    resp, _ = posterior(result.model, result.params, x)
    p = int(result.n_parameters)
    ll = float(result.log_likelihood)
    n = float(weights.sum())
    bic = -2.0 * ll + p * math.log(n)
    return SelectionRow(
        n_components=k,
        log_likelihood=ll,
        n_parameters=p,
        bic=bic,
        aic=-2.0 * ll + 2.0 * p,
        icl=_icl(bic, np.asarray(resp), weights),
        converged=bool(result.converged),
        restarts=len(result.restarts) if restarts is None else restarts,
        start=start,
    )


#: components of the K fit split to start K + 1 (the heaviest first)
MAX_SPLITS = 3


def _nested(
    previous: EMResult | None,
    k: int,
    result: EMResult,
    fit_from: Callable[[Any], EMResult],
) -> tuple[EMResult, str]:
    """The better of ``result`` and the fits of K components started from splits of the
    K - 1 fit ``previous`` (module docstring: nested fits), with where it started."""
    if (
        previous is None
        or getattr(previous.model, "n_components", None) != k - 1
        or not hasattr(previous.model, "split_component")
    ):
        return result, "initialization"
    model, params = previous.model, previous.params
    order = np.argsort(-np.asarray(params.weights, dtype=float), kind="stable")
    best, start = result, "initialization"
    for j in order[:MAX_SPLITS].tolist():
        candidate = fit_from(model.split_component(params, j))
        # kept only when better beyond round-off: equal optima keep the ordinary fit
        if candidate.objective > best.objective + 1e-9 * abs(best.objective):
            best, start = candidate, f"split of component {j} of the K={k - 1} fit"
    if best.objective < previous.objective:
        # every start stopped lower: the exact duplicate is the K - 1 fit's density
        heaviest = int(order[0])
        best = fit_from(model.split_component(params, heaviest, spread=0.0))
        start = f"K={k - 1} fit with component {heaviest} duplicated (no better fit found)"
    return best, start


def select_components(
    estimator_or_model: Any,
    X: Any,
    k_range: Iterable[int],
    criterion: str = "bic",
    *,
    sample_weight: Any = None,
    n_init: int = 1,
    random_state: Any = None,
    plot: str | None = None,
    covariance_types: Any = None,
    **fit_kwargs: Any,
) -> Any:
    """Fit K = each value of ``k_range`` and choose the K with the smallest criterion.

    Parameters
    ----------
    estimator_or_model : estimator or model
        An estimator with an ``n_components`` parameter (cloned for every K with its
        other settings, including ``n_init`` and ``random_state``), or a model dataclass
        with an ``n_components`` field (replaced for every K and fitted by
        :func:`latent_em.fit`).
    X : array-like
        Data.
    k_range : iterable of int
        Numbers of components to try (each >= 1).
    criterion : {"bic", "aic", "icl"}, default "bic"
        Criterion to minimize (all "smaller is better"; see the module docstring for
        the comparison with mclust's opposite sign).
    sample_weight : array-like of shape (n,), optional
        Row weights (``n`` in BIC is their sum).
    n_init, random_state : optional
        Restarts and seed for a model (an estimator uses its own settings).
    plot : str, optional
        Write the criterion curve as a PNG to this path.
    covariance_types : "all", str or list of str, optional
        Gaussian mixtures: also choose the covariance structure among these
        (``"all"``: mclust's default models, the 14 parsimonious structures, or E and V
        for one feature). The estimator's ``covariance_type`` (or the model's field) is
        replaced for each.
    **fit_kwargs
        Passed to :func:`latent_em.fit` for a model (e.g. ``tol``, ``accelerate``).

    Returns
    -------
    SelectionResult or ModelSelectionResult
        The table (``rows``), the chosen ``best_k`` and its fit; with
        ``covariance_types``, a :class:`ModelSelectionResult` (one table per structure,
        the best structure and K, ``format()`` in mclust's layout).
    """
    if covariance_types is not None:
        names = _covariance_list(covariance_types, X)
        results: dict[str, SelectionResult] = {}
        for name in names:
            if hasattr(estimator_or_model, "get_params"):
                if "covariance_type" not in estimator_or_model.get_params():
                    raise ValueError(
                        f"covariance_types: {type(estimator_or_model).__name__} has no "
                        "covariance_type parameter"
                    )
                params = {**estimator_or_model.get_params(), "covariance_type": name}
                candidate = type(estimator_or_model)(**params)
            else:
                if not hasattr(estimator_or_model, "covariance_type"):
                    raise ValueError(
                        f"covariance_types: {type(estimator_or_model).__name__} has no "
                        "covariance_type field"
                    )
                candidate = dataclasses.replace(estimator_or_model, covariance_type=name)
            results[name] = select_components(
                candidate,
                X,
                k_range,
                criterion,
                sample_weight=sample_weight,
                n_init=n_init,
                random_state=random_state,
                **fit_kwargs,
            )
        crit = results[names[0]].criterion
        best_name = min(names, key=lambda c: min(float(getattr(r, crit)) for r in results[c].rows))
        chosen = results[best_name]
        found = ModelSelectionResult(results, crit, best_name, chosen.best_k, chosen.best)
        if plot is not None:
            found.plot(plot)
        return found
    criterion = str(criterion).lower()
    if criterion not in CRITERIA:
        raise ValueError(f"criterion must be one of {CRITERIA}; got {criterion!r}")
    ks = _check_k_range(k_range)
    by_k: dict[int, SelectionRow] = {}
    fits: dict[int, Any] = {}
    is_estimator = hasattr(estimator_or_model, "get_params") and hasattr(estimator_or_model, "fit")
    if is_estimator:
        if "n_components" not in estimator_or_model.get_params():
            raise ValueError(
                f"estimator_or_model: {type(estimator_or_model).__name__} has no "
                "n_components parameter"
            )
        if fit_kwargs:
            raise TypeError(
                f"fit options {sorted(fit_kwargs)} apply to a model; set them on the estimator"
            )
        previous: EMResult | None = None
        for k in sorted(ks):
            est = type(estimator_or_model)(**{**estimator_or_model.get_params(), "n_components": k})
            est.fit(X, sample_weight=sample_weight)
            x = est._check_predict_data(X)
            weights = check_sample_weight(sample_weight, len(x))
            model_k = est.model_

            def from_split(params: Any, est: Any = est, model_k: Any = model_k, x: Any = x) -> Any:
                return fit(
                    model_k,
                    x,
                    params=params,
                    tol=est.tol,
                    max_iter=est.max_iter,
                    sample_weight=sample_weight,
                    chunk_size=est.chunk_size,
                    accelerate=est.accelerate,
                    warn_not_converged=False,
                )

            regular = est.result_
            result, start = _nested(previous, k, regular, from_split)
            if result is not regular:
                est = type(estimator_or_model)(**est.get_params())
                est._store_result(model_k, result, x)
            by_k[k] = _row_from_result(k, result, x, weights, len(regular.restarts), start)
            fits[k] = est
            previous = result
    else:
        model = estimator_or_model
        if not (dataclasses.is_dataclass(model) and hasattr(model, "n_components")):
            raise TypeError(
                "estimator_or_model must be an estimator with an n_components parameter or a "
                f"model dataclass with an n_components field; got {type(model).__name__}"
            )
        previous = None
        for k in sorted(ks):
            model_k = dataclasses.replace(model, n_components=k)  # type: ignore[type-var]
            x = model_k.check_data(X) if hasattr(model_k, "check_data") else X
            result = fit(
                model_k,
                x,
                n_init=n_init,
                random_state=random_state,
                sample_weight=sample_weight,
                **fit_kwargs,
            )
            weights = check_sample_weight(sample_weight, len(x))

            def refit(params: Any, model_k: Any = model_k, x: Any = x) -> Any:
                options = {**fit_kwargs, "warn_not_converged": False}
                return fit(model_k, x, params=params, sample_weight=sample_weight, **options)

            kept, start = _nested(previous, k, result, refit)
            by_k[k] = _row_from_result(k, kept, x, weights, len(result.restarts), start)
            fits[k] = kept
            previous = kept
    rows = [by_k[k] for k in ks]
    values = [getattr(r, criterion) for r in rows]
    best_k = rows[int(np.argmin(values))].n_components
    out = SelectionResult(tuple(rows), criterion, best_k, fits[best_k], fits)
    if plot is not None:
        out.plot(plot)
    return out
