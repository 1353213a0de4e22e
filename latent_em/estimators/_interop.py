"""scikit-learn interoperability of the estimators, without importing scikit-learn.

scikit-learn is optional: nothing here imports it at module level. Its tags are built
only when scikit-learn asks for them (``__sklearn_tags__``, scikit-learn >= 1.6, or
``_more_tags`` for older versions), and the feature-name rules are reimplemented with
scikit-learn's messages so that pipelines and ``check_estimator`` see the behaviour they
expect (``sklearn.utils.validation._check_feature_names``).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

__all__ = [
    "feature_names_of",
    "check_feature_names",
    "reject_sparse",
    "not_fitted_error",
    "sklearn_tags",
    "legacy_tags",
]


def feature_names_of(X: Any) -> np.ndarray | None:
    """The column names of a DataFrame-like ``X`` as an object array, or ``None``.

    As in scikit-learn, names are kept only when every column name is a string; a mix
    of string and non-string names is an error, and non-string names (a DataFrame built
    from an array has integer names) count as no names.
    """
    columns = getattr(X, "columns", None)
    if columns is None or isinstance(X, np.ndarray) or isinstance(columns, str):
        return None
    try:
        names = np.asarray(list(columns), dtype=object)
    except TypeError:
        return None
    if names.ndim != 1 or names.size == 0:
        return None
    kinds = sorted({type(name).__name__ for name in names})
    is_str = [isinstance(name, str) for name in names]
    if all(is_str):
        return names
    if any(is_str):
        raise TypeError(
            "Feature names are only supported if all input features have string names, "
            f"but your input has {kinds} as feature name / column name types. Convert "
            "them all to str (X.columns = X.columns.astype(str)) to use them."
        )
    return None


def reject_sparse(X: Any) -> None:
    """A SciPy sparse matrix or array is refused with a message that says so."""
    module = type(X).__module__ or ""
    if module.startswith("scipy.sparse") or (hasattr(X, "tocsr") and hasattr(X, "nnz")):
        raise TypeError(
            f"sparse input is not supported (got a {type(X).__name__}): pass a dense array, "
            "e.g. X.toarray()"
        )


_NOT_FITTED_CLASSES: dict[type, type] = {}


def not_fitted_error(base: type[Exception], message: str) -> Exception:
    """``base(message)``; when scikit-learn is already imported, an instance of a subclass
    of both ``base`` and ``sklearn.exceptions.NotFittedError``, so that code catching
    either (scikit-learn's ``check_is_fitted`` users, its estimator checks) sees it.

    scikit-learn is not imported here: if it is not loaded, nobody can be catching its
    exception class.
    """
    import sys

    sklearn_exceptions = sys.modules.get("sklearn.exceptions")
    other = getattr(sklearn_exceptions, "NotFittedError", None)
    if other is None or issubclass(base, other):
        return base(message)
    cls = _NOT_FITTED_CLASSES.get(base)
    if cls is None:
        cls = type(base.__name__, (base, other), {"__module__": base.__module__})
        _NOT_FITTED_CLASSES[base] = cls
    return cls(message)


def check_feature_names(estimator: Any, X: Any) -> None:
    """Check the column names of ``X`` against those seen in ``fit`` (scikit-learn's rules).

    Raises ``ValueError`` when both have names that differ (unseen, missing or reordered
    columns) and warns (``UserWarning``) when only one of them has names.
    """
    fitted = getattr(estimator, "feature_names_in_", None)
    given = feature_names_of(X)
    name = type(estimator).__name__
    if fitted is None and given is None:
        return
    if fitted is not None and given is None:
        warnings.warn(
            f"X does not have valid feature names, but {name} was fitted with feature names",
            UserWarning,
            stacklevel=4,
        )
        return
    if fitted is None or given is None:
        warnings.warn(
            f"X has feature names, but {name} was fitted without feature names",
            UserWarning,
            stacklevel=4,
        )
        return
    fitted_list, given_list = list(fitted), list(given)
    if fitted_list == given_list:
        return
    message = "The feature names should match those that were passed during fit.\n"
    unseen = sorted(set(given_list) - set(fitted_list))
    missing = sorted(set(fitted_list) - set(given_list))

    def listing(names: list[Any]) -> str:
        shown = "".join(f"- {n}\n" for n in names[:5])
        return shown + ("- ...\n" if len(names) > 5 else "")

    if unseen:
        message += "Feature names unseen at fit time:\n" + listing(unseen)
    if missing:
        message += "Feature names seen at fit time, yet now missing:\n" + listing(missing)
    if not unseen and not missing:
        message += "Feature names must be in the same order as they were in fit.\n"
    raise ValueError(message)


def sklearn_tags(
    *, positive_only: bool = False, string: bool = False, categorical: bool = False
) -> Any:
    """The ``sklearn.utils.Tags`` of a mixture estimator (scikit-learn >= 1.6).

    A mixture is a density estimator (as ``sklearn.mixture.GaussianMixture``): ``y`` is
    not required, ``score`` is the mean log-likelihood, and ``fit_predict`` clusters.
    """
    from sklearn.utils import InputTags, Tags, TargetTags

    return Tags(
        estimator_type="density_estimator",
        target_tags=TargetTags(required=False),
        input_tags=InputTags(
            two_d_array=True,
            positive_only=positive_only,
            string=string,
            categorical=categorical,
            allow_nan=False,
            sparse=False,
        ),
    )


def legacy_tags(
    *, positive_only: bool = False, string: bool = False, categorical: bool = False
) -> dict[str, Any]:
    """The same tags as a ``_more_tags`` dictionary (scikit-learn < 1.6)."""
    x_types = ["2darray"] + (["categorical"] if categorical else []) + (["string"] * string)
    return {
        "requires_y": False,
        "requires_positive_X": positive_only,
        "allow_nan": False,
        "X_types": x_types,
    }
