"""Generic numerical M-step for models that state only ``log_joint`` over an enumerable z.

The M-step maximizes the expected complete-data log-likelihood

    Q(θ) = Σ_n w_n Σ_j q_n(z_j) log p(x_n, z_j | θ)  (+ log p(θ) for MAP-EM)

over the model's unconstrained parameterization (its ``constraints``) with scipy's
L-BFGS, warm-started at the current θ. The gradient uses central finite differences,
2 evaluations of ``log_joint`` over the support per free parameter: fine for tens of
parameters. If the optimizer ends below ``Q`` at the current θ, the current θ is kept,
so generalized EM stays monotone.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.optimize import minimize

from .constraints import flatten_params, unflatten_params

__all__ = ["expected_complete_log_likelihood", "numerical_m_step"]


def _chunk_slices(n: int, chunk_size: int | None) -> list[slice]:
    step = n if chunk_size is None else chunk_size
    return [slice(s, min(n, s + step)) for s in range(0, n, step)]


def expected_complete_log_likelihood(
    model: Any,
    params: Any,
    x: Any,
    posteriors: list[np.ndarray],
    weights: np.ndarray,
    chunk_size: int | None,
) -> float:
    """``Q(θ)``: the posterior-weighted complete-data log-likelihood (plus log-prior)."""
    from .em import _enumerate_log_joint, _log_prior

    total = 0.0
    for sl, post in zip(_chunk_slices(len(weights), chunk_size), posteriors, strict=True):
        wc = weights[sl]
        table = _enumerate_log_joint(model, params, x[sl], wc.shape[0])
        with np.errstate(invalid="ignore"):
            terms = np.where(post > 0, post * table, 0.0)
        total += float(np.dot(wc, terms.sum(axis=1)))
    return total + _log_prior(model, params)


def numerical_m_step(
    model: Any,
    params: Any,
    x: Any,
    posteriors: list[np.ndarray],
    weights: np.ndarray,
    chunk_size: int | None,
) -> Any:
    """Maximize ``Q`` numerically from the current parameters (see module docstring)."""
    constraints = model.constraints
    u0 = flatten_params(params, constraints)
    scale = float(weights.sum())

    def objective(u: np.ndarray) -> float:
        candidate = unflatten_params(u, params, constraints)
        with np.errstate(all="ignore"):
            value = expected_complete_log_likelihood(
                model, candidate, x, posteriors, weights, chunk_size
            )
        return -value / scale if np.isfinite(value) else np.inf

    def gradient(u: np.ndarray) -> np.ndarray:
        grad = np.empty_like(u)
        steps = np.cbrt(np.finfo(float).eps) * np.maximum(1.0, np.abs(u))
        for i, h in enumerate(steps):
            up, down = u.copy(), u.copy()
            up[i] += h
            down[i] -= h
            grad[i] = (objective(up) - objective(down)) / (2.0 * h)
        return grad

    q_current = expected_complete_log_likelihood(model, params, x, posteriors, weights, chunk_size)
    result = minimize(objective, u0, jac=gradient, method="L-BFGS-B")
    candidate = unflatten_params(result.x, params, constraints)
    q_new = expected_complete_log_likelihood(model, candidate, x, posteriors, weights, chunk_size)
    if not np.isfinite(q_new) or q_new < q_current:
        return params
    return candidate
