"""Shared machinery of the scikit-learn-style mixture estimators.

An estimator is thin: it validates its options, builds an immutable model, calls the
generic driver :func:`latent_em.fit`, and keeps the :class:`~latent_em.EMResult`.
Fitted attributes end in ``_`` as in scikit-learn.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..em import EMResult, check_sample_weight, fit, posterior
from ..exceptions import NotFittedError
from ._interop import (
    check_feature_names,
    feature_names_of,
    legacy_tags,
    not_fitted_error,
    reject_sparse,
    sklearn_tags,
)

__all__ = ["MixtureEstimator"]


class MixtureEstimator:
    """Base class: subclasses implement ``_make_model`` and ``_set_fitted_attributes``.

    Subclasses may also override ``_check_fit_data`` / ``_check_predict_data`` to
    validate or encode data (e.g. category codes) before it reaches the model.
    """

    # options every estimator takes (set by the subclass's __init__)
    n_init: int
    tol: float
    max_iter: int
    chunk_size: int | None
    random_state: Any
    accelerate: str | None

    #: scikit-learn input tags of the estimator (see ``__sklearn_tags__``)
    _tag_options: dict[str, bool] = {}

    # ------------------------------------------------------------------ sklearn API
    def __sklearn_tags__(self) -> Any:
        """scikit-learn's tags (scikit-learn >= 1.6; imported only when it asks)."""
        return sklearn_tags(**self._tag_options)

    def _more_tags(self) -> dict[str, Any]:
        """scikit-learn's tags for scikit-learn < 1.6."""
        return legacy_tags(**self._tag_options)

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "result_")

    @classmethod
    def _get_param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [p for p in sig.parameters if p != "self"]

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Constructor arguments, as in scikit-learn."""
        return {name: getattr(self, name) for name in self._get_param_names()}

    def set_params(self, **params: Any) -> MixtureEstimator:
        """Set constructor arguments, as in scikit-learn."""
        valid = set(self._get_param_names())
        for key, value in params.items():
            if key not in valid:
                raise ValueError(
                    f"invalid parameter {key!r} for {type(self).__name__}; valid: {sorted(valid)}"
                )
            setattr(self, key, value)
        return self

    def __repr__(self) -> str:
        defaults = {
            name: p.default
            for name, p in inspect.signature(type(self).__init__).parameters.items()
            if name != "self"
        }
        shown = []
        for name, value in self.get_params().items():
            default = defaults.get(name, inspect.Parameter.empty)
            if isinstance(value, np.ndarray) or value is not default and value != default:
                shown.append(f"{name}={value!r}")
        call = f"{type(self).__name__}({', '.join(shown)})"
        if not hasattr(self, "result_"):
            return f"{call} [not fitted]"
        result = self.result_
        state = (
            f"converged after {result.n_iter} iterations"
            if result.converged
            else f"NOT converged after {result.n_iter} iterations"
        )
        return (
            f"{call} [fitted: log-likelihood {result.log_likelihood:.6g}, "
            f"n={result.n_observations:g}, {state}]"
        )

    def summary(self, parameters: bool = False) -> str:
        """The fit laid out like mclust's ``summary``: model, log-likelihood, n, df, BIC,
        ICL and the clustering table; with ``parameters=True`` the labelled parameters.

        The same block is printed by ``latent-em fit``. BIC and ICL are on the training
        data, with latent_em's sign (smaller is better; mclust prints the negatives).

        Parameters
        ----------
        parameters : bool, default False
            Also list the parameters (weights, means, covariances, probabilities, ...).

        Returns
        -------
        str
            The text (a ``str`` subclass that the interactive prompt shows as text).
        """
        from .summary import summary_text

        return summary_text(self, parameters=parameters)

    def _describe_model(self) -> str:
        return type(self).__name__

    def _parameter_blocks(self, digits: int) -> list[tuple[str, list[str]]]:
        """Labelled parameter tables for :meth:`summary` (``(heading, lines)`` pairs)."""
        from .summary import format_number

        blocks = []
        for field in getattr(self.params_, "_fields", ()):
            value = np.asarray(getattr(self.params_, field), dtype=float)
            blocks.append((field, [" ".join(format_number(v, digits) for v in value.ravel())]))
        return blocks

    # ------------------------------------------------------------------ hooks
    def _make_model(self) -> Any:
        raise NotImplementedError

    def _set_fitted_attributes(self, params: Any) -> None:
        raise NotImplementedError

    def _check_fit_data(self, X: Any, model: Any) -> Any:
        return model.check_data(X)

    def _record_feature_names(self, X: Any) -> None:
        """Keep the column names of a DataFrame as ``feature_names_in_`` (as scikit-learn)."""
        names = feature_names_of(X)
        if names is not None:
            self.feature_names_in_ = names
        elif "feature_names_in_" in vars(self):
            del self.feature_names_in_

    def _check_predict_data(self, X: Any) -> Any:
        self._check_fitted()
        reject_sparse(X)
        check_feature_names(self, X)
        # data to predict need no minimum number of rows (one per component is a rule for
        # fitting): a model's check_chunk, when it has one, checks without it
        check = getattr(self.model_, "check_chunk", None) or getattr(
            self.model_, "check_data", None
        )
        x = check(X) if callable(check) else X
        n_features = getattr(self, "n_features_in_", None)
        shape = np.shape(x)
        if n_features is not None and len(shape) == 2 and shape[1] != n_features:
            raise ValueError(
                f"X has {shape[1]} features, but {type(self).__name__} is expecting "
                f"{n_features} features as input (the number of columns seen in fit)"
            )
        return x

    # ------------------------------------------------------------------ fitting
    def fit(
        self,
        X: Any,
        y: Any = None,
        sample_weight: Any = None,
        *,
        callback: Callable[[int, Any, float], Any] | None = None,
    ) -> MixtureEstimator:
        """Fit by EM with ``n_init`` restarts; the best log-likelihood is kept.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data.
        y : ignored
            Present for scikit-learn compatibility.
        sample_weight : array-like of shape (n_samples,), optional
            Non-negative weights; integer weights are equivalent to repeating rows
            (frequency weights), and ``n`` in BIC is their sum.
        callback : callable, optional
            Called as ``callback(iteration, params, objective)`` after every E-step of
            every restart, as by :func:`latent_em.fit`: ``iteration`` counts from 0 in each
            of the ``n_init`` restarts, ``params`` are the model's parameters (a
            NamedTuple) at that E-step and ``objective`` is the log-likelihood plus the
            log-prior. The return value is ignored. Meant for monitoring (progress,
            logging); like scikit-learn's ``monitor`` it is an argument of ``fit``, not of
            the constructor, so it is neither saved nor part of ``get_params``.
        """
        reject_sparse(X)
        model = self._make_model()
        x = self._check_fit_data(X, model)
        self._record_feature_names(X)
        self._fit_and_store(model, x, sample_weight, callback)
        return self

    def _fit_and_store(
        self,
        model: Any,
        x: Any,
        sample_weight: Any,
        callback: Callable[[int, Any, float], Any] | None,
        *,
        fitted: Any = None,
        data: Any = None,
    ) -> None:
        """Run :func:`latent_em.fit` with the estimator's options and store the result.

        ``fitted`` and ``data`` (default: ``model`` and ``x``) are what EM runs on when
        it differs from the model kept (a wrapper such as partial labels); the stored
        result then names ``model``.
        """
        result = fit(
            model if fitted is None else fitted,
            x if data is None else data,
            n_init=self.n_init,
            tol=self.tol,
            max_iter=self.max_iter,
            sample_weight=sample_weight,
            chunk_size=self.chunk_size,
            random_state=self.random_state,
            accelerate=self.accelerate,
            callback=callback,
        )
        if fitted is not None:
            result = dataclasses.replace(result, model=model)
        self._store_result(model, result, x, sample_weight)

    def _store_result(
        self, model: Any, result: EMResult, x: Any, sample_weight: Any = None
    ) -> None:
        self.model_ = model
        self.result_ = result
        self.params_ = result.params
        self.converged_ = result.converged
        self.n_iter_ = result.n_iter
        self.log_likelihood_ = result.log_likelihood
        self.lower_bound_ = result.mean_log_likelihood
        self.history_ = result.history
        shape = np.shape(x)
        if len(shape) == 2:
            self.n_features_in_ = shape[1]
        self._set_fitted_attributes(result.params)
        for stale in ("classification_counts_", "icl_"):  # from an earlier fit
            vars(self).pop(stale, None)
        if isinstance(x, np.ndarray):
            self._store_classification(x, sample_weight)

    def _store_classification(self, x: np.ndarray, sample_weight: Any) -> None:
        """The clustering table and ICL on the training data, for :meth:`summary`.

        One more pass over the data, in blocks (bounded memory): ``classification_counts_``
        is the (weighted) number of rows whose most probable component is each k, and
        ``icl_`` is ``BIC - 2 Σ_n w_n log r_{n, ĉ_n}`` (see :meth:`icl`).
        """
        n = x.shape[0]
        w = check_sample_weight(sample_weight, n)
        k = int(getattr(self, "n_components", 0)) or None
        counts = None
        entropy = 0.0
        block = int(self.chunk_size or 65536)
        for start in range(0, n, block):
            resp, _ = posterior(self.model_, self.params_, x[start : start + block])
            resp = np.asarray(resp)
            if resp.ndim != 2:
                return
            if counts is None:
                counts = np.zeros(k or resp.shape[1])
            best = np.argmax(resp, axis=1)
            wb = w[start : start + block]
            counts += np.bincount(best, weights=wb, minlength=counts.size)
            with np.errstate(divide="ignore"):
                entropy += float(np.dot(wb, np.log(resp[np.arange(resp.shape[0]), best])))
        if counts is None:
            return
        total = float(w.sum())
        ll = float(self.result_.log_likelihood)
        bic = -2.0 * ll + self.n_parameters_ * math.log(total)
        self.classification_counts_ = counts
        self.icl_ = bic - 2.0 * entropy

    def fit_predict(
        self,
        X: Any,
        y: Any = None,
        sample_weight: Any = None,
        *,
        callback: Callable[[int, Any, float], Any] | None = None,
    ) -> np.ndarray:
        """Fit, then return the most probable component of every row (``callback`` as in
        :meth:`fit`)."""
        return self.fit(X, sample_weight=sample_weight, callback=callback).predict(X)

    def _check_fitted(self) -> None:
        if not hasattr(self, "result_"):
            raise not_fitted_error(
                NotFittedError, f"this {type(self).__name__} is not fitted yet; call fit(X) first"
            )

    # ------------------------------------------------------------------ inference
    def predict_proba(self, X: Any) -> np.ndarray:
        """Posterior membership probabilities (responsibilities), shape ``(n, K)``."""
        x = self._check_predict_data(X)
        resp, _ = posterior(self.model_, self.params_, x)
        return np.asarray(resp)

    def predict(self, X: Any) -> np.ndarray:
        """Most probable component of every row, shape ``(n,)``."""
        return np.argmax(self.predict_proba(X), axis=1)

    def score_samples(self, X: Any) -> np.ndarray:
        """``log p(x_n)`` for every row, shape ``(n,)``."""
        x = self._check_predict_data(X)
        _, lm = posterior(self.model_, self.params_, x)
        return lm

    def score(self, X: Any, y: Any = None, sample_weight: Any = None) -> float:
        """Weighted mean log-likelihood per row (scikit-learn's ``score``)."""
        lm = self.score_samples(X)
        w = check_sample_weight(sample_weight, lm.shape[0])
        return float(np.dot(w, lm) / w.sum())

    @property
    def n_parameters_(self) -> int:
        """Number of free parameters of the fitted model."""
        self._check_fitted()
        return int(self.model_.n_parameters(self.params_))

    def _total_ll(self, X: Any, sample_weight: Any) -> tuple[float, float]:
        lm = self.score_samples(X)
        w = check_sample_weight(sample_weight, lm.shape[0])
        return float(np.dot(w, lm)), float(w.sum())

    def bic(self, X: Any, sample_weight: Any = None) -> float:
        """Bayesian information criterion ``-2 log L + p log n`` (smaller is better).

        mclust reports ``2 log L - p log n`` (larger is better): the negative of this.
        """
        ll, n = self._total_ll(X, sample_weight)
        return -2.0 * ll + self.n_parameters_ * math.log(n)

    def aic(self, X: Any, sample_weight: Any = None) -> float:
        """Akaike information criterion ``-2 log L + 2 p`` (smaller is better)."""
        ll, _ = self._total_ll(X, sample_weight)
        return -2.0 * ll + 2.0 * self.n_parameters_

    def icl(self, X: Any, sample_weight: Any = None) -> float:
        """Integrated completed likelihood (Biernacki, Celeux & Govaert 2000).

        ``ICL = BIC - 2 Σ_n w_n log r_{n, ĉ_n}`` with ``ĉ_n`` the most probable component,
        as computed by mclust's ``icl`` (whose sign is opposite: smaller is better here).
        """
        x = self._check_predict_data(X)
        resp, lm = posterior(self.model_, self.params_, x)
        resp = np.asarray(resp)
        w = check_sample_weight(sample_weight, lm.shape[0])
        best = resp[np.arange(resp.shape[0]), np.argmax(resp, axis=1)]
        with np.errstate(divide="ignore"):
            log_best = np.log(best)
        ll = float(np.dot(w, lm))
        bic = -2.0 * ll + self.n_parameters_ * math.log(w.sum())
        return bic - 2.0 * float(np.dot(w, log_best))

    def sample(self, n_samples: int = 1, random_state: Any = None) -> tuple[Any, np.ndarray]:
        """Draw ``n_samples`` rows from the fitted model; returns ``(X, labels)``."""
        self._check_fitted()
        if isinstance(n_samples, bool) or not isinstance(n_samples, (int, np.integer)):
            raise TypeError(f"n_samples must be an integer; got {n_samples!r}")
        if n_samples < 1:
            raise ValueError(f"n_samples must be >= 1; got {n_samples}")
        rng = np.random.default_rng(random_state)
        return self.model_.sample(self.params_, int(n_samples), rng)

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike[str]) -> Path:
        """Save the estimator (constructor arguments and fitted state) without pickle.

        Writes ``path`` (JSON metadata, conventionally ``NAME.json``) and ``NAME.npz``
        (arrays) next to it; see :mod:`latent_em.io` for the format.

        Returns
        -------
        pathlib.Path
            The path of the JSON file.
        """
        from ..io import save

        return save(self, path)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> MixtureEstimator:
        """Load an estimator saved by :meth:`save`; it must be an instance of ``cls``."""
        from ..io import load

        obj = load(path)
        if not isinstance(obj, cls):
            raise TypeError(f"{str(path)!r} holds a {type(obj).__name__}, not a {cls.__name__}")
        return obj
