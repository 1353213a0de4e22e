"""Shared layer of the discrete mixture estimators: the ``frequency`` input.

Discrete data are often given as a table of distinct response patterns with their
counts. ``frequency`` fits such a table without expanding it: frequency weights are
row weights that stand for repeated rows, so the fit, the log-likelihood and the
``n`` of BIC (the sum of the frequencies) equal those of the expanded data.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .._validation import check_int, check_positive_float
from ..em import check_sample_weight
from ._base import MixtureEstimator
from ._interop import reject_sparse

__all__ = ["DiscreteMixtureEstimator", "combine_weights"]


def check_frequency(frequency: Any, n: int) -> np.ndarray:
    """Validate ``frequency``: one non-negative integer count per row, not all zero."""
    if isinstance(frequency, (str, bytes)):
        raise TypeError("frequency must be an array of counts; got a string")
    try:
        f = np.asarray(frequency, dtype=float)
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"frequency must be numeric counts; got {type(frequency).__name__}"
        ) from exc
    if f.ndim != 1 or f.shape[0] != n:
        raise ValueError(f"frequency must have shape ({n},), one count per row of X; got {f.shape}")
    if not np.all(np.isfinite(f)):
        raise ValueError("frequency contains NaN or infinite values")
    if np.any(f < 0):
        raise ValueError(f"frequency must be non-negative counts; found {f.min():g}")
    if np.any(f != np.floor(f)):
        bad = int(np.flatnonzero(f != np.floor(f))[0])
        raise ValueError(
            f"frequency must hold whole counts; row {bad} has {f[bad]:g} (use sample_weight "
            "for non-integer weights)"
        )
    if not np.any(f > 0):
        raise ValueError("frequency is zero for every row")
    return f


def combine_weights(sample_weight: Any, frequency: Any, n: int) -> np.ndarray | None:
    """Row weights ``frequency × sample_weight`` (either may be ``None``)."""
    if frequency is None:
        return None if sample_weight is None else check_sample_weight(sample_weight, n)
    f = check_frequency(frequency, n)
    if sample_weight is None:
        return f
    return f * check_sample_weight(sample_weight, n)


class DiscreteMixtureEstimator(MixtureEstimator):
    """Base of the Bernoulli, categorical and Poisson mixture estimators.

    Adds ``frequency`` to ``fit``, ``fit_predict``, ``score``, ``bic``, ``aic`` and
    ``icl``. Subclasses implement ``_make_model`` (from their options and, for the
    categorical mixture, the encoding learned by ``_prepare_fit_data``).
    """

    n_init: int
    tol: float
    max_iter: int
    chunk_size: int | None
    random_state: Any
    accelerate: str | None

    def _check_common_options(self) -> None:
        check_int(self.n_init, "n_init", minimum=1)
        check_int(self.max_iter, "max_iter", minimum=0)
        check_positive_float(self.tol, "tol", allow_zero=True)

    def _prepare_fit_data(self, X: Any) -> Any:
        """Hook: convert the user's data before the model is built (default: as is)."""
        return X

    def fit(
        self,
        X: Any,
        y: Any = None,
        sample_weight: Any = None,
        frequency: Any = None,
        *,
        callback: Callable[[int, Any, float], Any] | None = None,
    ) -> DiscreteMixtureEstimator:
        """Fit by EM with ``n_init`` restarts; the best log-likelihood is kept.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data (one row per observation, or per distinct pattern with
            ``frequency``).
        y : ignored
            Present for scikit-learn compatibility.
        sample_weight : array-like of shape (n_samples,), optional
            Non-negative row weights.
        frequency : array-like of shape (n_samples,), optional
            Whole-number count of every row (a table of response patterns); the same
            fit as repeating each row that many times. Multiplies ``sample_weight``.
        callback : callable, optional
            Called as ``callback(iteration, params, objective)`` after every E-step of
            every restart (``iteration`` counts from 0 in each restart); see
            ``MixtureEstimator.fit``.
        """
        reject_sparse(X)
        x = self._prepare_fit_data(X)
        model = self._make_model()
        x = model.check_data(x)
        self._record_feature_names(X)
        weights = combine_weights(sample_weight, frequency, len(x))
        self._fit_and_store(model, x, weights, callback)
        return self

    def fit_predict(
        self,
        X: Any,
        y: Any = None,
        sample_weight: Any = None,
        frequency: Any = None,
        *,
        callback: Callable[[int, Any, float], Any] | None = None,
    ) -> np.ndarray:
        """Fit, then return the most probable component of every row (``callback`` as in
        :meth:`fit`)."""
        return self.fit(
            X, sample_weight=sample_weight, frequency=frequency, callback=callback
        ).predict(X)

    def _weights(self, X: Any, sample_weight: Any, frequency: Any) -> Any:
        if frequency is None:
            return sample_weight
        return combine_weights(sample_weight, frequency, len(self._check_predict_data(X)))

    def score(
        self, X: Any, y: Any = None, sample_weight: Any = None, frequency: Any = None
    ) -> float:
        """Weighted mean log-likelihood per observation."""
        return super().score(X, sample_weight=self._weights(X, sample_weight, frequency))

    def bic(self, X: Any, sample_weight: Any = None, frequency: Any = None) -> float:
        """``-2 log L + p log n`` with ``n`` the total weight (the sum of the frequencies)."""
        return super().bic(X, sample_weight=self._weights(X, sample_weight, frequency))

    def aic(self, X: Any, sample_weight: Any = None, frequency: Any = None) -> float:
        """``-2 log L + 2 p``."""
        return super().aic(X, sample_weight=self._weights(X, sample_weight, frequency))

    def icl(self, X: Any, sample_weight: Any = None, frequency: Any = None) -> float:
        """BIC plus twice the (weighted) entropy of the hard classification."""
        return super().icl(X, sample_weight=self._weights(X, sample_weight, frequency))
