"""The Gaussian mixture model ``p(x) = Σ_k φ_k N(x; μ_k, Σ_k)``.

EM updates (see ``docs/theory.md``), with ``r_nk`` the responsibilities and ``w_n`` the
row weights:

* E-step: ``r_nk = φ_k N(x_n; μ_k, Σ_k) / Σ_j φ_j N(x_n; μ_j, Σ_j)`` (log space).
* M-step: ``N_k = Σ_n w_n r_nk``; ``φ_k = N_k / Σ_j N_j`` (Lagrange multiplier);
  ``μ_k = Σ_n w_n r_nk x_n / N_k``; with ``S_k = Σ_n w_n r_nk (x_n - μ_k)(x_n - μ_k)ᵀ / N_k``,
  ``Σ_k = V_k max(Λ_k, reg_covar) V_kᵀ`` for ``S_k = V_k Λ_k V_kᵀ``: the maximizer of
  ``Q`` over covariances whose eigenvalues are all ``>= reg_covar`` (Ingrassia 2004), so
  EM never lowers the likelihood on that set. ``covariance_regularization="additive"``
  gives scikit-learn's ``Σ_k = S_k + reg_covar·I`` instead, which maximizes no fixed
  objective (the model then states ``monotone_objective = False``). For mclust's
  parsimonious structures ``reg_covar`` is instead a penalty ``-(reg_covar/2) Σ_k tr(Σ_k⁻¹)``
  on the objective (see :meth:`GaussianMixtureModel.log_prior`).

The statistics are centred at the *current* means (``sum_dx = Σ w r (x - μ_old)``), which
keeps them additive over chunks (the current means are fixed during an E-step) and
numerically stable for data far from the origin.

The covariance structure is a small strategy object per type (full, tied, diag,
spherical); shared code never branches on the ``covariance_type`` string.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..._lazy import lazy_module
from ..._validation import (
    as_float_matrix,
    check_choice,
    check_int,
    check_param_shapes,
    check_positive_float,
)
from ...compiled.pool import run_items
from ...constraints import Constraint, Real, Simplex
from .._kmeans import kmeans_plusplus, lloyd
from .._mixture import KernelMixture
from . import missing as missing_values
from . import prior as conjugate_prior
from .covariance import COVARIANCE_NAMES, COVARIANCES, Covariance, canonical_covariance
from .hierarchical import vvv_partition, ward_partition
from .kernels import ExpandedKernel, compiled_e_step, log_normalize, run_blocks, use_compiled
from .params import (
    INIT_METHODS,
    REGULARIZATIONS,
    GaussianMixtureParams,
    GaussianMixtureStats,
)
from .threads import MIN_BLOCKS_PER_THREAD, single_threaded_blas

linalg = lazy_module("scipy.linalg")

__all__ = ["GaussianMixtureModel"]

_LOG_2PI = math.log(2.0 * math.pi)


@dataclasses.dataclass(frozen=True, eq=False)
class GaussianMixtureModel(KernelMixture):
    """Gaussian mixture model for the generic EM driver.

    Parameters
    ----------
    n_components : int
        Number of components K.
    covariance_type : str, default "full"
        Covariance structure: scikit-learn's "full", "tied", "diag", "spherical" (also
        accepted under mclust's names "VVV", "EEE", "VVI", "VII": the same structures and
        results), mclust's other parsimonious models "EII", "EEI", "VEI", "EVI", "VEE",
        "EVE", "VVE", "EEV", "VEV", "EVV" (``Σ_k = λ_k D_k A_k D_kᵀ``, Celeux & Govaert
        1995; ``covariances`` of shape ``(K, D, D)``), or mclust's univariate "E", "V"
        (one feature; ``(K, 1, 1)``). An alias is stored as the scikit-learn name.
    reg_covar : float, default 1e-6
        Non-negative floor ε on the eigenvalues of every covariance, in the squared
        units of the data (absolute, as scikit-learn's ``reg_covar``). The fit maximizes
        the likelihood over the parameters whose covariances have all eigenvalues
        ``>= ε`` (every variance ``>= ε`` for diag and spherical; the pooled covariance
        for tied); each M-step is the exact maximizer of ``Q`` on that set (the
        eigenvalues of the sample covariance clipped at ε: Ingrassia 2004; Ingrassia &
        Rocci 2007), so the reported log-likelihood never decreases and is bounded.
        Covariances whose eigenvalues are all above ε are the unregularized maximum
        likelihood estimates. ``0`` leaves the likelihood unbounded where a component
        collapses onto fewer than D + 1 distinct points (then repaired and reported).
        mclust's other structures (``ParsimoniousCovariance``: the ten beyond these four,
        and E, V) have no floor: for them ``reg_covar`` is the constant ``c`` of the
        penalty ``-(c/2) Σ_k tr(Σ_k⁻¹)`` added to the log-likelihood (MAP-EM under that
        improper prior, reported by :meth:`log_prior`), whose M-step is the structure's
        own M-step on the scatter matrices ``W_k + c·I``; the penalized likelihood is
        bounded and never decreases. See ``docs/mclust.md``.
    covariance_regularization : {"floor", "additive"}, default "floor"
        ``"floor"``: ``reg_covar`` is the eigenvalue floor above (the penalty for the
        parsimonious structures). ``"additive"``: scikit-learn's update
        ``Σ_k = S_k + reg_covar·I`` (identical results from the same start; for the
        parsimonious structures ``n_k·reg_covar·I`` added to each scatter matrix). It
        is not the maximizer of any fixed objective, so EM may lower the log-likelihood
        when ``reg_covar`` is comparable to a variance; the model states
        ``monotone_objective = False`` and the driver records such decreases as events
        instead of raising :class:`~latent_em.MonotonicityError`.
    init_params : {"kmeans", "k-means++", "random", "random_from_data", "hc", "mclust"}
        How initial responsibilities are formed: Lloyd's k-means from k-means++ seeds,
        k-means++ seeds alone (nearest-seed assignment), uniform random
        responsibilities, random data points as means (nearest-point assignment), or
        mclust-style model-based hierarchical agglomeration: ``"hc"`` Ward's criterion
        (mclust's ``hcEII``), ``"mclust"`` mclust's default start ``hc(X, "VVV", use =
        "SVD")`` (deterministic, at most 10 000 rows; see :mod:`.hierarchical`).
    weights_init, means_init, covariances_init : array-like, optional
        User-provided initial values; they override the corresponding part of the
        initialization from ``init_params``.
    dtype : {numpy.float64, numpy.float32}, default float64
        Precision in which the data are held. ``float32`` halves their memory and the
        reads of every pass (in memory, from ``.npy`` files or from Dask). The kernels
        convert each cache-sized block to float64 as they centre it, and all arithmetic,
        statistics and parameters are float64: a float32 fit differs from a float64 fit
        only through the rounding of the data to float32, which the tests bound at
        ``1e-5`` relative in the parameters and ``1e-6`` in the mean log-likelihood
        (``tests/test_float32.py``).
    missing : {"error", "marginalize"}, default "error"
        Rows with NaN entries: an error, or fitted under missing-at-random (each row's
        density is that of its observed coordinates; the M-step uses the conditional
        moments of the missing ones, Ghahramani & Jordan 1994; see
        :mod:`latent_em.models.gaussian.missing`). Without NaN both are the same fit.
    prior : ConjugatePrior, optional
        mclust's conjugate prior on the means and covariances (``priorControl()``;
        :class:`~latent_em.models.gaussian.prior.ConjugatePrior`, its defaults from
        ``ConjugatePrior.default(X, n_components, covariance_type)``): EM becomes MAP-EM
        on ``log L + log p(θ)``. For full, tied, diag, spherical, EII, EEI, E and V.
    n_threads : int, optional
        Threads for the fused E-step over a large chunk (default: the environment
        variable ``LATENT_EM_NUM_THREADS`` if set, else the CPUs this process may use).
        From ``N·K ≥ 10⁵`` (rows times components) the E-step runs the compiled (Numba)
        kernel of :mod:`latent_em.compiled.gaussian`, whose result does not depend on
        ``n_threads`` at all; below, the NumPy kernels, where each thread runs
        single-threaded BLAS on its own run of cache-sized blocks (needs
        ``threadpoolctl``, otherwise one thread) and the result depends on
        ``n_threads`` only through the order of floating-point additions. BLAS stays
        limited to one thread for the whole of a :func:`latent_em.fit`
        (``fit_context``), callbacks included.

    Notes
    -----
    Numerical safeguards, all reported as events of the fit: a component that loses all
    its responsibility is re-seeded by splitting the heaviest component along its main
    axis; a covariance that is not positive definite after the M-step gets the smallest
    diagonal jitter that makes it so; a covariance at the ``reg_covar`` floor (a
    component collapsed onto fewer than D+1 distinct points, or a constant column) is
    reported.
    """

    n_components: int
    covariance_type: str = "full"
    reg_covar: float = 1e-6
    init_params: str = "kmeans"
    weights_init: Any = None
    means_init: Any = None
    covariances_init: Any = None
    dtype: Any = np.float64
    n_threads: int | None = None
    missing: str = "error"
    prior: Any = None
    covariance_regularization: str = "floor"
    _cov: Covariance = dataclasses.field(init=False, repr=False)

    def __post_init__(self) -> None:
        try:
            dtype = np.dtype(self.dtype)
        except TypeError as exc:
            raise TypeError(
                f"dtype must be numpy.float32 or numpy.float64; got {self.dtype!r}"
            ) from exc
        if dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
            raise ValueError(f"dtype must be numpy.float32 or numpy.float64; got {dtype}")
        object.__setattr__(self, "dtype", dtype)
        if self.n_threads is not None:
            check_int(self.n_threads, "n_threads", minimum=1)
        check_int(self.n_components, "n_components", minimum=1)
        check_choice(self.covariance_type, "covariance_type", COVARIANCE_NAMES)
        # mclust's names of the four scikit-learn structures are the same structures
        object.__setattr__(self, "covariance_type", canonical_covariance(self.covariance_type))
        check_positive_float(self.reg_covar, "reg_covar", allow_zero=True)
        check_choice(self.covariance_regularization, "covariance_regularization", REGULARIZATIONS)
        check_choice(self.init_params, "init_params", INIT_METHODS)
        check_choice(self.missing, "missing", missing_values.MISSING)
        object.__setattr__(self, "_cov", COVARIANCES[self.covariance_type])
        if self.prior is not None:
            if not isinstance(self.prior, conjugate_prior.ConjugatePrior):
                raise TypeError(
                    "prior must be None or a ConjugatePrior (e.g. ConjugatePrior.default(X, "
                    f"n_components, covariance_type)); got {type(self.prior).__name__}"
                )
            conjugate_prior.check_structure(self.prior, self.covariance_type)
        k = self.n_components
        if self.weights_init is not None:
            w = np.asarray(self.weights_init, dtype=float)
            if w.shape != (k,):
                raise ValueError(f"weights_init must have shape ({k},); got {w.shape}")
            if not np.all(np.isfinite(w)) or np.any(w < 0):
                raise ValueError("weights_init must be finite and non-negative")
            if abs(w.sum() - 1.0) > 1e-6:
                raise ValueError(f"weights_init must sum to one; it sums to {w.sum():.8g}")
            if np.any(w == 0):
                raise ValueError(
                    f"weights_init must be positive; component {int(np.argmin(w))} has weight "
                    "0, so EM could never give it responsibility (drop the component, or "
                    "give it a small positive weight)"
                )
            object.__setattr__(self, "weights_init", w / w.sum())
        if self.means_init is not None:
            m = np.asarray(self.means_init, dtype=float)
            if m.ndim != 2 or m.shape[0] != k:
                raise ValueError(f"means_init must have shape ({k}, n_features); got {m.shape}")
            if not np.all(np.isfinite(m)):
                raise ValueError("means_init contains NaN or infinite values")
            object.__setattr__(self, "means_init", m)
        if self.covariances_init is not None:
            c = np.asarray(self.covariances_init, dtype=float)
            d = self._n_features_from_init(c)
            expected = self._cov.shape(k, d)
            if c.shape != expected:
                raise ValueError(
                    f"covariances_init for covariance_type={self.covariance_type!r} must have "
                    f"shape {expected}; got {c.shape}"
                )
            bad = self._cov.check_pd(c)
            if bad or (c.ndim >= 2 and c.shape[-1] == c.shape[-2] and not _symmetric(c)):
                what = "symmetric positive definite" if c.ndim >= 2 else "positive"
                where = f" (component {bad[0]})" if bad and c.ndim != 2 else ""
                raise ValueError(f"covariances_init must be {what}{where}")
            object.__setattr__(self, "covariances_init", c)

    def _n_features_from_init(self, c: np.ndarray) -> int:
        if self.means_init is not None:
            return int(np.shape(self.means_init)[1])
        d = self._cov.features_of(c)
        return 1 if d is None else d

    @property
    def covariance(self) -> Covariance:
        return self._cov

    @property
    def monotone_objective(self) -> bool:
        """Whether EM provably never lowers the log-likelihood (the ``"floor"``
        regularization); see :class:`latent_em.protocols.DeclaresObjective`."""
        return self.covariance_regularization == "floor"

    def log_likelihood_round_off(self, params: GaussianMixtureParams) -> float:
        """A bound on the float64 error of ``log p(x_n)`` per row at ``params``.

        A covariance with condition number κ, stored as a float64 matrix, is known only to
        ``ε κ`` relative in its narrowest direction (its Cholesky factor is exact for a
        matrix within ``ε ‖Σ‖`` of it), so a squared Mahalanobis distance of order D is
        known to about ``D ε κ``: ``8 D ε κ`` bounds it with a margin. Typical fits
        (κ < 10⁴) get below ``1e-10``; a component collapsed to the ``reg_covar`` floor
        beside large variances (κ = 10⁸ at 1e-6 beside 100) gets ``~1e-6``. The driver
        widens its monotonicity tolerance by this (see
        :class:`latent_em.protocols.StatesRoundOff`).
        """
        d = int(np.shape(params.means)[1])
        kappa = self.covariance.condition(np.asarray(params.covariances, dtype=float))
        return 8.0 * d * float(np.finfo(np.float64).eps) * kappa

    def _check_floor(self, params: GaussianMixtureParams) -> None:
        """Refuse covariances below the ``reg_covar`` floor (``"floor"`` mode).

        EM maximizes over the covariances with every eigenvalue ``>= reg_covar``; its
        guarantee needs a start inside that set (the first M-step would otherwise leave
        a better-than-feasible start and look like a decrease). ``initialize`` always
        starts inside; given ``params`` are checked here (from :meth:`validate_params`).
        """
        floor = self.covariance_floor
        if floor <= 0:
            return
        cov = np.asarray(params.covariances, dtype=float)
        k = int(np.shape(params.means)[0])
        try:
            low = self.covariance.min_variance(cov, k)
            high = self.covariance.max_variance(cov, k)
        except (np.linalg.LinAlgError, ValueError):
            return  # not a covariance at all: the E-step reports it
        below = np.flatnonzero(low < floor * (1 - 1e-9) - 64 * np.finfo(float).eps * high)
        if below.size:
            j = int(below[0])
            raise ValueError(
                f"params: the covariance of component {j} has an eigenvalue of {low[j]:.3g}, "
                f"below reg_covar={floor:g}; the fit maximizes the likelihood over "
                "covariances whose every eigenvalue is at least reg_covar. Raise them "
                "(model.covariance.apply_floor(covariances, reg_covar)) or lower reg_covar"
            )

    @property
    def covariance_floor(self) -> float:
        """The eigenvalue floor ε of the covariances (0 in the additive mode, with a
        ``prior`` and for mclust's parsimonious structures, which have no floor)."""
        if self.covariance.uses_current or self.prior is not None:
            return 0.0
        return float(self.reg_covar) if self.monotone_objective else 0.0

    @property
    def covariance_penalty(self) -> float:
        """The constant ``c`` of the covariance penalty ``-(c/2) Σ_k tr(Σ_k⁻¹)`` in the
        objective: ``reg_covar`` for mclust's parsimonious structures (``"floor"`` mode,
        no ``prior``), 0 otherwise (the four scikit-learn structures use the eigenvalue
        floor instead). See :meth:`log_prior`."""
        if not self.covariance.uses_current or self.prior is not None:
            return 0.0
        return float(self.reg_covar) if self.monotone_objective else 0.0

    def _estimate_covariances(
        self, counts: np.ndarray, delta: np.ndarray, second: np.ndarray
    ) -> np.ndarray:
        if self.monotone_objective:
            return self.covariance.estimate(counts, delta, second, floor=self.reg_covar)
        return self.covariance.estimate(counts, delta, second, add=self.reg_covar)

    # ---- data
    def check_data(self, x: Any) -> np.ndarray:
        """Validate ``x`` as an ``(n, D)`` float matrix with at least K rows."""
        arr = self._with_missing(
            x,
            lambda v: _checked(
                as_float_matrix(v, "X", min_rows=self.n_components, dtype=self.dtype)
            ),
        )
        self.covariance.check_features(arr.shape[1])
        for name, init in (("means_init", self.means_init),):
            if init is not None and np.shape(init)[1] != arr.shape[1]:
                raise ValueError(
                    f"{name} has {np.shape(init)[1]} features but X has {arr.shape[1]}"
                )
        if (
            self.covariances_init is not None
            and self.covariance.features_of(self.covariances_init) is not None
        ):
            cd = np.shape(self.covariances_init)[-1]
            if cd != arr.shape[1]:
                raise ValueError(f"covariances_init has {cd} features but X has {arr.shape[1]}")
        return arr

    def check_chunk(self, x: Any) -> np.ndarray:
        """Validate one chunk of data read from disk or Dask: as :meth:`check_data`, but
        a chunk may have fewer than K rows."""
        return self._with_missing(x, lambda v: _checked(as_float_matrix(v, "X", dtype=self.dtype)))

    def _with_missing(self, x: Any, check: Any) -> np.ndarray:
        """``check(x)``, NaN allowed when ``missing="marginalize"`` (infinity never)."""
        if self.missing != "marginalize":
            return check(x)
        raw = np.asarray(x)
        if raw.dtype.kind != "f":
            return check(x)
        nan = np.isnan(raw)
        if not nan.any():
            return check(x)
        arr = check(np.where(nan, 0.0, raw))
        arr[nan.reshape(arr.shape)] = np.nan
        return arr

    def _has_missing(self, x: np.ndarray) -> bool:
        return self.missing == "marginalize" and bool(np.isnan(x).any())

    # ---- parameters
    def make_params(self, weights: Any, means: Any, covariances: Any) -> GaussianMixtureParams:
        """Validated parameters from arrays (shapes as in :class:`GaussianMixtureParams`)."""
        w = np.asarray(weights, dtype=float)
        m = np.asarray(means, dtype=float)
        c = np.asarray(covariances, dtype=float)
        k = self.n_components
        if w.shape != (k,) or abs(w.sum() - 1) > 1e-6 or np.any(w < 0):
            raise ValueError(f"weights must be {k} non-negative numbers summing to one")
        if m.ndim != 2 or m.shape[0] != k:
            raise ValueError(f"means must have shape ({k}, n_features); got {m.shape}")
        expected = self.covariance.shape(k, m.shape[1])
        if c.shape != expected:
            raise ValueError(f"covariances must have shape {expected}; got {c.shape}")
        if self.covariance.check_pd(c):
            raise ValueError("covariances must be positive definite")
        return GaussianMixtureParams(w, m, c)

    def validate_params(self, params: Any, x: Any) -> None:
        """Parameters passed to ``fit``: a :class:`GaussianMixtureParams` shaped for ``x``,
        with covariances inside the ``reg_covar`` floor (the driver then checks that they
        are finite and inside :attr:`constraints`)."""
        k, d = self.n_components, np.shape(x)[1]
        shapes = {"weights": (k,), "means": (k, d), "covariances": self.covariance.shape(k, d)}
        check_param_shapes(type(self).__name__, params, GaussianMixtureParams, shapes)
        self._check_floor(params)

    @property
    def constraints(self) -> Mapping[str, Constraint]:
        """Free parameters: weights on the simplex, real means, PD/positive covariances."""
        return {"weights": Simplex(), "means": Real(), "covariances": self.covariance.constraint}

    def n_parameters(self, params: GaussianMixtureParams) -> int:
        """``K - 1 + K D`` plus the covariance parameters of the chosen structure."""
        k, d = params.means.shape
        return k - 1 + k * d + self.covariance.n_parameters(k, d)

    def initialize(self, x: np.ndarray, rng: np.random.Generator) -> GaussianMixtureParams:
        """Initial parameters: responsibilities from ``init_params``, then one M-step,
        then the user's ``*_init`` values where given."""
        x = np.asarray(x, dtype=float)
        if self._has_missing(x):
            empty = np.flatnonzero(np.isnan(x).all(axis=0))
            if empty.size:
                raise ValueError(
                    f"X column {int(empty[0])} has no observed value (all NaN): nothing can "
                    "be estimated for it; drop it"
                )
            # start from the data with each missing value replaced by its column's mean
            x = missing_values.fill_column_means(x)
        k = self.n_components
        n = x.shape[0]
        if self.means_init is not None and self.init_params in ("kmeans", "k-means++"):
            # the user's means define the initial partition
            labels = np.argmin(_sqdist(x, self.means_init), axis=1)
            resp = _one_hot(labels, k)
        elif self.init_params == "kmeans":
            centers, labels = lloyd(x, kmeans_plusplus(x, k, rng))
            resp = _one_hot(labels, k)
        elif self.init_params == "k-means++":
            centers = kmeans_plusplus(x, k, rng)
            resp = _one_hot(np.argmin(_sqdist(x, centers), axis=1), k)
        elif self.init_params == "hc":
            resp = _one_hot(ward_partition(x, k), k)
        elif self.init_params == "mclust":
            resp = _one_hot(vvv_partition(x, k), k)
        elif self.init_params == "random":
            resp = rng.uniform(size=(n, k))
            resp /= resp.sum(axis=1, keepdims=True)
        else:  # random_from_data
            centers = x[rng.choice(n, size=k, replace=n < k)]
            resp = _one_hot(np.argmin(_sqdist(x, centers), axis=1), k)
        params = self._params_from_responsibilities(x, resp, rng)
        updates = {}
        if self.weights_init is not None:
            updates["weights"] = self.weights_init.copy()
        if self.means_init is not None:
            updates["means"] = self.means_init.copy()
        if self.covariances_init is not None:
            # a start inside the constrained set, where EM's guarantee holds
            floor = self.covariance_floor
            updates["covariances"] = self.covariance.apply_floor(self.covariances_init, floor)
        return params._replace(**updates)

    def _params_from_responsibilities(
        self, x: np.ndarray, resp: np.ndarray, rng: np.random.Generator
    ) -> GaussianMixtureParams:
        k, d = self.n_components, x.shape[1]
        counts = resp.sum(axis=0)
        if np.any(counts <= 0):
            # an initial cluster without points (duplicated rows give k-means fewer
            # distinct centres than K): hand it one row of the largest cluster
            resp = _one_hot(_fill_empty_clusters(x, np.argmax(resp, axis=1), k), k)
            counts = resp.sum(axis=0)
        means = (resp.T @ x) / counts[:, None]
        zero_cov = np.zeros(self.covariance.shape(k, d))
        start = GaussianMixtureParams(counts / counts.sum(), means, zero_cov)
        stats = self.expected_stats(start, x, resp, np.ones(x.shape[0]))
        params = self.m_step(start, stats)
        bad = self.covariance.check_pd(params.covariances)
        if bad:
            params = params._replace(covariances=self.covariance.jitter(params.covariances, bad))
        return params

    # ---- the contract
    def _precisions_cholesky(self, params: GaussianMixtureParams) -> np.ndarray:
        try:
            return self.covariance.precisions_cholesky(np.asarray(params.covariances))
        except (linalg.LinAlgError, ValueError) as exc:
            bad = self.covariance.check_pd(np.asarray(params.covariances))
            raise ValueError(
                f"covariance of component(s) {bad} is not positive definite; increase "
                "reg_covar or check covariances_init"
            ) from exc

    def _log_terms(
        self, params: GaussianMixtureParams, d: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Means, precision Cholesky factors and ``log φ_k - ½ D log 2π + log det P_k``."""
        means = np.asarray(params.means, dtype=float)
        prec_chol = self._precisions_cholesky(params)
        with np.errstate(divide="ignore"):
            log_w = np.log(np.asarray(params.weights, dtype=float))
        const = -0.5 * d * _LOG_2PI + self.covariance.log_det_precisions_cholesky(prec_chol, d)
        return means, prec_chol, np.broadcast_to(const, log_w.shape) + log_w

    def _kernel_args(
        self, params: GaussianMixtureParams, d: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(means, prec_chol, const, centre)`` of :meth:`Covariance.kernel`."""
        means, prec_chol, const = self._log_terms(params, d)
        # centre on the mixture's mean so expanded quadratic forms do not cancel badly
        centre = np.asarray(params.weights, dtype=float) @ means
        return means, prec_chol, const, centre

    def _kernel(self, params: GaussianMixtureParams, d: int) -> ExpandedKernel:
        return self.covariance.kernel(*self._kernel_args(params, d))

    def _as_working(self, x: Any) -> np.ndarray:
        x = np.asarray(x)
        if x.dtype != self.dtype:
            x = x.astype(self.dtype)
        if x.ndim != 2:
            raise ValueError(f"X must be 2-D (n_samples, n_features); got shape {x.shape}")
        return x

    def log_weighted_densities(self, params: GaussianMixtureParams, x: np.ndarray) -> np.ndarray:
        """``(n, K)`` table of ``log φ_k + log N(x_n; μ_k, Σ_k)`` (float64); with
        ``missing="marginalize"``, of the observed coordinates of each row."""
        x = self._as_working(x)
        if self._has_missing(x):
            return missing_values.log_weighted_densities(self, params, x)
        out = np.empty((x.shape[0], self.n_components))
        with single_threaded_blas():
            kernel = self._kernel(params, x.shape[1])
            for start in range(0, x.shape[0], kernel.rows):
                out[start : start + kernel.rows] = kernel.table(x[start : start + kernel.rows]).T
        return out

    def e_step(
        self, params: GaussianMixtureParams, x: np.ndarray, weights: np.ndarray
    ) -> tuple[GaussianMixtureStats, np.ndarray]:
        """Fused E-step: the statistics of :meth:`expected_stats` at the exact posterior
        and ``log p(x_n)``, without materializing the ``(n, K)`` responsibilities.

        Every block of rows is read once: its log-densities, responsibilities and
        statistics come from the same cache-resident intermediates: in the compiled
        kernel (:mod:`latent_em.compiled.gaussian`) from ``N·K ≥ 10⁵``, in the NumPy
        kernels (see ``ExpandedKernel``) below.

        Returns
        -------
        stats : GaussianMixtureStats
            Same values as ``expected_stats(params, x, posterior(params, x)[0], weights)``
            up to round-off.
        log_marginal : (n,) float64
            ``log p(x_n | params)``.
        """
        x = self._as_working(x)
        if self._has_missing(x):
            return missing_values.e_step(self, params, x, weights)
        n, d = x.shape
        if use_compiled(n, self.n_components):
            with single_threaded_blas():
                means, prec_chol, const = self._log_terms(params, d)
                w = np.asarray(weights, dtype=float)
                *stats, lm = compiled_e_step(
                    self.covariance.name, x, w, means, prec_chol, const, self._threads()
                )
            return GaussianMixtureStats(*stats), lm
        log_marginal = np.empty(n)
        with single_threaded_blas() as limited:
            args = self._kernel_args(params, d)  # factorized once for every thread's kernel
            kernel = self.covariance.kernel(*args)
            w = np.asarray(weights, dtype=float)  # the tables' dtype: no mixed loops
            starts = range(0, n, kernel.rows)
            threads = min(self._threads(), len(starts) // MIN_BLOCKS_PER_THREAD)
            if not limited or threads < 2:
                run_blocks(kernel, x, w, log_marginal, starts)
                kernels = [kernel]
            else:
                # contiguous runs of blocks per thread: the summation order, hence the
                # result, is the same on every call with the same number of threads
                kernels = [kernel] + [self.covariance.kernel(*args) for _ in range(threads - 1)]
                parts = np.array_split(np.asarray(starts), threads)
                # on the compiled kernels' persistent pool (no threads started per call)
                run_items(
                    run_blocks,
                    [
                        (kern, x, w, log_marginal, part)
                        for kern, part in zip(kernels, parts, strict=True)
                    ],
                    threads,
                )
        counts, sum_dx, sum_dxdx = kernels[0].finish()
        for other in kernels[1:]:
            more = other.finish()
            counts, sum_dx, sum_dxdx = counts + more[0], sum_dx + more[1], sum_dxdx + more[2]
        return GaussianMixtureStats(counts, sum_dx, sum_dxdx), log_marginal

    @property
    def working_dtype(self) -> np.dtype:
        """Precision of the arithmetic: float64 for either ``dtype`` (see there). The
        driver's monotonicity tolerance follows it."""
        return np.dtype(np.float64)

    def posterior(
        self, params: GaussianMixtureParams, x: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Responsibilities ``(n, K)`` and ``log p(x_n)`` by log-sum-exp."""
        table = np.ascontiguousarray(self.log_weighted_densities(params, x).T)
        log_marginal = log_normalize(table)
        return table.T, log_marginal

    def expected_stats(
        self,
        params: GaussianMixtureParams,
        x: np.ndarray,
        posterior: np.ndarray,
        weights: np.ndarray,
    ) -> GaussianMixtureStats:
        """Weighted counts and moments about the current means (additive over rows)."""
        x = np.asarray(x, dtype=float)
        if self._has_missing(x):
            return missing_values.expected_stats(self, params, x, posterior, weights)
        rw = np.asarray(posterior, dtype=float) * weights[:, None]
        counts = rw.sum(axis=0)
        with single_threaded_blas():  # (D, n) @ (n, D) products: see there
            sum_dx, sum_dxdx = self.covariance.second_moments(x, np.asarray(params.means), rw)
        return GaussianMixtureStats(counts, sum_dx, sum_dxdx)

    def m_step(
        self, params: GaussianMixtureParams, stats: GaussianMixtureStats
    ) -> GaussianMixtureParams:
        """Closed-form maximizer (see module docstring). An empty component keeps its
        mean and covariance and gets weight zero; :meth:`repair` then re-seeds it. With a
        ``prior``, the MAP update (:mod:`.prior`; ``reg_covar`` is then not added)."""
        if self.prior is not None:
            return conjugate_prior.map_m_step(self, params, stats)
        counts = stats.counts
        total = counts.sum()
        live = counts > 10 * np.finfo(float).eps * total
        safe = np.where(live, counts, 1.0)
        delta = np.where(live[:, None], stats.sum_dx / safe[:, None], 0.0)
        means = np.asarray(params.means) + delta
        if self.covariance.uses_current:  # mclust's parsimonious structures
            # the MAP step under the penalty (scatter + c·I), or the additive update
            additive = 0.0 if self.monotone_objective else float(self.reg_covar)
            covariances = self.covariance.estimate_from(
                counts,
                live,
                delta,
                stats.sum_dxdx,
                additive,
                np.asarray(params.covariances),
                self.covariance_penalty,
            )
        elif self.covariance.shared:
            covariances = self._estimate_covariances(counts, delta, stats.sum_dxdx)
        else:
            covariances = self._estimate_covariances(safe, delta, stats.sum_dxdx)
            old = np.asarray(params.covariances)
            covariances[~live] = old[~live]
        weights = np.where(live, counts, 0.0) / total
        return GaussianMixtureParams(weights, means, covariances)

    def log_prior(self, params: GaussianMixtureParams) -> float:
        """``log p(θ)`` under ``prior`` (normalized); without one, the covariance penalty
        ``-(c/2) Σ_k tr(Σ_k⁻¹)`` with ``c =`` :attr:`covariance_penalty` (an improper
        prior: mclust's parsimonious structures with ``reg_covar > 0``), else 0.

        EM maximizes the log-likelihood plus this, and the driver checks that sum for
        monotonicity (``EMResult.log_prior`` reports it, ``log_likelihood`` the rest).
        """
        if self.prior is not None:
            return conjugate_prior.log_prior(self, params)
        c = self.covariance_penalty
        if c <= 0:
            return 0.0
        try:
            prec_chol = self.covariance.precisions_cholesky(np.asarray(params.covariances))
        except (linalg.LinAlgError, ValueError):
            return -math.inf  # not positive definite: outside the parameter space
        # Σ⁻¹ = P Pᵀ for the precision's Cholesky factor P, so tr(Σ⁻¹) = ‖P‖²_F
        return -0.5 * c * float(np.sum(np.square(prec_chol)))

    def repair(
        self, params: GaussianMixtureParams, stats: GaussianMixtureStats, rng: np.random.Generator
    ) -> tuple[GaussianMixtureParams, tuple[str, ...]]:
        """Re-seed empty components, jitter non-PD covariances, report collapses."""
        messages: list[str] = []
        out = params
        counts = stats.counts
        total = counts.sum()
        empty = np.flatnonzero(counts <= 10 * np.finfo(float).eps * total)
        if empty.size and empty.size < self.n_components:
            out = self._split_heaviest(out, empty)
            messages.extend(
                f"component {k} lost all its responsibility; re-seeded by splitting the "
                "heaviest component"
                for k in empty
            )
        if self.reg_covar == 0:
            self._refuse_point_masses(np.asarray(out.covariances), counts)
        bad = self.covariance.check_pd(np.asarray(out.covariances))
        if bad:
            out = out._replace(covariances=self.covariance.jitter(np.asarray(out.covariances), bad))
            messages.append(
                f"covariance of component(s) {bad} was not positive definite; added the "
                "smallest diagonal jitter that makes it so"
            )
        if self.reg_covar > 0:
            collapsed = self.collapsed_components(out)
            where = (
                f"held up only by the reg_covar={self.reg_covar:g} penalty -(c/2) tr(Σ⁻¹)"
                if self.covariance_penalty > 0
                else f"at the reg_covar={self.reg_covar:g} floor"
            )
            if collapsed:
                messages.append(
                    f"component(s) {collapsed} collapsed: covariance {where} (fewer distinct "
                    "points than dimensions + 1, a constant column, or data on a tiny scale)"
                )
        return out, tuple(messages)

    def collapsed_components(self, params: GaussianMixtureParams) -> list[int]:
        """Components whose covariance has an eigenvalue at the ``reg_covar`` floor (or,
        for the penalized structures, down to ``reg_covar``).

        Such a component sits on fewer distinct points than dimensions + 1 (or a constant
        column): the likelihood grows without bound as it shrinks, so a fit holding one is
        a spurious maximum, kept finite only by the regularization.
        """
        if self.reg_covar <= 0:
            return []
        smallest = self.covariance.min_variance(np.asarray(params.covariances), self.n_components)
        return [int(k) for k in np.flatnonzero(smallest <= self.reg_covar * (1 + 1e-3))]

    def _refuse_point_masses(self, cov: np.ndarray, counts: np.ndarray) -> None:
        """With ``reg_covar=0``, stop where a component has collapsed onto one point.

        Its covariance is then zero up to the round-off of the statistics (every
        eigenvalue below ``1000 ε`` times the largest of any component), and the
        likelihood grows without bound as it shrinks: there is no maximum to converge
        to, and the densities would be round-off noise.
        """
        if self.covariance.shared or self.n_components < 2:
            return
        with np.errstate(invalid="ignore"):
            top = np.nan_to_num(self.covariance.max_variance(cov, self.n_components), nan=0.0)
        scale = float(np.max(top))
        live = counts > 10 * np.finfo(float).eps * counts.sum()
        point = np.flatnonzero(live & (top <= 1e3 * np.finfo(float).eps * scale))
        if point.size:
            raise ValueError(
                f"reg_covar=0: component {int(point[0])} collapsed onto a single point (its "
                "variances are at the round-off level of the statistics, the largest "
                f"variance of another component being {scale:.3g}); the likelihood has no "
                "maximum there. Use reg_covar > 0 "
                "(the default 1e-6 keeps every eigenvalue of every covariance at or above "
                "it) or fewer components"
            )

    def split_component(
        self, params: GaussianMixtureParams, j: int, *, spread: float = 0.5
    ) -> GaussianMixtureParams:
        """Parameters with K + 1 components: component ``j`` of ``params`` halved in weight
        and its mean moved ``± spread`` standard deviations along its main axis.

        With ``spread=0`` the new mixture is the same density as ``params`` (same
        likelihood); :func:`latent_em.select_components` starts K + 1 from such splits so
        that a nested fit is never worse than the fit it extends.
        """
        weights = np.asarray(params.weights, dtype=float)
        means = np.asarray(params.means, dtype=float)
        covs = np.asarray(params.covariances, dtype=float)
        k, d = means.shape
        full = self.covariance.to_full(covs, k, d)[j]
        vals, vecs = np.linalg.eigh(full)
        step = spread * np.sqrt(max(vals[-1], 0.0)) * vecs[:, -1]
        new_weights = np.r_[weights, weights[j] / 2.0]
        new_weights[j] /= 2.0
        new_means = np.vstack([means, means[j] + step])
        new_means[j] = means[j] - step
        new_covs = covs if self.covariance.shared else np.concatenate([covs, covs[j : j + 1]])
        return GaussianMixtureParams(new_weights, new_means, new_covs.copy())

    def _split_heaviest(
        self, params: GaussianMixtureParams, empty: np.ndarray
    ) -> GaussianMixtureParams:
        weights = np.array(params.weights, dtype=float)
        means = np.array(params.means, dtype=float)
        covs = np.array(params.covariances, dtype=float)
        k, d = means.shape
        full = self.covariance.to_full(covs, k, d)
        for j in empty:
            heavy = int(np.argmax(weights))
            vals, vecs = np.linalg.eigh(full[heavy])
            step = np.sqrt(max(vals[-1], 0.0)) * vecs[:, -1] * 0.5
            means[j] = means[heavy] + step
            means[heavy] = means[heavy] - step
            weights[j] = weights[heavy] = weights[heavy] / 2.0
            if not self.covariance.shared:
                covs[j] = covs[heavy]
            full[j] = full[heavy]
        return GaussianMixtureParams(weights / weights.sum(), means, covs)

    def sample(
        self, params: GaussianMixtureParams, n: int, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """Draw ``n`` rows; returns ``(x (n, D), z (n,))`` grouped by component."""
        k, d = np.shape(params.means)
        counts = rng.multinomial(n, params.weights)
        full = self.covariance.to_full(np.asarray(params.covariances), k, d)
        xs, zs = [], []
        for j in range(k):
            if counts[j] == 0:
                continue
            chol = np.linalg.cholesky(full[j])
            draws = params.means[j] + rng.standard_normal((counts[j], d)) @ chol.T
            xs.append(draws)
            zs.append(np.full(counts[j], j))
        return np.concatenate(xs), np.concatenate(zs)


#: ``max |x| · sqrt(n D)`` must stay below this: squared distances of rows, summed over
#: rows and coordinates, then stay below the float64 maximum (1.8e308) with a wide margin
MAX_MAGNITUDE = 1e150


def _checked(x: np.ndarray) -> np.ndarray:
    """``x`` after :func:`_check_magnitude`."""
    _check_magnitude(x)
    return x


def _check_magnitude(x: np.ndarray) -> None:
    """Refuse data whose squares would overflow float64 in the E- and M-step sums."""
    if x.size == 0:
        return
    largest = float(np.max(np.abs(x)))
    limit = MAX_MAGNITUDE / math.sqrt(x.size)
    if largest > limit:
        row, col = np.unravel_index(int(np.argmax(np.abs(x))), x.shape)
        raise ValueError(
            f"X has a value of {x[row, col]:.3g} (row {row}, column {col}); with "
            f"{x.shape[0]} rows and {x.shape[1]} columns, values beyond {limit:.3g} in "
            "absolute value make squared distances overflow float64. Rescale X (for "
            "example divide it by its largest absolute value)"
        )


def _symmetric(c: np.ndarray) -> bool:
    return bool(np.allclose(c, np.swapaxes(c, -1, -2), rtol=1e-8, atol=0))


def _fill_empty_clusters(x: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """Labels with every cluster non-empty (needs ``n >= k`` rows).

    Each empty cluster takes the row of the currently largest cluster that lies
    farthest from that cluster's mean, so distinct rows are separated first; the
    largest cluster has at least two rows while any cluster is empty.
    """
    labels = labels.copy()
    for j in range(k):
        if np.any(labels == j):
            continue
        donor = int(np.argmax(np.bincount(labels, minlength=k)))
        rows = np.flatnonzero(labels == donor)
        spread = np.sum((x[rows] - x[rows].mean(axis=0)) ** 2, axis=1)
        labels[rows[int(np.argmax(spread))]] = j
    return labels


def _one_hot(labels: np.ndarray, k: int) -> np.ndarray:
    out = np.zeros((labels.shape[0], k))
    out[np.arange(labels.shape[0]), labels] = 1.0
    return out


def _sqdist(x: np.ndarray, centers: np.ndarray) -> np.ndarray:
    from .._kmeans import squared_distances

    return squared_distances(x, np.asarray(centers, dtype=float))
