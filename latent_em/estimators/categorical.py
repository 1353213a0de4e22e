"""``CategoricalMixture``: latent class analysis over :class:`CategoricalMixtureModel`.

The estimator accepts items as integers, strings or pandas categoricals and remembers
the mapping from category labels to the model's integer codes ``0 .. C_j - 1``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..models.categorical_mixture import CategoricalMixtureModel, CategoricalMixtureParams
from ._discrete import DiscreteMixtureEstimator
from ._interop import check_feature_names, reject_sparse
from .summary import feature_names, format_table, weights_block

__all__ = ["CategoricalMixture"]

#: the attributes ``fit`` learns from the data before the model is fitted
_ENCODING = ("categories_", "feature_names_in_")


def _is_missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        # NaN and NaT are the values not equal to themselves
        return bool(value != value)
    except TypeError:
        # pandas.NA: its comparisons are themselves missing
        return True


def _columns(X: Any) -> tuple[list[Any], list[np.ndarray], list[list[Any] | None]]:
    """Column names, values and declared categories (pandas categoricals) of ``X``."""
    if hasattr(X, "columns") and hasattr(X, "iloc"):  # a pandas DataFrame (duck-typed)
        names = list(X.columns)
        values, declared = [], []
        for name in names:
            col = X[name]
            cat = getattr(col, "cat", None) if str(col.dtype) == "category" else None
            values.append(col.to_numpy(dtype=object) if cat is not None else col.to_numpy())
            declared.append(list(cat.categories) if cat is not None else None)
        return names, values, declared
    if isinstance(X, (str, bytes)):
        raise TypeError("X must be a 2-D array of category labels; got a string")
    try:
        arr = np.asarray(X)
    except Exception as exc:  # ragged lists and the like
        raise TypeError(f"X must be a 2-D array-like; got {type(X).__name__}") from exc
    if arr.ndim != 2:
        hint = " (reshape a single item with X.reshape(-1, 1))" if arr.ndim == 1 else ""
        raise ValueError(f"X must be 2-D (n_samples, n_items); got shape {arr.shape}{hint}")
    if arr.shape[0] == 0:
        raise ValueError("X is empty: it has 0 rows")
    if arr.shape[1] == 0:
        raise ValueError("X has 0 columns")
    return (
        list(range(arr.shape[1])),
        [arr[:, j] for j in range(arr.shape[1])],
        [None] * len(range(arr.shape[1])),
    )


def _check_missing(name: Any, values: np.ndarray) -> None:
    if values.dtype.kind == "f":
        missing = np.isnan(values)
        if np.any(np.isinf(values)):
            row = int(np.flatnonzero(np.isinf(values))[0])
            raise ValueError(
                f"X contains an infinite value: column {name!r} at row {row} (inf is not a "
                "category label)"
            )
    elif values.dtype.kind in "biu":
        return
    else:
        missing = np.fromiter((_is_missing(v) for v in values), dtype=bool, count=values.size)
    if np.any(missing):
        row = int(np.flatnonzero(missing)[0])
        raise ValueError(
            f"X contains missing values (NaN/None): column {name!r} at row {row}; latent class "
            "analysis here needs complete rows (drop or impute them first)"
        )


def _labels_of(name: Any, values: np.ndarray) -> np.ndarray:
    """The distinct labels of a column, sorted."""
    try:
        return np.asarray(sorted(set(values.tolist())))
    except TypeError as exc:
        raise TypeError(
            f"column {name!r} mixes category labels of types that cannot be ordered "
            f"({sorted({type(v).__name__ for v in values.tolist()})}); use one type per column"
        ) from exc


class CategoricalMixture(DiscreteMixtureEstimator):
    """Latent class analysis: a mixture of independent categorical items.

    Parameters
    ----------
    n_components : int, default 1
        Number of latent classes K.
    tol : float, default 1e-6
        Convergence threshold on the change of the mean log-likelihood per iteration.
    max_iter : int, default 1000
        Maximum EM iterations per restart.
    n_init : int, default 1
        Number of restarts; the best log-likelihood is kept (poLCA's ``nrep``; latent
        class models have many local maxima: use 10 or more).
    init_params : {"random", "random_from_data"}, default "random"
        Initialization (see :class:`~latent_em.models.CategoricalMixtureModel`).
    weight_concentration : float, optional
        Symmetric Dirichlet prior (α >= 1) on the class shares: MAP-EM.
    dirichlet_prior : float, optional
        Symmetric Dirichlet prior (β >= 1) on every class-conditional distribution:
        MAP-EM, keeps estimates off 0 and 1 when β > 1.
    random_state : int, numpy.random.Generator or None
        Seed for the initializations.
    chunk_size : int, optional
        Rows per E-step chunk (bounded memory; same result).
    accelerate : None, optional
        Acceleration of the EM map (``None``: plain EM).

    Attributes
    ----------
    weights_ : (K,)
        Class shares (poLCA's "estimated class population shares").
    probs_ : list of (K, C_j) arrays
        Class-conditional response probabilities per item; column c of item j is the
        category ``categories_[j][c]``.
    categories_ : list of arrays
        The category labels of every item, in code order: the sorted distinct values
        seen in ``fit``, or a pandas categorical's own categories.
    feature_names_in_ : array
        Column names, when ``X`` was a pandas DataFrame with string column names.
    converged_, n_iter_, log_likelihood_, lower_bound_, history_, result_
        As for :class:`~latent_em.GaussianMixture`.

    Examples
    --------
    >>> import latent_em
    >>> X = latent_em.datasets.load_carcinoma()  # codes 1 = no, 2 = yes
    >>> lca = latent_em.CategoricalMixture(3, n_init=10, tol=1e-10, random_state=0).fit(X)
    >>> round(lca.log_likelihood_, 3)
    -293.705
    >>> [c.tolist() for c in lca.categories_][:2]
    [[1, 2], [1, 2]]
    """

    def __init__(
        self,
        n_components: int = 1,
        *,
        tol: float = 1e-6,
        max_iter: int = 1000,
        n_init: int = 1,
        init_params: str = "random",
        weight_concentration: float | None = None,
        dirichlet_prior: float | None = None,
        random_state: Any = None,
        chunk_size: int | None = None,
        accelerate: str | None = None,
    ) -> None:
        self.n_components = n_components
        self.tol = tol
        self.max_iter = max_iter
        self.n_init = n_init
        self.init_params = init_params
        self.weight_concentration = weight_concentration
        self.dirichlet_prior = dirichlet_prior
        self.random_state = random_state
        self.chunk_size = chunk_size
        self.accelerate = accelerate

    # ------------------------------------------------------------------ encoding
    def _prepare_fit_data(self, X: Any) -> np.ndarray:
        """Learn the categories of every column and return the integer codes."""
        names, values, declared = _columns(X)
        if not values:
            raise ValueError("X has 0 columns")
        if len(values[0]) == 0:
            raise ValueError("X is empty: it has 0 rows")
        categories = []
        for name, vals, decl in zip(names, values, declared, strict=True):
            _check_missing(name, vals)
            observed = _labels_of(name, vals)
            if observed.size < 2:
                raise ValueError(
                    f"column {name!r} has a single category ({_plain(observed[0])!r}): it "
                    "carries no "
                    "information about the classes; drop it"
                )
            categories.append(np.asarray(decl, dtype=object) if decl is not None else observed)
        self.categories_ = categories
        return self._encode(names, values)

    def _encode(self, names: list[Any], values: list[np.ndarray]) -> np.ndarray:
        codes = np.empty((len(values[0]), len(values)), dtype=np.intp)
        for j, (name, vals) in enumerate(zip(names, values, strict=True)):
            cats = self.categories_[j]
            if vals.dtype.kind in "biuf" and cats.dtype.kind in "biuf":
                # numeric labels: a vectorized lookup in the sorted categories
                pos = np.clip(np.searchsorted(cats, vals), 0, cats.size - 1)
                unseen = cats[pos] != vals
                codes[:, j] = pos
            else:
                lookup = {label: c for c, label in enumerate(cats.tolist())}
                col = np.array([lookup.get(v, -1) for v in vals.tolist()], dtype=np.intp)
                unseen = col < 0
                codes[:, j] = col
            if np.any(unseen):
                row = int(np.flatnonzero(unseen)[0])
                label = vals.tolist()[row]
                raise ValueError(
                    f"column {name!r} holds the category {label!r} at row {row}, which was not "
                    f"seen during fit (known categories: {cats.tolist()})"
                )
        return codes

    def _check_predict_data(self, X: Any) -> np.ndarray:
        self._check_fitted()
        reject_sparse(X)
        check_feature_names(self, X)
        names, values, _ = _columns(X)
        if len(values) != len(self.categories_):
            raise ValueError(
                f"X has {len(values)} features, but {type(self).__name__} is expecting "
                f"{len(self.categories_)} features as input (the number of columns seen in fit)"
            )
        for name, vals in zip(names, values, strict=True):
            _check_missing(name, vals)
        return self.model_.check_data(self._encode(names, values))

    _tag_options = {"string": True, "categorical": True}

    def fit(
        self,
        X: Any,
        y: Any = None,
        sample_weight: Any = None,
        frequency: Any = None,
        *,
        callback: Callable[[int, Any, float], Any] | None = None,
    ) -> CategoricalMixture:
        """Fit by EM (see :class:`DiscreteMixtureEstimator`'s ``fit``).

        The encoding learned from ``X`` (``categories_``, ``feature_names_in_``) replaces
        the fitted one only when the fit succeeds: a failed refit leaves a fitted
        estimator able to predict as before.
        """
        kept = {k: self.__dict__[k] for k in _ENCODING if k in self.__dict__}
        try:
            super().fit(X, sample_weight=sample_weight, frequency=frequency, callback=callback)
        except BaseException:
            for key in _ENCODING:
                self.__dict__.pop(key, None)
            self.__dict__.update(kept)
            raise
        return self

    # ------------------------------------------------------------------ model
    def _describe_model(self) -> str:
        return "Latent class model (independent categorical items)"

    def _parameter_blocks(self, digits: int) -> list[tuple[str, list[str]]]:
        blocks = [weights_block(self, digits)]
        names = feature_names(self, len(self.probs_))
        for name, cats, probs in zip(names, self.categories_, self.probs_, strict=True):
            labels = [str(_plain(c)) for c in cats]
            blocks.append(
                (
                    f"Item-response probabilities of {name} (P({name} = category | class))",
                    format_table(labels, list(range(probs.shape[0])), probs.T, digits=digits),
                )
            )
        return blocks

    def _make_model(self) -> CategoricalMixtureModel:
        self._check_common_options()
        return CategoricalMixtureModel(
            n_components=self.n_components,
            n_categories=tuple(len(c) for c in self.categories_),
            init_params=self.init_params,
            weight_concentration=self.weight_concentration,
            dirichlet_prior=self.dirichlet_prior,
        )

    def _set_fitted_attributes(self, params: CategoricalMixtureParams) -> None:
        self.weights_ = np.asarray(params.weights)
        self.probs_ = [np.asarray(p) for p in params.probs]

    def sample(self, n_samples: int = 1, random_state: Any = None) -> tuple[Any, np.ndarray]:
        """Draw ``n_samples`` rows as category labels; returns ``(X, labels)``."""
        codes, z = super().sample(n_samples, random_state)
        columns = [self.categories_[j][codes[:, j]] for j in range(codes.shape[1])]
        if all(c.dtype.kind in "biuf" for c in columns):
            return np.column_stack(columns), z
        out = np.empty(codes.shape, dtype=object)
        for j, c in enumerate(columns):
            out[:, j] = c
        return out, z


def _plain(value: object) -> object:
    """A NumPy scalar as the Python value it holds (for readable messages)."""
    item = getattr(value, "item", None)
    return item() if callable(item) else value
