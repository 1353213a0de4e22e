"""Helpers shared by the discrete mixtures (Bernoulli, categorical, Poisson).

All three have the same mixing-weight update, the same optional Dirichlet prior on the
weights, the same log-space posterior, and the same need to treat parameters exactly at
a boundary (a probability of 0 or 1, a rate of 0) as legal values: ``0 · log 0`` is 0
here, never NaN.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from .._lazy import lazy_functions

gammaln, xlogy = lazy_functions("scipy.special", "gammaln", "xlogy")

__all__ = [
    "check_concentration",
    "check_pair_prior",
    "safe_log",
    "log_weights",
    "weights_m_step",
    "dirichlet_log_density",
    "posterior_from_table",
    "real_array",
    "finite_matrix",
    "INIT_METHODS",
    "one_hot",
    "partition_from_data",
    "smoothed_start",
    "weighted_sums",
    "ratio_or_keep",
    "empty_component_messages",
    "kernel_applies",
    "table_e_step",
]

#: initialization methods of the discrete mixtures
INIT_METHODS = ("random", "random_from_data")


def kernel_applies(model: Any, base: type) -> bool:
    """Whether ``model``'s compiled E-step computes what its table path computes: not
    if a subclass of the built-in ``base`` overrides ``log_weighted_densities`` or
    ``expected_stats`` (the fused E-step then takes the table path, which uses them)."""
    cls = type(model)
    return (
        cls.log_weighted_densities is base.log_weighted_densities
        and cls.expected_stats is base.expected_stats
    )


def table_e_step(model: Any, params: Any, x: Any, weights: np.ndarray) -> tuple[Any, np.ndarray]:
    """The NumPy E-step of a discrete mixture: ``(stats, log p(x_n))`` from the model's
    ``log_weighted_densities``, :func:`posterior_from_table` and ``expected_stats``
    (the reference the compiled kernels are tested against)."""
    posterior, log_marginal = posterior_from_table(model.log_weighted_densities(params, x))
    stats = model.expected_stats(params, x, posterior, np.asarray(weights, dtype=float))
    return stats, log_marginal


def check_concentration(value: Any, name: str) -> float | None:
    """``None`` (no prior) or a finite number ``>= 1`` (a prior whose mode is interior or flat).

    Concentrations below one put the mode of the prior on the boundary, where the
    closed-form MAP update used here is no longer the maximizer.
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be None or a number >= 1; got {value!r}")
    value = float(value)
    if not (np.isfinite(value) and value >= 1.0):
        raise ValueError(f"{name} must be a finite number >= 1 (or None for no prior); got {value}")
    return value


def check_pair_prior(
    value: Any, name: str, *, first_min: float, second_min: float, second_strict: bool = False
) -> tuple[float, float] | None:
    """``None`` or a pair of finite numbers with lower bounds (Beta or Gamma parameters)."""
    if value is None:
        return None
    try:
        a, b = (float(v) for v in value)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be None or a pair of numbers; got {value!r}") from exc
    bad_b = b <= second_min if second_strict else b < second_min
    if not (np.isfinite(a) and np.isfinite(b)) or a < first_min or bad_b:
        rel = ">" if second_strict else ">="
        raise ValueError(
            f"{name} must be a pair of finite numbers with the first >= {first_min:g} and the "
            f"second {rel} {second_min:g}; got ({a:g}, {b:g})"
        )
    return a, b


def safe_log(p: np.ndarray) -> np.ndarray:
    """``log p`` with ``log 0 = -inf`` and no warning."""
    with np.errstate(divide="ignore"):
        return np.log(p)


def log_weights(weights: np.ndarray) -> np.ndarray:
    """``log φ`` (an empty component has weight 0 and log-weight ``-inf``)."""
    return safe_log(np.asarray(weights, dtype=float))


def weights_m_step(counts: np.ndarray, concentration: float | None) -> np.ndarray:
    """``φ_k = (N_k + α - 1) / (N + K (α - 1))``: the Lagrange-multiplier solution (MAP
    under a symmetric Dirichlet(α) prior; α = 1 or ``None`` gives the MLE ``N_k / N``)."""
    extra = 0.0 if concentration is None else concentration - 1.0
    numer = counts + extra
    return numer / numer.sum()


def dirichlet_log_density(p: np.ndarray, concentration: float) -> float:
    """Sum over the rows of ``p`` (last axis on the simplex) of the symmetric Dirichlet
    log-density; ``xlogy`` keeps ``(α - 1) log 0 = 0`` at ``α = 1``."""
    p = np.asarray(p, dtype=float)
    c = p.shape[-1]
    rows = p.size // c
    norm = gammaln(c * concentration) - c * gammaln(concentration)
    return float(rows * norm + np.sum(xlogy(concentration - 1.0, p)))


def posterior_from_table(table: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Responsibilities and ``log p(x_n)`` from the ``(n, K)`` table of log-joints.

    A row impossible under every component (``log p(x_n) = -inf``, only possible with
    boundary parameters) gets uniform responsibilities instead of NaN; its
    log-likelihood stays ``-inf``.
    """
    # a plain max-shifted log-sum-exp: scipy's generic one costs more than the whole
    # E-step on small tables, and EM on latent class models runs thousands of iterations
    top = table.max(axis=1)
    impossible = ~np.isfinite(top)
    shift = np.where(impossible, 0.0, top)
    with np.errstate(divide="ignore", under="ignore"):
        scaled = np.exp(table - shift[:, None])
        total = scaled.sum(axis=1)
        log_marginal = np.log(total) + shift
        resp = scaled / np.where(impossible, 1.0, total)[:, None]
    if np.any(impossible):
        resp[impossible] = 1.0 / table.shape[1]
    return resp, log_marginal


def real_array(arr: np.ndarray, name: str) -> np.ndarray:
    """``arr`` with a real numeric (or boolean) dtype; an object array is converted to float.

    Errors name the argument and the offending dtype.
    """
    if arr.dtype == object:
        try:
            arr = arr.astype(float)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"{name} must contain numbers; got dtype object") from exc
    if not (np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.bool_)):
        raise TypeError(f"{name} must contain numbers; got dtype {arr.dtype}")
    if np.issubdtype(arr.dtype, np.complexfloating):
        raise TypeError(f"{name} must be real-valued; got dtype {arr.dtype}")
    return arr


def finite_matrix(x: Any, name: str, min_rows: int) -> np.ndarray:
    """A 2-D real array without NaN or infinity; errors name the argument and column."""
    if isinstance(x, (str, bytes)):
        raise TypeError(f"{name} must be a numeric array; got a string")
    try:
        arr = np.asarray(x)
    except Exception as exc:  # ragged lists and the like
        raise TypeError(f"{name} must be a numeric array-like; got {type(x).__name__}") from exc
    if arr.dtype == object:
        if arr.ndim == 2:
            for (row, col), value in np.ndenumerate(arr):
                if value is None:
                    raise ValueError(
                        f"{name} contains missing values: column {col} has None at row {row}"
                    )
    arr = real_array(arr, name)
    if arr.ndim != 2:
        hint = " (reshape a single column with X.reshape(-1, 1))" if arr.ndim == 1 else ""
        raise ValueError(f"{name} must be 2-D (n_samples, n_features); got shape {arr.shape}{hint}")
    if arr.shape[0] == 0:
        raise ValueError(f"{name} is empty: it has 0 rows")
    if arr.shape[1] == 0:
        raise ValueError(f"{name} has 0 columns")
    arr = np.ascontiguousarray(arr, dtype=float)
    finite = np.isfinite(arr)
    if not np.all(finite):
        row, col = np.argwhere(~finite)[0]
        kind = "NaN" if np.isnan(arr[row, col]) else "an infinite value"
        raise ValueError(
            f"{name} contains NaN or infinite values: column {col} has {kind} at row {row}"
        )
    if arr.shape[0] < min_rows:
        raise ValueError(
            f"{name} has {arr.shape[0]} row(s) but at least {min_rows} are needed "
            "(one per component)"
        )
    return arr


def one_hot(labels: np.ndarray, k: int) -> np.ndarray:
    """``(n, k)`` indicator matrix of integer labels."""
    out = np.zeros((labels.shape[0], k))
    out[np.arange(labels.shape[0]), labels] = 1.0
    return out


def partition_from_data(features: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Hard responsibilities ``(n, k)``: ``k`` distinct rows drawn as centres, every row
    assigned to its nearest centre (squared Euclidean distance on ``features``).

    Duplicated rows are common in discrete data (response patterns), so the centres are
    drawn among the distinct rows when there are at least ``k`` of them.
    """
    distinct = np.unique(features, axis=0)
    pool = distinct if distinct.shape[0] >= k else features
    centres = pool[rng.choice(pool.shape[0], size=k, replace=pool.shape[0] < k)]
    d2 = (
        np.sum(features**2, axis=1)[:, None]
        - 2.0 * features @ centres.T
        + np.sum(centres**2, axis=1)[None, :]
    )
    # break ties at random so identical centres do not all lose to the first one
    d2 = d2 + 1e-9 * rng.random(d2.shape)
    return one_hot(np.argmin(d2, axis=1), k)


def smoothed_start(
    features: np.ndarray, k: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Initial weights ``(k,)`` and per-component means of ``features`` ``(k, F)`` from
    :func:`partition_from_data`, each component smoothed by one pseudo-row at the
    overall mean (so none is empty or exactly at a boundary it did not earn)."""
    resp = partition_from_data(features, k, rng)
    counts = resp.sum(axis=0)
    means = (resp.T @ features + features.mean(axis=0)) / (counts[:, None] + 1.0)
    return (counts + 1.0) / (counts.sum() + k), means


def weighted_sums(
    x: np.ndarray, posterior: np.ndarray, weights: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``N_k = Σ_n w_n r_nk`` and ``S_kd = Σ_n w_n r_nk x_nd`` of a chunk."""
    rw = posterior * weights[:, None]
    return rw.sum(axis=0), rw.T @ np.asarray(x, dtype=float)


def ratio_or_keep(numer: np.ndarray, denom: np.ndarray, old: np.ndarray) -> np.ndarray:
    """``numer / denom`` where ``denom > 0``, else ``old``: the M-step of a mean-type
    parameter, where an empty component keeps its value."""
    live = denom > 0
    return np.where(live, numer / np.where(live, denom, 1.0), old)


def empty_component_messages(counts: np.ndarray) -> tuple[str, ...]:
    """Report components that received no responsibility in the last E-step.

    Such a component keeps its parameters and gets weight 0 (the maximizer of the
    expected complete-data log-likelihood); it cannot recover, so the fit effectively has
    fewer components. It is reported rather than re-seeded, so that EM stays a monotone
    ascent and restarts (``n_init``) remain the remedy.
    """
    total = float(np.sum(counts))
    empty = np.flatnonzero(counts <= 10 * np.finfo(float).eps * total)
    return tuple(
        f"component {int(k)} is empty (no responsibility, weight 0); the fit has fewer "
        "effective components: try other restarts or fewer components"
        for k in empty
    )
