"""Shared machinery of the scikit-learn-style mixture estimators.

An estimator is thin: it validates its options, builds an immutable model, calls the
generic driver :func:`latent_em.fit`, and keeps the :class:`~latent_em.EMResult`.
Fitted attributes end in ``_`` as in scikit-learn.
"""

from __future__ import annotations

import inspect
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..em import EMResult, check_sample_weight, fit, posterior
from ..exceptions import NotFittedError

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

    # ------------------------------------------------------------------ sklearn API
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
        return f"{type(self).__name__}({', '.join(shown)})"

    # ------------------------------------------------------------------ hooks
    def _make_model(self) -> Any:
        raise NotImplementedError

    def _set_fitted_attributes(self, params: Any) -> None:
        raise NotImplementedError

    def _check_fit_data(self, X: Any, model: Any) -> Any:
        return model.check_data(X)

    def _check_predict_data(self, X: Any) -> Any:
        self._check_fitted()
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
                f"X has {shape[1]} features, but {type(self).__name__} was fitted with {n_features}"
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
        model = self._make_model()
        x = self._check_fit_data(X, model)
        result = fit(
            model,
            x,
            n_init=self.n_init,
            tol=self.tol,
            max_iter=self.max_iter,
            sample_weight=sample_weight,
            chunk_size=self.chunk_size,
            random_state=self.random_state,
            accelerate=self.accelerate,
            callback=callback,
        )
        self._store_result(model, result, x)
        return self

    def _store_result(self, model: Any, result: EMResult, x: Any) -> None:
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
            raise NotFittedError(f"this {type(self).__name__} is not fitted yet; call fit(X) first")

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
