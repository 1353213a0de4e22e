"""M-steps of the parsimonious covariance models ``Σ_k = λ_k D_k A_k D_kᵀ``.

Celeux & Govaert (1995), "Gaussian parsimonious clustering models", Pattern Recognition
28(5), 781-793, with mclust's three-letter names (Fraley & Raftery 2002, JASA 97; mclust
Version 4 technical report 597, 2012): volume ``λ``, shape ``A`` (diagonal, ``|A| = 1``)
and orientation ``D`` (orthogonal) each Equal across components, Variable, or the
Identity (``I``).

Every function here maximizes over the structure's parameters the covariance part of the
expected complete-data log-likelihood,

    Q(Σ) = -½ Σ_k [ n_k log|Σ_k| + tr(W_k Σ_k⁻¹) ],

given the scatter matrices ``W_k = Σ_n w_n r_nk (x_n - μ_k)(x_n - μ_k)ᵀ`` (``(K, D, D)``)
and the counts ``n_k``; ``N = Σ_k n_k``. Pure numpy: no latent_em imports.

Closed forms (Celeux & Govaert 1995, sections 3-4): EII, VII, EEI, VVI, EVI, EEE, EEV,
EVV, VVV. The others have none and are iterated, each sweep a block-coordinate or
majorize-minimize step that cannot lower ``Q``:

* VEI, VEE -- alternate the common shape/orientation matrix ``C`` (``|C| = 1``) given the
  volumes and the volumes given ``C`` (Celeux & Govaert 1995, section 4, models
  ``[λ_k B]`` and ``[λ_k C]``);
* VEV -- ``D_k`` are the eigenvectors of ``W_k`` (eigenvalues in decreasing order, paired
  with ``A``'s, optimal by von Neumann's trace inequality for any decreasing ``A``); then
  alternate ``A`` and the volumes (Celeux & Govaert 1995, model ``[λ_k D_k A D_kᵀ]``);
* EVE, VVE -- the common orientation ``D`` by the majorize-minimize step of Browne &
  McNicholas (2014, "Estimating common principal components in high dimensions",
  Advances in Data Analysis and Classification 8, 217-226): ``W_k - α_k I`` (``α_k`` the
  largest eigenvalue of ``W_k``) is negative semi-definite, so
  ``f(D) = Σ_k tr(W_k D Ψ_k Dᵀ)`` (``Ψ_k = (λ_k A_k)⁻¹``) is majorized on the orthogonal
  group by its linearization at the current ``D₀``; its minimizer is ``D = -U Vᵀ`` for the
  SVD ``U S Vᵀ`` of ``G = Σ_k (W_k - α_k I) D₀ Ψ_k``; then the volumes and shapes in
  closed form given ``D``.

:func:`solve` runs the sweeps from the better (by ``Q``) of a heuristic start and the
projection of the current covariances onto the structure (the current covariances
themselves when they are of the structure), so it never returns a lower ``Q`` than that
of current covariances of the structure: a generalized EM step.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from ..._lazy import lazy_module

# scipy submodules on first use, so that import latent_em stays light
linalg = lazy_module("scipy.linalg")

__all__ = [
    "MCLUST_MODELS",
    "CLOSED_FORM",
    "ITERATIVE",
    "n_variance_parameters",
    "q_value",
    "solve",
]

#: mclust's multivariate models, in the order of ``mclust.options("emModelNames")``
MCLUST_MODELS = (
    "EII",
    "VII",
    "EEI",
    "VEI",
    "EVI",
    "VVI",
    "EEE",
    "VEE",
    "EVE",
    "VVE",
    "EEV",
    "VEV",
    "EVV",
    "VVV",
)


def n_variance_parameters(name: str, k: int, d: int) -> int:
    """Free covariance parameters of model ``name`` with K components in D dimensions,
    as mclust's ``nVarParams``: volume, shape and orientation counted once when Equal and
    K times when Variable (a shape has ``D - 1`` free values, an orientation
    ``D(D - 1)/2``)."""
    shape, orient = d - 1, d * (d - 1) // 2
    table = {
        "E": 1,
        "V": k,
        "EII": 1,
        "VII": k,
        "EEI": d,
        "VEI": k + shape,
        "EVI": 1 + k * shape,
        "VVI": k * d,
        "EEE": d * (d + 1) // 2,
        "VEE": k + shape + orient,
        "EVE": 1 + k * shape + orient,
        "VVE": k + k * shape + orient,
        "EEV": 1 + shape + k * orient,
        "VEV": k + shape + k * orient,
        "EVV": 1 - k + k * d * (d + 1) // 2,
        "VVV": k * d * (d + 1) // 2,
    }
    return int(table[name])


def q_value(scatter: np.ndarray, counts: np.ndarray, cov: np.ndarray) -> float:
    """``-½ Σ_k [n_k log|Σ_k| + tr(W_k Σ_k⁻¹)]``; ``-inf`` if some ``Σ_k`` is not PD."""
    if not np.all(np.isfinite(cov)):
        return -math.inf
    try:
        chol = np.linalg.cholesky(cov)  # every component at once
    except np.linalg.LinAlgError:
        return -math.inf
    diag = np.diagonal(chol, axis1=1, axis2=2)
    if np.any(diag <= 0):
        return -math.inf
    logdet = 2.0 * np.sum(np.log(diag), axis=1)
    traces = np.trace(np.linalg.solve(cov, scatter), axis1=1, axis2=2)
    return -0.5 * float(np.sum(counts * logdet + traces))


# ------------------------------------------------------------------ helpers


def _geo(v: np.ndarray, axis: int = -1) -> np.ndarray:
    """Geometric mean along ``axis``."""
    return np.exp(np.mean(np.log(v), axis=axis))


def _det_root(m: np.ndarray) -> np.ndarray:
    """``|M|^{1/D}`` of each matrix of a stack (positive definite)."""
    sign, logdet = np.linalg.slogdet(m)
    return np.where(sign > 0, np.exp(logdet / m.shape[-1]), np.nan)


def _diag_stack(v: np.ndarray) -> np.ndarray:
    """``(K, D)`` -> ``(K, D, D)`` diagonal matrices."""
    out = np.zeros((*v.shape, v.shape[-1]))
    idx = np.arange(v.shape[-1])
    out[..., idx, idx] = v
    return out


def _eig_desc(m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues (decreasing) and eigenvectors of each symmetric matrix of a stack."""
    vals, vecs = np.linalg.eigh(m)
    return vals[..., ::-1], vecs[..., ::-1]


def _rotate(d: np.ndarray, diag: np.ndarray) -> np.ndarray:
    """``D diag(v_k) Dᵀ`` for a common ``D`` (``(D, D)``) or one per component."""
    if d.ndim == 2:
        return np.einsum("ij,kj,lj->kil", d, diag, d)
    return (d * diag[:, None, :]) @ np.transpose(d, (0, 2, 1))


# ------------------------------------------------------------------ closed forms


def _eii(w: np.ndarray, n: np.ndarray) -> np.ndarray:
    k, d = w.shape[0], w.shape[1]
    lam = np.trace(w, axis1=1, axis2=2).sum() / (n.sum() * d)
    return np.broadcast_to(lam * np.eye(d), (k, d, d)).copy()


def _vii(w: np.ndarray, n: np.ndarray) -> np.ndarray:
    d = w.shape[1]
    lam = np.trace(w, axis1=1, axis2=2) / (n * d)
    return lam[:, None, None] * np.eye(d)[None]


def _eei(w: np.ndarray, n: np.ndarray) -> np.ndarray:
    b = np.diagonal(w, axis1=1, axis2=2).sum(axis=0) / n.sum()
    return _diag_stack(np.broadcast_to(b, (w.shape[0], w.shape[1])))


def _vvi(w: np.ndarray, n: np.ndarray) -> np.ndarray:
    return _diag_stack(np.diagonal(w, axis1=1, axis2=2) / n[:, None])


def _evi(w: np.ndarray, n: np.ndarray) -> np.ndarray:
    dk = np.diagonal(w, axis1=1, axis2=2)
    g = _geo(dk)  # |diag W_k|^{1/D}
    lam = g.sum() / n.sum()
    return _diag_stack(lam * dk / g[:, None])


def _eee(w: np.ndarray, n: np.ndarray) -> np.ndarray:
    s = w.sum(axis=0) / n.sum()
    return np.broadcast_to(s, w.shape).copy()


def _vvv(w: np.ndarray, n: np.ndarray) -> np.ndarray:
    return w / n[:, None, None]


def _eev(w: np.ndarray, n: np.ndarray) -> np.ndarray:
    # W_k = L_k Ω_k L_kᵀ (decreasing): D_k = L_k, λA = Σ_k Ω_k / N
    omega, vecs = _eig_desc(w)
    return _rotate(vecs, np.broadcast_to(omega.sum(axis=0) / n.sum(), omega.shape))


def _evv(w: np.ndarray, n: np.ndarray) -> np.ndarray:
    g = _det_root(w)  # |W_k|^{1/D}
    lam = g.sum() / n.sum()
    return lam * w / g[:, None, None]


CLOSED_FORM: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "EII": _eii,
    "VII": _vii,
    "EEI": _eei,
    "VVI": _vvi,
    "EVI": _evi,
    "EEE": _eee,
    "EEV": _eev,
    "EVV": _evv,
    "VVV": _vvv,
    "E": _eii,
    "V": _vii,
}


# ------------------------------------------------------------------ iterated models


class _Iterated:
    """An iterated model: a heuristic start, the projection of covariances onto the
    structure (``None`` if impossible), one sweep that cannot lower ``Q``, and the
    covariances of a state."""

    def start(self, w: np.ndarray, n: np.ndarray) -> Any:
        raise NotImplementedError

    def project(self, cov: np.ndarray) -> Any:
        raise NotImplementedError

    def sweep(self, state: Any, w: np.ndarray, n: np.ndarray) -> Any:
        raise NotImplementedError

    def build(self, state: Any, w: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class _VEI(_Iterated):
    """``λ_k B``, ``B`` diagonal with ``|B| = 1``; state ``(λ (K,), b (D,))``."""

    def start(self, w, n):
        d = w.shape[1]
        return np.trace(w, axis1=1, axis2=2) / (n * d), np.ones(d)

    def project(self, cov):
        dk = np.diagonal(cov, axis1=1, axis2=2)
        lam = _geo(dk)
        return lam, _geo(dk / lam[:, None], axis=0)

    def sweep(self, state, w, n):
        lam, _ = state
        dk = np.diagonal(w, axis1=1, axis2=2)
        s = (dk / lam[:, None]).sum(axis=0)
        b = s / _geo(s)
        lam = (dk / b).sum(axis=1) / (n * w.shape[1])
        return lam, b

    def build(self, state, w):
        lam, b = state
        return _diag_stack(lam[:, None] * b[None, :])


class _VEE(_Iterated):
    """``λ_k C``, ``|C| = 1``; state ``(λ (K,), C (D, D))``."""

    def start(self, w, n):
        d = w.shape[1]
        return np.trace(w, axis1=1, axis2=2) / (n * d), np.eye(d)

    def project(self, cov):
        lam = _det_root(cov)
        c = (cov / lam[:, None, None]).mean(axis=0)
        return lam, c / _det_root(c[None])[0]

    def sweep(self, state, w, n):
        lam, _ = state
        s = (w / lam[:, None, None]).sum(axis=0)
        c = s / _det_root(s[None])[0]
        chol = linalg.cho_factor(c, lower=True)
        traces = np.array([np.trace(linalg.cho_solve(chol, wk)) for wk in w])
        return traces / (n * w.shape[1]), c

    def build(self, state, w):
        lam, c = state
        return lam[:, None, None] * c[None]


class _VEV(_Iterated):
    """``λ_k D_k A D_kᵀ``; ``D_k`` the eigenvectors of ``W_k``; state ``(λ, a)``."""

    def start(self, w, n):
        d = w.shape[1]
        return np.trace(w, axis1=1, axis2=2) / (n * d), np.ones(d)

    def project(self, cov):
        e = _eig_desc(cov)[0]
        lam = _geo(e)
        a = _geo(e / lam[:, None], axis=0)
        return lam, np.sort(a)[::-1]

    def sweep(self, state, w, n):
        lam, _ = state
        omega = np.maximum(_eig_desc(w)[0], 0.0)
        s = (omega / lam[:, None]).sum(axis=0)
        a = s / _geo(s)
        lam = (omega / a).sum(axis=1) / (n * w.shape[1])
        return lam, a

    def build(self, state, w):
        lam, a = state
        vecs = _eig_desc(w)[1]
        return _rotate(vecs, lam[:, None] * a[None, :])


def _orientation_step(d0: np.ndarray, w: np.ndarray, psi: np.ndarray) -> np.ndarray:
    """One majorize-minimize step (Browne & McNicholas 2014) for the common orientation:
    lowers ``Σ_k tr(W_k D diag(ψ_k) Dᵀ)`` over orthogonal ``D``, from ``d0``."""
    alpha = np.linalg.eigvalsh(w)[:, -1]
    dim = w.shape[1]
    shifted = w - alpha[:, None, None] * np.eye(dim)[None]
    g = np.einsum("kij,jl,kl->il", shifted, d0, psi)
    u, _, vt = np.linalg.svd(g)
    return -u @ vt


def _common_axes(m: np.ndarray) -> np.ndarray:
    return np.linalg.eigh(m)[1][:, ::-1]


class _EVE(_Iterated):
    """``λ D A_k Dᵀ``; state ``(D, λ, A (K, D))``; given ``D``, ``A_k`` and ``λ`` are
    closed-form: ``A_k = ω_k / |ω_k|^{1/D}``, ``λ = Σ_k |ω_k|^{1/D} / N`` with
    ``ω_k = diag(Dᵀ W_k D)``."""

    @staticmethod
    def _given(d, w, n):
        omega = np.einsum("ji,kjl,li->ki", d, w, d)
        g = _geo(omega)
        return d, g.sum() / n.sum(), omega / g[:, None]

    def start(self, w, n):
        return self._given(_common_axes(w.sum(axis=0)), w, n)

    def project(self, cov):
        d = _common_axes(cov.sum(axis=0))
        delta = np.einsum("ji,kjl,li->ki", d, cov, d)
        g = _geo(delta)
        return d, float(g.mean()), delta / g[:, None]

    def sweep(self, state, w, n):
        d, lam, a = state
        return self._given(_orientation_step(d, w, 1.0 / (lam * a)), w, n)

    def build(self, state, w):
        d, lam, a = state
        return _rotate(d, lam * a)


class _VVE(_Iterated):
    """``λ_k D A_k Dᵀ`` (common eigenvectors); state ``(D, Δ (K, D))``; given ``D``,
    ``Δ_k = diag(Dᵀ W_k D) / n_k``."""

    @staticmethod
    def _given(d, w, n):
        return d, np.einsum("ji,kjl,li->ki", d, w, d) / n[:, None]

    def start(self, w, n):
        return self._given(_common_axes((w / n[:, None, None]).sum(axis=0)), w, n)

    def project(self, cov):
        d = _common_axes(cov.sum(axis=0))
        return d, np.einsum("ji,kjl,li->ki", d, cov, d)

    def sweep(self, state, w, n):
        d, delta = state
        return self._given(_orientation_step(d, w, 1.0 / delta), w, n)

    def build(self, state, w):
        d, delta = state
        return _rotate(d, delta)


ITERATIVE: dict[str, _Iterated] = {
    "VEI": _VEI(),
    "VEE": _VEE(),
    "EVE": _EVE(),
    "VVE": _VVE(),
    "VEV": _VEV(),
}

#: sweeps of an iterated M-step at most, and the relative gain in ``Q`` below which
#: the sweeps stop (each sweep never lowers ``Q``, so stopping early is still a
#: generalized EM step)
MAX_SWEEPS = 200
SWEEP_RTOL = 1e-12


def solve(
    name: str,
    scatter: np.ndarray,
    counts: np.ndarray,
    current: np.ndarray | None = None,
    *,
    max_sweeps: int = MAX_SWEEPS,
    rtol: float = SWEEP_RTOL,
) -> np.ndarray:
    """Covariances ``(K, D, D)`` of model ``name`` maximizing (closed forms) or not
    lowering (iterated models, from the better of a heuristic start and the projection
    of ``current``) ``Q`` of :func:`q_value`."""
    scatter = np.asarray(scatter, dtype=float)
    counts = np.asarray(counts, dtype=float)
    if name in CLOSED_FORM:
        cov = CLOSED_FORM[name](scatter, counts)
        return 0.5 * (cov + np.transpose(cov, (0, 2, 1)))
    model = ITERATIVE[name]
    candidates = [model.start(scatter, counts)]
    if current is not None and np.all(np.isfinite(current)):
        with np.errstate(all="ignore"):
            try:
                projected = model.project(np.asarray(current, dtype=float))
            except (np.linalg.LinAlgError, ValueError):
                projected = None
        if projected is not None and all(np.all(np.isfinite(p)) for p in projected):
            candidates.append(projected)
    scored = [
        (q_value(scatter, counts, model.build(s, scatter)), i) for i, s in enumerate(candidates)
    ]
    best_q, best = max(scored)
    state = candidates[best]
    for _ in range(max_sweeps):
        new = model.sweep(state, scatter, counts)
        q_new = q_value(scatter, counts, model.build(new, scatter))
        if not q_new >= best_q:  # a rounding-level decrease (or NaN): stop where we are
            break
        gain = q_new - best_q
        state, best_q = new, q_new
        if gain <= rtol * abs(q_new):
            break
    cov = model.build(state, scatter)
    return 0.5 * (cov + np.transpose(cov, (0, 2, 1)))
