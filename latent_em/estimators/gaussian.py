"""``GaussianMixture``: the scikit-learn-style estimator over :class:`GaussianMixtureModel`."""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from .._validation import check_int, check_positive_float
from ..exceptions import DegeneracyWarning
from ..models.gaussian import GaussianMixtureModel, GaussianMixtureParams
from ..models.gaussian import missing as missing_values
from ..models.gaussian.labels import PartiallyLabelledGaussianMixture, join_labels
from ..models.gaussian.prior import ConjugatePrior
from ._base import MixtureEstimator
from ._interop import reject_sparse
from .summary import (
    MCLUST_NAMES,
    by_feature_block,
    feature_names,
    format_table,
    matrix_block,
    weights_block,
)

__all__ = ["GaussianMixture"]


class GaussianMixture(MixtureEstimator):
    """Gaussian mixture fitted by the generic EM driver.

    Parameters
    ----------
    n_components : int, default 1
        Number of components K.
    covariance_type : str, default "full"
        Covariance structure: "full", "tied", "diag", "spherical" (or mclust's names for
        them, "VVV", "EEE", "VVI", "VII"), mclust's other parsimonious models "EII",
        "EEI", "VEI", "EVI", "VEE", "EVE", "VVE", "EEV", "VEV", "EVV" (covariances of shape
        ``(K, D, D)``), or the univariate "E", "V" (see
        :class:`~latent_em.models.GaussianMixtureModel`).
    tol : float, default 1e-6
        Convergence threshold on the change of the mean log-likelihood per iteration.
    reg_covar : float, default 1e-6
        Non-negative floor on every eigenvalue of every covariance (every variance for
        diag and spherical), in the squared units of the data: the fit maximizes the
        likelihood over the covariances that respect it, a bounded objective that EM
        provably increases. Covariances above the floor are the unregularized maximum
        likelihood estimates. For mclust's other structures (and E, V) it is instead the
        constant ``c`` of the penalty ``-(c/2) Σ_k tr(Σ_k⁻¹)`` added to the
        log-likelihood (MAP-EM, ``result_.log_prior``). See
        :class:`~latent_em.models.GaussianMixtureModel` and ``docs/mclust.md``.
    covariance_regularization : {"floor", "additive"}, default "floor"
        ``"additive"`` reproduces scikit-learn's update (``reg_covar`` added to the
        diagonal of every covariance estimate; ``n_k·reg_covar·I`` added to each scatter
        matrix for the parsimonious structures), which maximizes no fixed objective: EM
        may then lower the log-likelihood, which is recorded as an event, not an error.
    max_iter : int, default 1000
        Maximum EM iterations per restart.
    n_init : int, default 1
        Number of restarts; the best log-likelihood is kept and all are reported in
        ``result_.restarts``.
    init_params : {"kmeans", "k-means++", "random", "random_from_data", "hc", "mclust"}, \
            default "kmeans"
        Initialization method (see :class:`~latent_em.models.GaussianMixtureModel`).
    weights_init, means_init, covariances_init : array-like, optional
        Initial parameters; they override the corresponding initialized values.
    random_state : int, numpy.random.Generator or None
        Seed for initialization (bit-for-bit reproducible for an int).
    chunk_size : int, optional
        Rows per E-step chunk (bounded memory; same result).
    accelerate : {None, "squarem"} or latent_em.acceleration.Squarem, optional
        Acceleration of the EM map (``None``: plain EM; ``"squarem"``: SQUAREM, see
        :mod:`latent_em.acceleration`).
    dtype : {numpy.float64, numpy.float32}, default float64
        Working precision of the data and E-step (statistics are accumulated in float64;
        see :class:`~latent_em.models.GaussianMixtureModel`).
    prior : {None, "default"} or ConjugatePrior, optional
        mclust's conjugate prior (Fraley & Raftery 2007): ``"default"`` uses mclust's
        ``priorControl()`` defaults computed from the training data
        (:meth:`ConjugatePrior.default <latent_em.models.gaussian.prior.ConjugatePrior.default>`);
        EM then maximizes ``log L + log p(θ)`` (MAP), and BIC, AIC and ICL use the
        log-likelihood at the MAP estimate, as mclust's do. For full, tied, diag,
        spherical, EII, EEI, E and V.
    missing : {"error", "marginalize"}, default "error"
        Rows with NaN entries: an error, or fitted under missing-at-random (each row's
        likelihood is the density of its observed coordinates). ``predict``,
        ``predict_proba``, ``score_samples`` then accept such rows, and :meth:`impute`
        fills them with conditional means.

    Attributes
    ----------
    weights_ : (K,)
    means_ : (K, D)
    covariances_ : array
        ``(K, D, D)``, ``(D, D)``, ``(K, D)`` or ``(K,)`` by covariance type (full, tied,
        diag, spherical); ``(K, D, D)`` for mclust's other structures.
    precisions_ : array
        Inverses of the covariances, same shape.
    precisions_cholesky_ : array
        Cholesky factors of the precisions (scikit-learn's convention).
    converged_ : bool
    n_iter_ : int
    lower_bound_ : float
        Mean log-likelihood of the best fit (as scikit-learn's ``lower_bound_``).
    log_likelihood_ : float
        Total (weighted) log-likelihood.
    history_ : ndarray
        Log-likelihood after every E-step.
    result_ : EMResult
        Everything the driver reported (restarts, events, ...).

    Examples
    --------
    >>> import latent_em
    >>> X = latent_em.datasets.load_faithful()
    >>> gm = latent_em.GaussianMixture(2, random_state=0).fit(X)
    >>> gm.converged_
    True
    >>> round(gm.log_likelihood_, 2)
    -1130.26
    """

    def __init__(
        self,
        n_components: int = 1,
        *,
        covariance_type: str = "full",
        tol: float = 1e-6,
        reg_covar: float = 1e-6,
        max_iter: int = 1000,
        n_init: int = 1,
        init_params: str = "kmeans",
        weights_init: Any = None,
        means_init: Any = None,
        covariances_init: Any = None,
        random_state: Any = None,
        chunk_size: int | None = None,
        accelerate: str | None = None,
        dtype: Any = np.float64,
        missing: str = "error",
        prior: Any = None,
        covariance_regularization: str = "floor",
    ) -> None:
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.tol = tol
        self.reg_covar = reg_covar
        self.max_iter = max_iter
        self.n_init = n_init
        self.init_params = init_params
        self.weights_init = weights_init
        self.means_init = means_init
        self.covariances_init = covariances_init
        self.random_state = random_state
        self.chunk_size = chunk_size
        self.accelerate = accelerate
        self.dtype = dtype
        self.missing = missing
        self.prior = prior
        self.covariance_regularization = covariance_regularization

    def fit(
        self,
        X: Any,
        y: Any = None,
        sample_weight: Any = None,
        *,
        labels: Any = None,
        callback: Callable[[int, Any, float], Any] | None = None,
    ) -> GaussianMixture:
        """Fit by EM with ``n_init`` restarts; the best log-likelihood is kept.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data.
        y : ignored
            Present for scikit-learn compatibility (a clusterer ignores ``y``; partial
            labels are the keyword ``labels``).
        labels : array-like of int of shape (n_samples,), optional
            Partial labels (semi-supervised fitting, mclust's ``MclustSSC``): the
            component of each row, ``-1`` where unknown. Known rows keep their component
            (fixed responsibilities); ``log_likelihood_`` is then the combined
            log-likelihood, ``Σ_known log φ_y N(x; μ_y, Σ_y) + Σ_unknown log p(x)``.
            Needs ``X`` in memory.
        sample_weight, callback
            As in :meth:`MixtureEstimator.fit`.
        """
        reject_sparse(X)
        model = self._make_model()
        x = self._check_fit_data(X, model)
        self._record_feature_names(X)
        if isinstance(self.prior, str):
            if self.prior != "default":
                raise ValueError(
                    f"prior must be None, 'default' or a ConjugatePrior; got {self.prior!r}"
                )
            if not isinstance(x, np.ndarray):
                raise ValueError(
                    "prior='default' needs X in memory (its hyperparameters "
                    "come from the data); give a ConjugatePrior instead"
                )
            data = x[~np.isnan(x).any(axis=1)] if model.missing == "marginalize" else x
            resolved = ConjugatePrior.default(data, model.n_components, model.covariance_type)
            model = dataclasses.replace(model, prior=resolved)
        fitted: Any = model
        data_in = x
        if labels is not None:
            if not isinstance(x, np.ndarray):
                raise ValueError("labels (partial labels) need X in memory, as an array")
            fitted = PartiallyLabelledGaussianMixture(model)
            data_in = join_labels(x, labels, model.n_components)
        self._fit_and_store(model, x, sample_weight, callback, fitted=fitted, data=data_in)
        self._flag_spurious_maximum()
        return self

    def _flag_spurious_maximum(self) -> None:
        """Flag a collapsed component in the chosen fit (a spurious maximum).

        ``degenerate_components_`` lists them (empty for a regular fit). When another
        restart ended at a regular maximum and a degenerate one was kept for its larger
        likelihood, a :class:`~latent_em.DegeneracyWarning` says so: the likelihood grows
        without bound as a component shrinks, so its larger value does not make it the
        better fit.
        """
        collapsed = self.model_.collapsed_components(self.params_)
        self.degenerate_components_ = np.asarray(collapsed, dtype=int)
        restarts = self.result_.restarts
        regular = [o for o in restarts if not o.collapsed]
        if not collapsed or not regular:
            return
        best_regular = max(regular, key=lambda o: o.objective)
        warnings.warn(
            f"the chosen fit is a spurious maximum: component(s) {collapsed} collapsed "
            f"(a covariance eigenvalue at reg_covar={self.model_.reg_covar:g}), while "
            f"restart {best_regular.index} reached a regular maximum with log-likelihood "
            f"{best_regular.log_likelihood:.6g} (kept: {self.log_likelihood_:.6g}). The "
            "likelihood grows without bound as a component shrinks onto few points; "
            "consider the regular fit (latent_em.fit with that restart's seed), fewer "
            "components, a larger reg_covar or prior='default'",
            DegeneracyWarning,
            stacklevel=3,
        )

    def impute(self, X: Any) -> np.ndarray:
        """``X`` with every NaN replaced by its conditional mean given the row's observed
        values under the fitted mixture, ``Σ_k r_nk E[x_M | x_O, k]`` (needs
        ``missing="marginalize"``)."""
        x = self._check_predict_data(X)
        return missing_values.impute(self.model_, self.params_, np.asarray(x, dtype=float))

    def _structure(self) -> str:
        """The covariance structure fitted (mclust's aliases resolved)."""
        model = getattr(self, "model_", None)
        return str(model.covariance_type) if model is not None else str(self.covariance_type)

    def _describe_model(self) -> str:
        structure = self._structure()
        names = MCLUST_NAMES.get(structure)
        if names is None:  # mclust's other parsimonious structures: their own names
            return f"Gaussian mixture, {structure} covariance (mclust {structure})"
        d = int(getattr(self, "n_features_in_", 2))
        code = names[0] if d > 1 else names[1]
        words = names[2] if d > 1 else ("equal variance" if code == "E" else "unequal variance")
        return f"Gaussian mixture, {structure} covariance (mclust {code}: {words})"

    def _parameter_blocks(self, digits: int) -> list[tuple[str, list[str]]]:
        k, d = self.means_.shape
        names = feature_names(self, d)
        blocks = [weights_block(self, digits), by_feature_block(self, "Means", self.means_, digits)]
        cov = np.asarray(self.covariances_)
        structure = self._structure()
        if structure == "full" or structure not in MCLUST_NAMES:  # (K, D, D) matrices
            for j in range(k):
                blocks.append((f"Covariance of component {j}", matrix_block(names, cov[j], digits)))
        elif structure == "tied":
            blocks.append(
                ("Covariance (tied: shared by all components)", matrix_block(names, cov, digits))
            )
        elif structure == "diag":
            blocks.append(by_feature_block(self, "Variances (diagonal covariances)", cov, digits))
        else:
            table = format_table(["variance"], list(range(k)), cov[None, :], digits=digits)
            blocks.append(("Variances (spherical: one per component, every feature)", table))
        return blocks

    def plot(
        self,
        X: Any,
        what: str = "classification",
        *,
        path: str | None = None,
        feature_names: Any = None,
    ) -> Any:
        """mclust's plots of the fit on data ``X``: ``"classification"``, ``"uncertainty"``
        or ``"density"``; a pairs layout when ``X`` has more than two columns.

        See :func:`latent_em.plotting.plot_mixture`. Axis names default to
        ``feature_names_in_`` (the DataFrame's columns) when the estimator has them.

        Returns
        -------
        matplotlib.figure.Figure or str
            The figure, or ``path`` when a PNG was written there.
        """
        from ..plotting import plot_mixture

        responsibilities = self.predict_proba(X)
        x = self._check_predict_data(X)
        k, d = self.means_.shape
        if feature_names is None and getattr(self, "feature_names_in_", None) is not None:
            feature_names = [str(n) for n in self.feature_names_in_]
        return plot_mixture(
            x,
            self.weights_,
            self.means_,
            self.model_.covariance.to_full(self.covariances_, k, d),
            what=what,
            responsibilities=responsibilities,
            feature_names=feature_names,
            path=path,
            title=f"{self.covariance_type} covariance, K={k}: {what}",
        )

    def _make_model(self) -> GaussianMixtureModel:
        check_int(self.n_init, "n_init", minimum=1)
        check_int(self.max_iter, "max_iter", minimum=0)
        check_positive_float(self.tol, "tol", allow_zero=True)
        return GaussianMixtureModel(
            n_components=self.n_components,
            covariance_type=self.covariance_type,
            reg_covar=self.reg_covar,
            init_params=self.init_params,
            weights_init=self.weights_init,
            means_init=self.means_init,
            covariances_init=self.covariances_init,
            dtype=self.dtype,
            missing=self.missing,
            prior=None if self.prior is None or isinstance(self.prior, str) else self.prior,
            covariance_regularization=self.covariance_regularization,
        )

    def _set_fitted_attributes(self, params: GaussianMixtureParams) -> None:
        self.weights_ = np.asarray(params.weights)
        self.means_ = np.asarray(params.means)
        self.covariances_ = np.asarray(params.covariances)
        self.precisions_cholesky_ = self.model_.covariance.precisions_cholesky(self.covariances_)
        pc = self.precisions_cholesky_
        if pc.ndim == 3:  # full and mclust's other structures: (K, D, D)
            self.precisions_ = np.einsum("kij,klj->kil", pc, pc)
        elif self.model_.covariance_type == "tied":
            self.precisions_ = pc @ pc.T
        else:
            self.precisions_ = pc**2
