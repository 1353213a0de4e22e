"""Covariance structures of the Gaussian mixture: one strategy object per structure.

Each structure (scikit-learn's full, tied, diag, spherical) owns everything specific to
it: parameter shapes and counts, Cholesky factors of the precisions, moments, the
M-step estimate, positive-definiteness checks and repair, and (through
``kernels.KERNELS``) the block kernel of its fused E-step. Shared code never branches
on the ``covariance_type`` string: it looks the structure up in ``COVARIANCES``.
"""

from __future__ import annotations

import numpy as np

from ..._lazy import lazy_module
from ...constraints import Constraint, Positive, PositiveDefinite
from .kernels import KERNELS, ExpandedKernel

linalg = lazy_module("scipy.linalg")


class Covariance:
    """Strategy for one covariance structure (scikit-learn's conventions for shapes)."""

    name: str
    constraint: Constraint
    #: one covariance shared by all components (the M-step pools the statistics, and an
    #: empty or re-seeded component has no covariance of its own)
    shared: bool = False

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
        self, counts: np.ndarray, delta: np.ndarray, second: np.ndarray, reg: float
    ) -> np.ndarray:
        """Covariances from statistics; ``delta = μ_new - μ_old``."""
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

    def kernel(
        self, means: np.ndarray, prec_chol: np.ndarray, const: np.ndarray, centre: np.ndarray
    ) -> ExpandedKernel:
        """The block kernel of the fused E-step at these parameters."""
        return KERNELS[self.name](means, prec_chol, const, centre)


def _chol_lower(mat: np.ndarray) -> np.ndarray:
    return linalg.cholesky(mat, lower=True, check_finite=False)


def _is_pd(mat: np.ndarray) -> bool:
    if not np.all(np.isfinite(mat)):
        return False
    try:
        _chol_lower(mat)
    except (linalg.LinAlgError, ValueError):
        return False
    return True


def _jitter_matrix(mat: np.ndarray) -> np.ndarray:
    mat = 0.5 * (mat + mat.T)
    d = mat.shape[0]
    scale = max(float(np.max(np.abs(np.diag(mat)))), np.finfo(float).tiny)
    eye = np.eye(d)
    for power in range(-14, 1):
        candidate = mat + (10.0**power) * scale * eye
        if _is_pd(candidate):
            return candidate
    return scale * eye


class FullCovariance(Covariance):
    name = "full"
    constraint = PositiveDefinite()

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
        self, counts: np.ndarray, delta: np.ndarray, second: np.ndarray, reg: float
    ) -> np.ndarray:
        d = delta.shape[1]
        cov = second / counts[:, None, None] - np.einsum("kd,ke->kde", delta, delta)
        cov = 0.5 * (cov + np.transpose(cov, (0, 2, 1)))
        cov += reg * np.eye(d)[None]
        return cov

    def to_full(self, cov: np.ndarray, k: int, d: int) -> np.ndarray:
        return cov

    def check_pd(self, cov: np.ndarray) -> list[int]:
        return [k for k, c in enumerate(cov) if not _is_pd(c)]

    def jitter(self, cov: np.ndarray, bad: list[int]) -> np.ndarray:
        cov = cov.copy()
        for k in bad:
            cov[k] = _jitter_matrix(cov[k])
        return cov

    def min_variance(self, cov: np.ndarray, k: int) -> np.ndarray:
        return np.array([np.linalg.eigvalsh(c)[0] for c in cov])


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
        self, counts: np.ndarray, delta: np.ndarray, second: np.ndarray, reg: float
    ) -> np.ndarray:
        cov = (second - np.einsum("k,kd,ke->de", counts, delta, delta)) / counts.sum()
        cov = 0.5 * (cov + cov.T)
        cov += reg * np.eye(cov.shape[0])
        return cov

    def to_full(self, cov: np.ndarray, k: int, d: int) -> np.ndarray:
        return np.broadcast_to(cov, (k, d, d)).copy()

    def check_pd(self, cov: np.ndarray) -> list[int]:
        return [] if _is_pd(cov) else [0]

    def jitter(self, cov: np.ndarray, bad: list[int]) -> np.ndarray:
        return _jitter_matrix(cov) if bad else cov

    def min_variance(self, cov: np.ndarray, k: int) -> np.ndarray:
        return np.full(k, np.linalg.eigvalsh(cov)[0])


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
        if np.any(~np.isfinite(cov)) or np.any(cov <= 0):
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
        self, counts: np.ndarray, delta: np.ndarray, second: np.ndarray, reg: float
    ) -> np.ndarray:
        return second / counts[:, None] - delta * delta + reg

    def to_full(self, cov: np.ndarray, k: int, d: int) -> np.ndarray:
        return np.stack([np.diag(c) for c in cov])

    def check_pd(self, cov: np.ndarray) -> list[int]:
        return [k for k, c in enumerate(cov) if not (np.all(np.isfinite(c)) and np.all(c > 0))]

    def jitter(self, cov: np.ndarray, bad: list[int]) -> np.ndarray:
        cov = cov.copy()
        for k in bad:
            scale = max(float(np.max(np.abs(cov[k]))), np.finfo(float).tiny)
            cov[k] = np.maximum(cov[k], 1e-10 * scale)
        return cov

    def min_variance(self, cov: np.ndarray, k: int) -> np.ndarray:
        return cov.min(axis=1)


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
        if np.any(~np.isfinite(cov)) or np.any(cov <= 0):
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
        self, counts: np.ndarray, delta: np.ndarray, second: np.ndarray, reg: float
    ) -> np.ndarray:
        d = delta.shape[1]
        return (second / counts - np.sum(delta * delta, axis=1)) / d + reg

    def to_full(self, cov: np.ndarray, k: int, d: int) -> np.ndarray:
        return cov[:, None, None] * np.eye(d)[None]

    def check_pd(self, cov: np.ndarray) -> list[int]:
        return [k for k, c in enumerate(cov) if not (np.isfinite(c) and c > 0)]

    def jitter(self, cov: np.ndarray, bad: list[int]) -> np.ndarray:
        cov = cov.copy()
        scale = max(float(np.max(np.abs(cov))), np.finfo(float).tiny)
        cov[bad] = 1e-10 * scale
        return cov

    def min_variance(self, cov: np.ndarray, k: int) -> np.ndarray:
        return cov.copy()


COVARIANCES: dict[str, Covariance] = {
    c.name: c for c in (FullCovariance(), TiedCovariance(), DiagCovariance(), SphericalCovariance())
}

#: the structure names, in the order of ``COVARIANCES``
COVARIANCE_TYPES = tuple(COVARIANCES)
