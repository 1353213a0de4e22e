"""Covariance structures of the Gaussian mixture: one strategy object per structure.

The structures are scikit-learn's full, tied, diag and spherical (mclust's VVV, EEE, VVI
and VII, accepted as aliases, see ``ALIASES``), mclust's ten other parsimonious models
(``ParsimoniousCovariance``, held as ``(K, D, D)`` full matrices, M-steps in
:mod:`.parsimonious`) and its univariate E and V. Each structure owns everything
specific to it: parameter shapes and counts, Cholesky factors of the precisions, moments, the
M-step estimate, positive-definiteness checks and repair, and (through
``kernels.KERNELS``) the block kernel of its fused E-step. Shared code never branches
on the ``covariance_type`` string: it looks the structure up in ``COVARIANCES``.
"""

from __future__ import annotations

import math

import numpy as np

from ..._lazy import lazy_module
from ...constraints import Constraint, Positive, PositiveDefinite
from .kernels import KERNELS, ExpandedKernel
from .parsimonious import ITERATIVE, MCLUST_MODELS, n_variance_parameters, q_value, solve

linalg = lazy_module("scipy.linalg")


class Covariance:
    """Strategy for one covariance structure (scikit-learn's conventions for shapes)."""

    name: str
    constraint: Constraint
    #: one covariance shared by all components (the M-step pools the statistics, and an
    #: empty or re-seeded component has no covariance of its own)
    shared: bool = False
    #: the M-step is ``estimate_from`` (needs the live components and the current
    #: covariances: the parsimonious structures) rather than ``estimate``
    uses_current: bool = False

    def check_features(self, d: int) -> None:
        """Raise ``ValueError`` if the structure cannot model D features (none by default)."""

    def reduce_second(self, full_second: np.ndarray) -> np.ndarray:
        """Per-component ``(K, D, D)`` second moments in the shape ``estimate`` takes
        (the full structure's: unchanged)."""
        return full_second

    def estimate_from(
        self,
        counts: np.ndarray,
        live: np.ndarray,
        delta: np.ndarray,
        second: np.ndarray,
        reg: float,
        current: np.ndarray,
        penalty: float = 0.0,
    ) -> np.ndarray:
        """Covariances from statistics and the current covariances (``uses_current``):
        the structure's M-step on the scatter matrices ``W_k + (n_k·reg + penalty)·I``."""
        raise NotImplementedError

    def features_of(self, cov: np.ndarray) -> int | None:
        """The number of features D implied by a covariance array of this structure, 0 if
        its shape implies none, ``None`` if the structure's shape does not involve D."""
        return int(cov.shape[-1]) if cov.ndim >= 2 else 0

    def shape(self, k: int, d: int) -> tuple[int, ...]:
        raise NotImplementedError

    def n_parameters(self, k: int, d: int) -> int:
        raise NotImplementedError

    def precisions_cholesky(self, cov: np.ndarray) -> np.ndarray:
        """Cholesky factor of the precision (raises ``LinAlgError`` if not PD)."""
        raise NotImplementedError

    def log_det_precisions_cholesky(self, prec_chol: np.ndarray, d: int) -> np.ndarray:
        raise NotImplementedError

    def squared_mahalanobis(
        self, x: np.ndarray, means: np.ndarray, prec_chol: np.ndarray
    ) -> np.ndarray:
        raise NotImplementedError

    def second_moments(self, x: np.ndarray, means: np.ndarray, rw: np.ndarray) -> tuple:
        """``(sum_dx, sum_dxdx)`` for one chunk."""
        raise NotImplementedError

    def estimate(
        self,
        counts: np.ndarray,
        delta: np.ndarray,
        second: np.ndarray,
        *,
        floor: float = 0.0,
        add: float = 0.0,
    ) -> np.ndarray:
        """Covariances from statistics; ``delta = μ_new - μ_old``.

        The maximizer of the expected complete-data log-likelihood ``Q`` over the
        covariances whose every eigenvalue is at least ``floor`` (the eigenvalues of the
        unconstrained maximizer ``S`` clipped at ``floor``: Ingrassia 2004), then ``add``
        times the identity added (scikit-learn's ``reg_covar``, which maximizes no fixed
        objective). Where no eigenvalue of ``S`` is below ``floor``, ``S`` is returned
        untouched.
        """
        raise NotImplementedError

    def apply_floor(self, cov: np.ndarray, floor: float) -> np.ndarray:
        """The nearest covariances (in ``Q``) with every eigenvalue ``>= floor``: the
        projection that :meth:`estimate` applies to its unconstrained maximizer."""
        raise NotImplementedError

    def to_full(self, cov: np.ndarray, k: int, d: int) -> np.ndarray:
        raise NotImplementedError

    def check_pd(self, cov: np.ndarray) -> list[int]:
        """Indices of components whose covariance is not positive definite."""
        raise NotImplementedError

    def jitter(self, cov: np.ndarray, bad: list[int]) -> np.ndarray:
        raise NotImplementedError

    def min_variance(self, cov: np.ndarray, k: int) -> np.ndarray:
        """Smallest eigenvalue of each component's covariance, shape ``(K,)``."""
        raise NotImplementedError

    def max_variance(self, cov: np.ndarray, k: int) -> np.ndarray:
        """Largest eigenvalue of each component's covariance, shape ``(K,)``."""
        raise NotImplementedError

    def condition(self, cov: np.ndarray) -> float:
        """The largest condition number (largest over smallest eigenvalue) of the
        components' covariances (``inf`` if one is not positive definite)."""
        raise NotImplementedError

    def kernel(
        self, means: np.ndarray, prec_chol: np.ndarray, const: np.ndarray, centre: np.ndarray
    ) -> ExpandedKernel:
        """The block kernel of the fused E-step at these parameters."""
        return KERNELS[self.name](means, prec_chol, const, centre)


#: the smallest variance (eigenvalue) a covariance may have: precisions up to 1e250 keep
#: squared Mahalanobis distances, log-determinants and their sums finite in float64 (a
#: subnormal variance from a component collapsed with ``reg_covar=0`` would overflow)
TINY_VARIANCE = 1e-250


def _chol_lower(mat: np.ndarray) -> np.ndarray:
    return linalg.cholesky(mat, lower=True, check_finite=False)


def _is_pd(mat: np.ndarray) -> bool:
    if not np.all(np.isfinite(mat)):
        return False
    try:
        chol = _chol_lower(mat)
    except (linalg.LinAlgError, ValueError):
        return False
    # a positive but (nearly) subnormal factor overflows the precision
    return bool(np.min(np.abs(np.diag(chol))) ** 2 >= TINY_VARIANCE)


def _condition(sorted_eigenvalues: np.ndarray) -> float:
    """Largest ``λ_max / λ_min`` over rows of ascending eigenvalues ``(K, D)``."""
    low, high = sorted_eigenvalues[:, 0], sorted_eigenvalues[:, -1]
    if not np.all(np.isfinite(sorted_eigenvalues)) or np.any(low <= 0):
        return math.inf
    return float(np.max(high / low))


def _floor_eigenvalues(mat: np.ndarray, floor: float) -> np.ndarray:
    """``mat`` with its eigenvalues raised to ``floor`` (unchanged if none is below).

    For a symmetric ``S``, ``V max(Λ, floor) Vᵀ`` maximizes ``-log|Σ| - tr(Σ⁻¹ S)`` over
    the covariances with every eigenvalue ``>= floor`` (Ingrassia 2004, Theorem 3).
    """
    if floor <= 0 or not np.all(np.isfinite(mat)):
        return mat
    try:
        # every eigenvalue above the floor (the usual case): a Cholesky factorization,
        # a tenth of the cost of the eigendecomposition, says so
        _chol_lower(mat - floor * np.eye(mat.shape[0]))
        return mat
    except linalg.LinAlgError:
        pass
    vals, vecs = np.linalg.eigh(mat)
    if vals[0] >= floor:
        return mat
    out = (vecs * np.maximum(vals, floor)) @ vecs.T
    return 0.5 * (out + out.T)


def _largest_finite(values: np.ndarray) -> float:
    """The largest finite absolute value (0 if none): the scale of the other components."""
    finite = np.abs(values[np.isfinite(values)])
    return float(finite.max()) if finite.size else 0.0


def _jitter_matrix(mat: np.ndarray, fallback: float = 0.0) -> np.ndarray:
    mat = 0.5 * (mat + mat.T)
    d = mat.shape[0]
    # a matrix collapsed in every direction takes the scale of the other components
    own = float(np.max(np.abs(np.diag(mat)))) if np.all(np.isfinite(mat)) else 0.0
    scale = max(own or fallback, TINY_VARIANCE)
    eye = np.eye(d)
    for power in range(-14, 1):
        candidate = mat + (10.0**power) * scale * eye
        if _is_pd(candidate):
            return candidate
    return scale * eye


class FullCovariance(Covariance):
    name = "full"
    constraint: Constraint = PositiveDefinite()

    def shape(self, k: int, d: int) -> tuple[int, ...]:
        return (k, d, d)

    def n_parameters(self, k: int, d: int) -> int:
        return k * d * (d + 1) // 2

    def precisions_cholesky(self, cov: np.ndarray) -> np.ndarray:
        d = cov.shape[-1]
        out = np.empty_like(cov)
        eye = np.eye(d)
        for k, c in enumerate(cov):
            chol = _chol_lower(c)
            out[k] = linalg.solve_triangular(chol, eye, lower=True, check_finite=False).T
        return out

    def log_det_precisions_cholesky(self, prec_chol: np.ndarray, d: int) -> np.ndarray:
        return np.sum(np.log(np.diagonal(prec_chol, axis1=1, axis2=2)), axis=1)

    def squared_mahalanobis(
        self, x: np.ndarray, means: np.ndarray, prec_chol: np.ndarray
    ) -> np.ndarray:
        k, d = means.shape
        # whiten all components with one matrix product: x @ [P_1 ... P_K]
        stacked = np.transpose(prec_chol, (1, 0, 2)).reshape(d, k * d)
        offsets = np.einsum("kd,kde->ke", means, prec_chol)
        y = (x @ stacked).reshape(x.shape[0], k, d)
        y -= offsets[None, :, :]
        return np.einsum("nkd,nkd->nk", y, y)

    def second_moments(self, x: np.ndarray, means: np.ndarray, rw: np.ndarray) -> tuple:
        k, d = means.shape
        sum_dx = np.empty((k, d))
        sum_dxdx = np.empty((k, d, d))
        for j in range(k):
            diff = x - means[j]
            weighted = diff * rw[:, j, None]
            sum_dx[j] = weighted.sum(axis=0)
            sum_dxdx[j] = weighted.T @ diff
        return sum_dx, sum_dxdx

    def estimate(
        self,
        counts: np.ndarray,
        delta: np.ndarray,
        second: np.ndarray,
        *,
        floor: float = 0.0,
        add: float = 0.0,
    ) -> np.ndarray:
        d = delta.shape[1]
        cov = second / counts[:, None, None] - np.einsum("kd,ke->kde", delta, delta)
        cov = 0.5 * (cov + np.transpose(cov, (0, 2, 1)))
        cov = self.apply_floor(cov, floor)
        if add:
            cov += add * np.eye(d)[None]
        return cov

    def apply_floor(self, cov: np.ndarray, floor: float) -> np.ndarray:
        out = np.array(cov, dtype=float)
        for k in range(out.shape[0]):
            out[k] = _floor_eigenvalues(out[k], floor)
        return out

    def to_full(self, cov: np.ndarray, k: int, d: int) -> np.ndarray:
        return cov

    def check_pd(self, cov: np.ndarray) -> list[int]:
        return [k for k, c in enumerate(cov) if not _is_pd(c)]

    def jitter(self, cov: np.ndarray, bad: list[int]) -> np.ndarray:
        cov = cov.copy()
        fallback = _largest_finite(np.diagonal(cov, axis1=1, axis2=2))
        for k in bad:
            cov[k] = _jitter_matrix(cov[k], fallback)
        return cov

    def min_variance(self, cov: np.ndarray, k: int) -> np.ndarray:
        # one batched call: the same LAPACK routine per matrix, without K Python calls
        return np.linalg.eigvalsh(cov)[:, 0]

    def max_variance(self, cov: np.ndarray, k: int) -> np.ndarray:
        return np.linalg.eigvalsh(cov)[:, -1]

    def condition(self, cov: np.ndarray) -> float:
        return _condition(np.linalg.eigvalsh(cov))


class TiedCovariance(Covariance):
    name = "tied"
    constraint = PositiveDefinite()
    shared = True

    def shape(self, k: int, d: int) -> tuple[int, ...]:
        return (d, d)

    def n_parameters(self, k: int, d: int) -> int:
        return d * (d + 1) // 2

    def precisions_cholesky(self, cov: np.ndarray) -> np.ndarray:
        chol = _chol_lower(cov)
        return linalg.solve_triangular(chol, np.eye(cov.shape[0]), lower=True).T

    def log_det_precisions_cholesky(self, prec_chol: np.ndarray, d: int) -> np.ndarray:
        return np.sum(np.log(np.diag(prec_chol)))

    def squared_mahalanobis(
        self, x: np.ndarray, means: np.ndarray, prec_chol: np.ndarray
    ) -> np.ndarray:
        y = x @ prec_chol
        m = means @ prec_chol
        out = np.empty((x.shape[0], means.shape[0]))
        for j in range(means.shape[0]):
            diff = y - m[j]
            out[:, j] = np.einsum("nd,nd->n", diff, diff)
        return out

    def second_moments(self, x: np.ndarray, means: np.ndarray, rw: np.ndarray) -> tuple:
        k, d = means.shape
        sum_dx = np.empty((k, d))
        sum_dxdx = np.zeros((d, d))
        for j in range(k):
            diff = x - means[j]
            weighted = diff * rw[:, j, None]
            sum_dx[j] = weighted.sum(axis=0)
            sum_dxdx += weighted.T @ diff
        return sum_dx, sum_dxdx

    def estimate(
        self,
        counts: np.ndarray,
        delta: np.ndarray,
        second: np.ndarray,
        *,
        floor: float = 0.0,
        add: float = 0.0,
    ) -> np.ndarray:
        # Q is -N/2 (log|Σ| + tr(Σ⁻¹ S_pooled)): the floor applies to the pooled matrix
        cov = (second - np.einsum("k,kd,ke->de", counts, delta, delta)) / counts.sum()
        cov = self.apply_floor(0.5 * (cov + cov.T), floor)
        if add:
            cov = cov + add * np.eye(cov.shape[0])
        return cov

    def apply_floor(self, cov: np.ndarray, floor: float) -> np.ndarray:
        return _floor_eigenvalues(np.asarray(cov, dtype=float), floor)

    def to_full(self, cov: np.ndarray, k: int, d: int) -> np.ndarray:
        return np.broadcast_to(cov, (k, d, d)).copy()

    def reduce_second(self, full_second: np.ndarray) -> np.ndarray:
        return full_second.sum(axis=0)

    def check_pd(self, cov: np.ndarray) -> list[int]:
        return [] if _is_pd(cov) else [0]

    def jitter(self, cov: np.ndarray, bad: list[int]) -> np.ndarray:
        return _jitter_matrix(cov) if bad else cov

    def min_variance(self, cov: np.ndarray, k: int) -> np.ndarray:
        return np.full(k, np.linalg.eigvalsh(cov)[0])

    def max_variance(self, cov: np.ndarray, k: int) -> np.ndarray:
        return np.full(k, np.linalg.eigvalsh(cov)[-1])

    def condition(self, cov: np.ndarray) -> float:
        return _condition(np.linalg.eigvalsh(cov)[None])


class DiagCovariance(Covariance):
    name = "diag"
    constraint = Positive()

    def features_of(self, cov: np.ndarray) -> int | None:
        return int(cov.shape[-1]) if cov.ndim == 2 else 0

    def shape(self, k: int, d: int) -> tuple[int, ...]:
        return (k, d)

    def n_parameters(self, k: int, d: int) -> int:
        return k * d

    def precisions_cholesky(self, cov: np.ndarray) -> np.ndarray:
        if np.any(~np.isfinite(cov)) or np.any(cov < TINY_VARIANCE):
            raise linalg.LinAlgError("non-positive variance")
        return 1.0 / np.sqrt(cov)

    def log_det_precisions_cholesky(self, prec_chol: np.ndarray, d: int) -> np.ndarray:
        return np.sum(np.log(prec_chol), axis=1)

    def squared_mahalanobis(
        self, x: np.ndarray, means: np.ndarray, prec_chol: np.ndarray
    ) -> np.ndarray:
        prec = prec_chol**2
        out = (x * x) @ prec.T
        out -= 2.0 * (x @ (means * prec).T)
        out += np.sum(means * means * prec, axis=1)[None, :]
        return np.maximum(out, 0.0)

    def second_moments(self, x: np.ndarray, means: np.ndarray, rw: np.ndarray) -> tuple:
        k, d = means.shape
        sum_dx = np.empty((k, d))
        sum_dxdx = np.empty((k, d))
        for j in range(k):
            diff = x - means[j]
            sum_dx[j] = rw[:, j] @ diff
            sum_dxdx[j] = rw[:, j] @ (diff * diff)
        return sum_dx, sum_dxdx

    def estimate(
        self,
        counts: np.ndarray,
        delta: np.ndarray,
        second: np.ndarray,
        *,
        floor: float = 0.0,
        add: float = 0.0,
    ) -> np.ndarray:
        # Q separates over coordinates, each -N/2 (log σ² + s/σ²): unimodal in σ², so
        # the constrained maximizer is max(s, floor)
        return self.apply_floor(second / counts[:, None] - delta * delta, floor) + add

    def apply_floor(self, cov: np.ndarray, floor: float) -> np.ndarray:
        return np.maximum(np.asarray(cov, dtype=float), floor)

    def to_full(self, cov: np.ndarray, k: int, d: int) -> np.ndarray:
        return np.stack([np.diag(c) for c in cov])

    def reduce_second(self, full_second: np.ndarray) -> np.ndarray:
        return np.diagonal(full_second, axis1=1, axis2=2).copy()

    def check_pd(self, cov: np.ndarray) -> list[int]:
        return [
            k
            for k, c in enumerate(cov)
            if not (np.all(np.isfinite(c)) and np.all(c >= TINY_VARIANCE))
        ]

    def jitter(self, cov: np.ndarray, bad: list[int]) -> np.ndarray:
        cov = cov.copy()
        for k in bad:
            # a component collapsed in every coordinate has no scale of its own
            scale = float(np.max(np.abs(cov[k]))) or _largest_finite(cov)
            cov[k] = np.maximum(cov[k], max(1e-10 * scale, TINY_VARIANCE))
        return cov

    def min_variance(self, cov: np.ndarray, k: int) -> np.ndarray:
        return cov.min(axis=1)

    def max_variance(self, cov: np.ndarray, k: int) -> np.ndarray:
        return cov.max(axis=1)

    def condition(self, cov: np.ndarray) -> float:
        return _condition(np.sort(cov, axis=1))


class SphericalCovariance(Covariance):
    name = "spherical"
    constraint = Positive()

    def features_of(self, cov: np.ndarray) -> int | None:
        return None

    def shape(self, k: int, d: int) -> tuple[int, ...]:
        return (k,)

    def n_parameters(self, k: int, d: int) -> int:
        return k

    def precisions_cholesky(self, cov: np.ndarray) -> np.ndarray:
        if np.any(~np.isfinite(cov)) or np.any(cov < TINY_VARIANCE):
            raise linalg.LinAlgError("non-positive variance")
        return 1.0 / np.sqrt(cov)

    def log_det_precisions_cholesky(self, prec_chol: np.ndarray, d: int) -> np.ndarray:
        return d * np.log(prec_chol)

    def squared_mahalanobis(
        self, x: np.ndarray, means: np.ndarray, prec_chol: np.ndarray
    ) -> np.ndarray:
        prec = prec_chol**2
        out = np.einsum("nd,nd->n", x, x)[:, None] - 2.0 * (x @ means.T)
        out += np.einsum("kd,kd->k", means, means)[None, :]
        return np.maximum(out, 0.0) * prec[None, :]

    def second_moments(self, x: np.ndarray, means: np.ndarray, rw: np.ndarray) -> tuple:
        k, d = means.shape
        sum_dx = np.empty((k, d))
        sum_dxdx = np.empty(k)
        for j in range(k):
            diff = x - means[j]
            sum_dx[j] = rw[:, j] @ diff
            sum_dxdx[j] = rw[:, j] @ np.einsum("nd,nd->n", diff, diff)
        return sum_dx, sum_dxdx

    def estimate(
        self,
        counts: np.ndarray,
        delta: np.ndarray,
        second: np.ndarray,
        *,
        floor: float = 0.0,
        add: float = 0.0,
    ) -> np.ndarray:
        # Q is -N/2 (D log σ² + tr S / σ²): unimodal in σ², maximized at tr S / D
        d = delta.shape[1]
        s_k = (second / counts - np.sum(delta * delta, axis=1)) / d
        return self.apply_floor(s_k, floor) + add

    def apply_floor(self, cov: np.ndarray, floor: float) -> np.ndarray:
        return np.maximum(np.asarray(cov, dtype=float), floor)

    def to_full(self, cov: np.ndarray, k: int, d: int) -> np.ndarray:
        return cov[:, None, None] * np.eye(d)[None]

    def reduce_second(self, full_second: np.ndarray) -> np.ndarray:
        return np.trace(full_second, axis1=1, axis2=2)

    def check_pd(self, cov: np.ndarray) -> list[int]:
        return [k for k, c in enumerate(cov) if not (np.isfinite(c) and c >= TINY_VARIANCE)]

    def jitter(self, cov: np.ndarray, bad: list[int]) -> np.ndarray:
        cov = cov.copy()
        cov[bad] = max(1e-10 * _largest_finite(cov), TINY_VARIANCE)
        return cov

    def min_variance(self, cov: np.ndarray, k: int) -> np.ndarray:
        return cov.copy()

    def max_variance(self, cov: np.ndarray, k: int) -> np.ndarray:
        return cov.copy()

    def condition(self, cov: np.ndarray) -> float:
        return 1.0 if np.all(cov > 0) else math.inf


class ParsimoniousConstraint(Constraint):
    """The ``(K, D, D)`` stacks ``Σ_k = λ_k D_k A_k D_kᵀ`` of one mclust structure, as a
    bijection (locally) from the structure's free parameters: ``log λ`` (one, or one per
    component), the first ``D - 1`` entries of ``log diag A`` (whose entries sum to zero;
    none for the Identity shape) and the strictly upper triangle of a skew-symmetric
    ``S`` with ``D = expm(S)`` (none for the Identity orientation). Its free size is
    mclust's ``nVarParams``, so the numerical M-step, SQUAREM in the unconstrained space,
    ``check_model``'s laws and numerical standard errors all move inside the structure.
    """

    event_ndim = 3

    def __init__(self, name: str) -> None:
        self.name = name
        letters = name + "II" if len(name) == 1 else name
        self.volume, self.shape, self.orientation = letters[0], letters[1], letters[2]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"

    def _free_event_size(self, event_shape: tuple[int, ...]) -> int:
        k, d, d2 = event_shape
        if d != d2:
            raise ValueError(f"covariance matrices must be square; got {event_shape}")
        return n_variance_parameters(self.name, k, d)

    def _unconstrain_events(self, value: np.ndarray) -> np.ndarray:
        return np.stack([self._unconstrain_one(v) for v in value])

    def _constrain_events(self, u: np.ndarray, event_shape: tuple[int, ...]) -> np.ndarray:
        return np.stack([self._constrain_one(row, event_shape) for row in u])

    def _unconstrain_one(self, cov: np.ndarray) -> np.ndarray:
        d = cov.shape[1]
        _, logdet = np.linalg.slogdet(cov)
        log_lam = logdet / d
        unit = cov / np.exp(log_lam)[:, None, None]
        if self.orientation == "I":
            log_a = np.log(np.diagonal(unit, axis1=1, axis2=2))
            rot = None
        elif self.orientation == "E":
            rot = np.linalg.eigh(unit.sum(axis=0))[1][:, ::-1]
            log_a = np.log(np.einsum("ji,kjl,li->ki", rot, unit, rot))
            rot = rot[None]
        else:
            vals, rot = np.linalg.eigh(unit)
            log_a, rot = np.log(vals[:, ::-1]), rot[:, :, ::-1]
        parts = [np.atleast_1d(log_lam.mean() if self.volume == "E" else log_lam)]
        log_a -= log_a.mean(axis=1, keepdims=True)
        if self.shape == "E":
            parts.append(log_a.mean(axis=0)[: d - 1])
        elif self.shape == "V":
            parts.append(log_a[:, : d - 1].ravel())
        if rot is not None:
            iu = np.triu_indices(d, 1)
            for r in rot:
                if np.linalg.det(r) < 0:
                    r = r.copy()
                    r[:, 0] = -r[:, 0]
                parts.append(np.real(linalg.logm(r))[iu])
        return np.concatenate(parts)

    def _constrain_one(self, u: np.ndarray, event_shape: tuple[int, ...]) -> np.ndarray:
        k, d, _ = event_shape
        pos = 1 if self.volume == "E" else k
        lam = np.exp(np.broadcast_to(u[:pos], (k,)))
        n_shape = {"I": 0, "E": d - 1, "V": k * (d - 1)}[self.shape]
        free_a = u[pos : pos + n_shape].reshape(-1, d - 1) if n_shape else np.zeros((1, d - 1))
        pos += n_shape
        log_a = np.concatenate([free_a, -free_a.sum(axis=1, keepdims=True)], axis=1)
        a = np.broadcast_to(np.exp(log_a), (k, d))
        if self.orientation == "I":
            rot = np.broadcast_to(np.eye(d), (k, d, d))
        else:
            iu = np.triu_indices(d, 1)
            rots = []
            for row in u[pos:].reshape(-1, iu[0].size):
                skew = np.zeros((d, d))
                skew[iu] = row
                rots.append(linalg.expm(skew - skew.T))
            rot = np.broadcast_to(np.stack(rots), (k, d, d))
        cov = (rot * (lam[:, None] * a)[:, None, :]) @ np.transpose(rot, (0, 2, 1))
        return 0.5 * (cov + np.transpose(cov, (0, 2, 1)))


class ParsimoniousCovariance(FullCovariance):
    """One of mclust's parsimonious structures ``Σ_k = λ_k D_k A_k D_kᵀ`` (Celeux &
    Govaert 1995) other than the four above, held as ``(K, D, D)`` full matrices.

    The M-step is :func:`.parsimonious.solve` on the scatter matrices about the new
    means, each regularized as ``W_k + c·I`` with a constant ``c`` (``penalty``): the
    exact maximizer of ``Q - (c/2) Σ_k tr(Σ_k⁻¹)``, i.e. MAP-EM under the improper prior
    ``log p(Σ_k) = -(c/2) tr(Σ_k⁻¹)`` (the model's default, ``c = reg_covar``); or as
    ``W_k + n_k·reg·I`` (``reg``: scikit-learn's additive ``Σ_k = S_k + reg·I``, which
    maximizes no fixed objective). The iterated structures start from the current
    covariances (a generalized EM step: the penalized ``Q`` never decreases). Densities,
    moments and checks are the full structure's, and the E-step kernel is the full
    covariance's kernel on the full matrices (``KERNELS`` maps these names to it). The
    parameter count is mclust's ``nVarParams``.
    """

    #: the M-step needs the live components and the current covariances
    uses_current = True
    #: the only number of features the structure accepts (mclust's 1-D models)
    features: int | None = None

    def __init__(self, name: str) -> None:
        self.name = name
        self.constraint = ParsimoniousConstraint(name)

    def n_parameters(self, k: int, d: int) -> int:
        return n_variance_parameters(self.name, k, d)

    def check_features(self, d: int) -> None:
        if self.features is not None and d != self.features:
            raise ValueError(
                f"covariance_type={self.name!r} is mclust's univariate model: X must have "
                f"one column; got {d} (use one of {', '.join(MCLUST_MODELS)})"
            )

    def estimate_from(
        self,
        counts: np.ndarray,
        live: np.ndarray,
        delta: np.ndarray,
        second: np.ndarray,
        reg: float,
        current: np.ndarray,
        penalty: float = 0.0,
    ) -> np.ndarray:
        """Covariances from the statistics (``delta = μ_new - μ_old``) given the live
        components and the current covariances; a component without responsibility
        keeps its covariance. The scatter matrices are regularized as
        ``W_k + (n_k·reg + penalty)·I`` (see the class docstring)."""
        d = delta.shape[1]
        cov = np.array(current, dtype=float, copy=True)
        if not np.any(live):
            return cov
        n = counts[live]
        scatter = second[live] - n[:, None, None] * np.einsum(
            "kd,ke->kde", delta[live], delta[live]
        )
        scatter = 0.5 * (scatter + np.transpose(scatter, (0, 2, 1)))
        scatter += (n * reg + penalty)[:, None, None] * np.eye(d)[None]
        now = cov[live]
        new = solve(self.name, scatter, n, now)
        # generalized EM: an iterated M-step never returns a lower Q than the current
        # covariances', when those are of the structure (solve starts from their
        # projection, so this only guards against rounding); a closed form is the maximizer
        if (
            self.name in ITERATIVE
            and q_value(scatter, n, new) < q_value(scatter, n, now)
            and _of_structure(self.name, now)
        ):
            new = now
        cov[live] = new
        return cov

    def estimate(
        self,
        counts: np.ndarray,
        delta: np.ndarray,
        second: np.ndarray,
        *,
        floor: float = 0.0,
        add: float = 0.0,
        penalty: float = 0.0,
    ) -> np.ndarray:
        """The structure's M-step without current covariances (from its heuristic
        start), on the scatter matrices ``W_k + (n_k·add + penalty)·I`` (see
        ``estimate_from``). The parsimonious structures have no eigenvalue floor: a
        ``floor > 0`` is refused."""
        if floor > 0:
            raise ValueError(
                f"covariance_type={self.name!r} has no eigenvalue floor (floor={floor:g}); "
                "its regularization is the penalty -(c/2) tr(Σ_k⁻¹) (penalty=c)"
            )
        live = counts > 0
        current = np.full((counts.shape[0], delta.shape[1], delta.shape[1]), np.nan)
        return self.estimate_from(counts, live, delta, second, float(add), current, penalty)


def _of_structure(name: str, cov: np.ndarray) -> bool:
    """Whether ``cov`` is (to rounding) of structure ``name``: its M-step from the
    covariances themselves as scatter matrices reproduces them."""
    ones = np.ones(cov.shape[0])
    if not np.isfinite(q_value(cov, ones, cov)):  # not finite, or not positive definite
        return False
    try:
        again = solve(name, cov, ones, cov)
    except (np.linalg.LinAlgError, ValueError):
        return False
    return bool(np.allclose(again, cov, rtol=1e-8, atol=0.0))


class UnivariateCovariance(ParsimoniousCovariance):
    """mclust's 1-D models ``E`` (equal variance) and ``V`` (variable variances), held as
    ``(K, 1, 1)`` matrices."""

    features = 1


#: the parsimonious structures beyond the four above, in mclust's order, then the 1-D ones
PARSIMONIOUS: tuple[str, ...] = tuple(
    m for m in MCLUST_MODELS if m not in ("VVV", "EEE", "VVI", "VII")
)

COVARIANCES: dict[str, Covariance] = {
    c.name: c
    for c in (
        FullCovariance(),
        TiedCovariance(),
        DiagCovariance(),
        SphericalCovariance(),
        *(ParsimoniousCovariance(m) for m in PARSIMONIOUS),
        UnivariateCovariance("E"),
        UnivariateCovariance("V"),
    )
}

#: the scikit-learn structure names (the first four of ``COVARIANCES``)
COVARIANCE_TYPES = tuple(COVARIANCES)[:4]

#: mclust's names of the four scikit-learn structures: the same structures, the same
#: shapes of ``covariances`` and the same results
ALIASES: dict[str, str] = {"VVV": "full", "EEE": "tied", "VVI": "diag", "VII": "spherical"}

#: every accepted ``covariance_type``: scikit-learn's names, mclust's 14 (in mclust's
#: order, aliases included) and its univariate E and V
COVARIANCE_NAMES: tuple[str, ...] = (*COVARIANCE_TYPES, *MCLUST_MODELS, "E", "V")


def canonical_covariance(name: str) -> str:
    """The structure a ``covariance_type`` names (aliases resolved)."""
    return ALIASES.get(name, name)


def mclust_names(d: int) -> tuple[str, ...]:
    """mclust's default models for D features: ``E``, ``V`` in one dimension, the 14
    multivariate models otherwise (``mclustBIC``'s ``modelNames``)."""
    return ("E", "V") if d == 1 else MCLUST_MODELS
