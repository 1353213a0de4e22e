"""The posterior over ``z`` and ``log p(x_n | θ)``, for any model; row weights and chunks.

The bottom of the EM machinery: what the E-step computes for one block of rows, from the
capabilities of :mod:`latent_em.protocols` alone. A model with its own ``posterior`` is
asked for it; a model with an enumerable ``latent_support()`` has its ``log_joint`` stacked
over the support and normalized in log space. :func:`validate_posterior` holds the laws the
driver checks on the first E-step (rows sum to one, ``log p(x_n)`` finite, and, where both
exist, the model's posterior equals the one implied by ``log_joint``: ELBO = log p(x)).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np
from scipy.special import logsumexp

from .exceptions import ModelContractError
from .protocols import EnumerableLatent, ExactPosterior, HasLogPrior

__all__ = [
    "posterior",
    "log_likelihood",
    "posterior_unchecked",
    "validate_posterior",
    "enumerate_log_joint",
    "log_prior",
    "check_sample_weight",
    "chunks",
]


def check_sample_weight(sample_weight: Any, n: int) -> np.ndarray:
    """Validate ``sample_weight`` and return a float array of shape ``(n,)``."""
    if sample_weight is None:
        return np.ones(n)
    try:
        w = np.asarray(sample_weight, dtype=float)
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"sample_weight must be numeric; got {type(sample_weight).__name__}"
        ) from exc
    if w.ndim != 1 or w.shape[0] != n:
        raise ValueError(f"sample_weight must have shape ({n},), one weight per row; got {w.shape}")
    if not np.all(np.isfinite(w)):
        raise ValueError("sample_weight contains NaN or infinite values")
    if np.any(w < 0):
        raise ValueError(f"sample_weight must be non-negative; found {w.min():g}")
    if not np.any(w > 0):
        raise ValueError("sample_weight is zero for every row")
    if w.max() < MIN_LARGEST_WEIGHT:
        raise ValueError(
            f"sample_weight is at most {w.max():.3g}: weights this small underflow float64 "
            "when multiplied by responsibilities, so the statistics lose their precision; "
            "multiply sample_weight by a constant (the fitted parameters depend only on "
            "the relative weights)"
        )
    return w


#: the smallest largest sample weight :func:`check_sample_weight` accepts: products with
#: responsibilities down to 1e-16 stay far above the float64 subnormal range (2.2e-308)
MIN_LARGEST_WEIGHT = 1e-150


def chunks(n: int, chunk_size: int | None) -> Iterator[slice]:
    step = n if chunk_size is None else max(1, int(chunk_size))
    for start in range(0, n, step):
        yield slice(start, min(n, start + step))


def enumerate_log_joint(model: Any, params: Any, x: Any, n: int) -> np.ndarray:
    """The ``(n, m)`` table of ``log p(x_n, z = s_j | θ)`` over the support points ``s_j``."""
    support = np.asarray(model.latent_support())
    if support.ndim == 0 or support.shape[0] == 0:
        raise ModelContractError(
            f"{type(model).__name__}.latent_support() must return a non-empty array of "
            f"support points stacked on axis 0; got shape {support.shape}"
        )
    columns: list[np.ndarray] = []
    for s in support:
        z = np.broadcast_to(s, (n, *np.shape(s)))
        lj = np.asarray(model.log_joint(params, x, z), dtype=float)
        if lj.shape != (n,):
            raise ModelContractError(
                f"{type(model).__name__}.log_joint returned shape {lj.shape}; expected ({n},), "
                "one value per row"
            )
        if np.any(np.isnan(lj) | (lj == np.inf)):
            row = int(np.flatnonzero(np.isnan(lj) | (lj == np.inf))[0])
            raise ModelContractError(
                f"{type(model).__name__}.log_joint returned {float(lj[row])!r} at row {row} for "
                f"the support point z = {np.asarray(s).tolist()!r} (index {len(columns)}); "
                "log-densities must be finite "
                "or -inf (zero probability)"
            )
        columns.append(lj)
    return np.stack(columns, axis=1)


def posterior_unchecked(model: Any, params: Any, x: Any, n: int) -> tuple[Any, np.ndarray]:
    if isinstance(model, ExactPosterior):
        out = model.posterior(params, x)
        if not (isinstance(out, tuple) and len(out) == 2):
            raise ModelContractError(
                f"{type(model).__name__}.posterior must return a tuple (posterior, log_marginal); "
                f"got {type(out).__name__}"
                + (f" of length {len(out)}" if isinstance(out, tuple) else "")
            )
        return out
    table = enumerate_log_joint(model, params, x, n)
    with np.errstate(invalid="ignore"):
        log_marginal = logsumexp(table, axis=1)
        resp = np.exp(table - log_marginal[:, None])
    return resp, log_marginal


def validate_posterior(model: Any, params: Any, x: Any, n: int, post: Any, lm: Any) -> None:
    name = type(model).__name__
    lm = np.asarray(lm)
    if lm.shape != (n,):
        raise ModelContractError(
            f"{name}: log p(x_n) must have shape ({n},); the posterior step returned {lm.shape}"
        )
    if np.any(np.isnan(lm)) or np.any(lm == np.inf):
        bad = np.flatnonzero(~(np.isfinite(lm) | (lm == -np.inf)))
        raise ModelContractError(
            f"{name}: log p(x_n) is NaN or +inf for {bad.size} row(s), first at row {bad[0]}; "
            "check log_joint/posterior at the current parameters"
        )
    if np.any(lm == -np.inf):
        bad = np.flatnonzero(lm == -np.inf)
        raise ModelContractError(
            f"{name}: {bad.size} row(s) have zero probability under the current parameters "
            f"(log p(x_n) = -inf), first at row {bad[0]}; the data lie outside the model's "
            "support or a parameter hit a boundary"
        )
    if isinstance(model, EnumerableLatent):
        resp = np.asarray(post)
        m = len(model.latent_support())
        if resp.shape != (n, m):
            raise ModelContractError(
                f"{name}: the discrete posterior must be an (n, m) = ({n}, {m}) array of "
                f"responsibilities; got shape {resp.shape}"
            )
        sums = resp.sum(axis=1)
        worst = int(np.argmax(np.abs(sums - 1.0)))
        if np.any(np.isnan(resp)) or abs(sums[worst] - 1.0) > 1e-8 or np.any(resp < 0):
            raise ModelContractError(
                f"{name}: posterior rows must be non-negative and sum to one; row {worst} "
                f"sums to {sums[worst]!r}"
            )
        if isinstance(model, ExactPosterior):
            # The model computed its own posterior: it must equal the one implied by
            # log_joint, or the ELBO would not equal log p(x) after the E-step.
            table = enumerate_log_joint(model, params, x, n)
            lm_enum = logsumexp(table, axis=1)
            gap = np.abs(lm_enum - lm)
            if gap.max() > 1e-8 * (1.0 + np.abs(lm).max()):
                i = int(np.argmax(gap))
                raise ModelContractError(
                    f"{name}.posterior: log p(x_n) = {lm[i]!r} at row {i} but log-sum-exp of "
                    f"log_joint over latent_support() gives {lm_enum[i]!r}; the two disagree"
                )
            # a zero responsibility contributes 0 even where log_joint is -inf (a parameter
            # on the boundary, e.g. a probability of exactly 0): 0 · log 0 = 0, not NaN
            with np.errstate(divide="ignore", invalid="ignore"):
                terms = resp * (table - np.log(np.where(resp > 0, resp, 1.0)))
            elbo = np.sum(np.where(resp > 0, terms, 0.0), axis=1)
            kl = lm - elbo
            if kl.max() > 1e-8 * (1.0 + np.abs(lm).max()):
                i = int(np.argmax(kl))
                raise ModelContractError(
                    f"{name}.posterior is not the exact posterior: at row {i} the ELBO is "
                    f"{elbo[i]!r} but log p(x_n) is {lm[i]!r} (KL gap {kl[i]:.3g} > 0 after "
                    "the E-step)"
                )


def posterior(model: Any, params: Any, x: Any) -> tuple[Any, np.ndarray]:
    """The exact posterior over z and ``log p(x_n | params)`` for every row.

    Uses the model's own ``posterior`` when it has one, otherwise enumerates
    ``latent_support()`` and normalizes ``log_joint`` in log space.

    Returns
    -------
    posterior : numpy.ndarray or model-defined
        ``(n, m)`` responsibilities for discrete z.
    log_marginal : numpy.ndarray
        ``(n,)`` values of ``log p(x_n | params)``.
    """
    n = len(x)
    post, lm = posterior_unchecked(model, params, x, n)
    return post, np.asarray(lm, dtype=float)


def log_likelihood(model: Any, params: Any, x: Any, sample_weight: Any = None) -> float:
    """``Σ_n w_n log p(x_n | params)``."""
    _, lm = posterior(model, params, x)
    return float(np.dot(check_sample_weight(sample_weight, len(x)), lm))


def log_prior(model: Any, params: Any) -> float:
    if isinstance(model, HasLogPrior):
        value = float(model.log_prior(params))
        if math.isnan(value):
            raise ModelContractError(f"{type(model).__name__}.log_prior returned NaN")
        return value
    return 0.0
