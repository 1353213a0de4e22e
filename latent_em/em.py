"""The generic EM driver and its result record.

One driver fits every model. Per iteration it runs the E-step chunk by chunk, sums the
(additive) statistics, checks that the objective did not decrease, tests convergence,
and runs one M-step. The path is chosen once, by :func:`_choose_m_step`, from the
capabilities a model provides (see :mod:`latent_em.protocols`).

The objective is ``L(θ) = Σ_n w_n log p(x_n | θ)`` (plus ``log p(θ)`` for MAP-EM). By the
decomposition ``log p(x) = ELBO(q, θ) + KL(q ‖ p(z | x, θ))`` the E-step
``q = p(z | x, θ)`` closes the gap and the M-step raises the ELBO, so ``L`` never
decreases; the driver enforces this instead of assuming it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import math
import numbers
import os
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy.special import logsumexp

from ._tree import tree_add, tree_allclose, tree_leaves
from .constraints import count_free_parameters
from .data import DataSource, as_data_source, check_chunk
from .exceptions import ConvergenceWarning, ModelContractError, MonotonicityError
from .protocols import (
    ChecksData,
    ClosedFormMStep,
    Constrained,
    CountsParameters,
    EnumerableLatent,
    ExactPosterior,
    FusedEStep,
    HasFitContext,
    HasLogPrior,
    Repairable,
)

__all__ = [
    "fit",
    "EMResult",
    "RestartOutcome",
    "Event",
    "posterior",
    "log_likelihood",
    "check_sample_weight",
    "restart_rngs",
]

logger = logging.getLogger("latent_em")

#: Default relative tolerance for a decrease of the objective treated as round-off.
MONOTONE_RTOL = 1e-10


@dataclasses.dataclass(frozen=True)
class Event:
    """Something the driver or the model did along the way (a reseed, a floor, ...).

    Attributes
    ----------
    restart : int
        Index of the restart (0-based).
    iteration : int
        Iteration after whose M-step it happened (1-based).
    message : str
        What happened, in words.
    """

    restart: int
    iteration: int
    message: str


@dataclasses.dataclass(frozen=True)
class RestartOutcome:
    """How one restart ended.

    Attributes
    ----------
    index : int
        Restart index (0-based).
    log_likelihood : float
        Final weighted log-likelihood ``Σ_n w_n log p(x_n | θ)``.
    objective : float
        Final objective (log-likelihood plus log-prior).
    n_iter : int
        Number of EM iterations (M-steps).
    converged : bool
        Whether the convergence criterion was met before ``max_iter``.
    n_events : int
        Number of repair events during this restart.
    """

    index: int
    log_likelihood: float
    objective: float
    n_iter: int
    converged: bool
    n_events: int


@dataclasses.dataclass(frozen=True)
class EMResult:
    """The result of :func:`fit`.

    Attributes
    ----------
    params : Any
        Fitted parameters of the best restart (the model's NamedTuple).
    log_likelihood : float
        ``Σ_n w_n log p(x_n | params)`` at ``params`` (from a final E-step).
    log_prior : float
        ``log p(params)`` (0 for models without a prior).
    objective : float
        ``log_likelihood + log_prior``, the quantity EM maximizes.
    history : numpy.ndarray
        Objective after every E-step of the best restart, shape ``(n_iter + 1,)``;
        non-decreasing by construction (checked).
    n_iter : int
        Number of EM iterations (M-steps) of the best restart.
    n_evaluations : int
        Number of E-step passes over the data of the best restart.
    converged : bool
        Whether the best restart met the convergence criterion.
    n_observations : float
        Total weight ``Σ_n w_n`` (the number of rows without ``sample_weight``).
    n_parameters : int or None
        Number of free parameters, when the model states it or declares constraints.
    best_restart : int
        Index of the best restart.
    restarts : tuple of RestartOutcome
        Outcome of every restart.
    events : tuple of Event
        Repairs and other events of every restart.
    model : Any
        The model that was fitted.
    """

    params: Any
    log_likelihood: float
    log_prior: float
    objective: float
    history: np.ndarray
    n_iter: int
    n_evaluations: int
    converged: bool
    n_observations: float
    n_parameters: int | None
    best_restart: int
    restarts: tuple[RestartOutcome, ...]
    events: tuple[Event, ...]
    model: Any

    @property
    def mean_log_likelihood(self) -> float:
        """Log-likelihood per observation, ``log_likelihood / n_observations``."""
        return self.log_likelihood / self.n_observations

    @property
    def bic(self) -> float:
        """``-2 log L + p log n`` (smaller is better)."""
        return -2.0 * self.log_likelihood + self._p() * math.log(self.n_observations)

    @property
    def aic(self) -> float:
        """``-2 log L + 2 p`` (smaller is better)."""
        return -2.0 * self.log_likelihood + 2.0 * self._p()

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Save to ``path`` (JSON) and its ``.npz`` sibling; see :mod:`latent_em.io`."""
        from .io import save

        return save(self, path)

    @staticmethod
    def load(path: str | os.PathLike[str]) -> EMResult:
        """Load an :class:`EMResult` written by :meth:`save`."""
        from .io import load

        obj = load(path)
        if not isinstance(obj, EMResult):
            raise TypeError(f"{str(path)!r} holds a {type(obj).__name__}, not an EMResult")
        return obj

    def _p(self) -> int:
        if self.n_parameters is None:
            raise AttributeError(
                "the model does not state its number of free parameters; give it an "
                "n_parameters(params) method or a constraints mapping"
            )
        return self.n_parameters


# ----------------------------------------------------------------------------- inputs


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
    return w


def restart_rngs(random_state: Any, n: int) -> list[np.random.Generator]:
    """``n`` independent generators derived reproducibly from ``random_state``."""
    if isinstance(random_state, np.random.Generator):
        return list(random_state.spawn(n))
    if isinstance(random_state, np.random.RandomState):
        seed = int(random_state.randint(0, 2**31 - 1))
        return [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(n)]
    if random_state is not None and not isinstance(random_state, numbers.Integral):
        raise TypeError(
            "random_state must be None, an int or a numpy Generator; "
            f"got {type(random_state).__name__}"
        )
    if random_state is not None and random_state < 0:
        raise ValueError(f"random_state must be non-negative; got {random_state}")
    entropy = None if random_state is None else int(random_state)
    return [np.random.default_rng(s) for s in np.random.SeedSequence(entropy).spawn(n)]


def _check_options(tol: float, max_iter: int, n_init: int, chunk_size: int | None) -> None:
    if not isinstance(tol, numbers.Real) or not (math.isfinite(tol) and tol >= 0):
        raise ValueError(f"tol must be a finite number >= 0; got {tol!r}")
    if not isinstance(max_iter, numbers.Integral) or max_iter < 0:
        raise ValueError(f"max_iter must be an integer >= 0; got {max_iter!r}")
    if not isinstance(n_init, numbers.Integral) or n_init < 1:
        raise ValueError(f"n_init must be an integer >= 1; got {n_init!r}")
    if chunk_size is not None and (not isinstance(chunk_size, numbers.Integral) or chunk_size < 1):
        raise ValueError(f"chunk_size must be None or an integer >= 1; got {chunk_size!r}")


def _check_model(model: Any) -> None:
    missing = [m for m in ("initialize", "log_joint") if not callable(getattr(model, m, None))]
    if missing:
        raise ModelContractError(
            f"{type(model).__name__} is missing required method(s) {', '.join(missing)}; "
            "every model needs initialize(x, rng) and log_joint(params, x, z)"
        )
    if not isinstance(model, (ExactPosterior, EnumerableLatent)):
        raise ModelContractError(
            f"{type(model).__name__} gives the driver no way to compute the posterior: "
            "provide latent_support() (discrete z, enumerated) or posterior(params, x)"
        )
    has_stats = callable(getattr(model, "expected_stats", None))
    has_mstep = callable(getattr(model, "m_step", None))
    if has_stats != has_mstep:
        have, lack = ("expected_stats", "m_step") if has_stats else ("m_step", "expected_stats")
        raise ModelContractError(
            f"{type(model).__name__} defines {have} but not {lack}; the closed-form path needs both"
        )


def _chunks(n: int, chunk_size: int | None) -> Iterator[slice]:
    step = n if chunk_size is None else max(1, int(chunk_size))
    for start in range(0, n, step):
        yield slice(start, min(n, start + step))


# ----------------------------------------------------------------------------- E-step


def _enumerate_log_joint(model: Any, params: Any, x: Any, n: int) -> np.ndarray:
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


def _posterior_unchecked(model: Any, params: Any, x: Any, n: int) -> tuple[Any, np.ndarray]:
    if isinstance(model, ExactPosterior):
        out = model.posterior(params, x)
        if not (isinstance(out, tuple) and len(out) == 2):
            raise ModelContractError(
                f"{type(model).__name__}.posterior must return a tuple (posterior, log_marginal); "
                f"got {type(out).__name__}"
                + (f" of length {len(out)}" if isinstance(out, tuple) else "")
            )
        return out
    table = _enumerate_log_joint(model, params, x, n)
    with np.errstate(invalid="ignore"):
        log_marginal = logsumexp(table, axis=1)
        resp = np.exp(table - log_marginal[:, None])
    return resp, log_marginal


def _validate_posterior(model: Any, params: Any, x: Any, n: int, post: Any, lm: Any) -> None:
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
            table = _enumerate_log_joint(model, params, x, n)
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
    post, lm = _posterior_unchecked(model, params, x, n)
    return post, np.asarray(lm, dtype=float)


def log_likelihood(model: Any, params: Any, x: Any, sample_weight: Any = None) -> float:
    """``Σ_n w_n log p(x_n | params)``."""
    _, lm = posterior(model, params, x)
    return float(np.dot(check_sample_weight(sample_weight, len(x)), lm))


@dataclasses.dataclass
class _Pass:
    """What one E-step pass over the data produced."""

    stats: Any
    log_likelihood: float
    posteriors: list[Any] | None


#: rows of the first chunk checked against the model contract on the first E-step
_VALIDATE_ROWS = 2048


def _chunk_e_step(
    model: Any,
    params: Any,
    x: Any,
    weights: np.ndarray,
    closed_form: bool,
    validate: bool,
) -> tuple[Any, float, Any]:
    """E-step of one chunk: ``(stats or None, Σ w log p(x_n), posterior or None)``."""
    n = weights.shape[0]
    fused = closed_form and isinstance(model, FusedEStep)
    post = None
    if fused:
        stats, lm = model.e_step(params, x, weights)
        if validate:
            # checked on the head of the chunk, as below: the unfused E-step over a
            # large chunk would cost several fused passes
            m = min(n, _VALIDATE_ROWS)
            head_post, head_lm = _posterior_unchecked(model, params, x[:m], m)
            _validate_posterior(model, params, x[:m], m, head_post, head_lm)
            sub = model.expected_stats(params, x[:m], head_post, weights[:m])
            fused_head = (stats, lm) if m == n else model.e_step(params, x[:m], weights[:m])
            _validate_fused(model, sub, head_lm, *fused_head)
    else:
        post, lm = _posterior_unchecked(model, params, x, n)
        stats = model.expected_stats(params, x, post, weights) if closed_form else None
        if validate:
            # the checks enumerate log_joint over the whole support: bounded to the
            # first rows, so a large first chunk does not cost m extra E-steps
            m = min(n, _VALIDATE_ROWS)
            # recomputed on the head alone: in reduced precision the values may depend
            # on how rows are blocked, and log_joint below sees the head alone too
            head = (
                (x[:m], *_posterior_unchecked(model, params, x[:m], m)) if m < n else (x, post, lm)
            )
            _validate_posterior(model, params, head[0], m, head[1], head[2])
    lm = np.asarray(lm, dtype=float)
    # rows with zero weight do not contribute, even where log p(x_n) = -inf
    positive = weights > 0
    total = float(np.dot(weights[positive], lm[positive]))
    return stats, total, post


def _validate_fused(model: Any, stats: Any, lm: Any, fused_stats: Any, fused_lm: Any) -> None:
    """The fused E-step must agree with posterior + expected_stats (checked once)."""
    # a loose tolerance: this catches wrong statistics, not reduced-precision round-off
    scale = max((float(np.max(np.abs(leaf))) for leaf in tree_leaves(stats)), default=0.0)
    same_lm = np.allclose(fused_lm, lm, rtol=1e-4, atol=1e-4)
    if not same_lm or not tree_allclose(fused_stats, stats, rtol=1e-4, atol=1e-4 * scale):
        raise ModelContractError(
            f"{type(model).__name__}.e_step disagrees with posterior + expected_stats; the "
            "fused E-step must return the same statistics and log p(x_n)"
        )


def _source_chunk(
    model: Any,
    params: Any,
    closed_form: bool,
    validate: bool,
    index: int,
    x: Any,
    weights: np.ndarray,
) -> tuple[Any, float]:
    # module level (not a closure) so Dask can ship it to worker processes
    stats, total, _ = _chunk_e_step(
        model, params, check_chunk(model, x), weights, closed_form, validate and index == 0
    )
    return stats, total


def _e_pass(
    model: Any,
    params: Any,
    x: Any,
    weights: np.ndarray,
    chunk_size: int | None,
    closed_form: bool,
    validate: bool,
) -> _Pass:
    stats = None
    total = 0.0
    kept: list[Any] | None = None if closed_form else []
    if isinstance(x, DataSource):
        # out-of-core or distributed data: chunks are read (and, for Dask, reduced) by the
        # source; only closed-form models get here (see _prepare_data)
        work = functools.partial(_source_chunk, model, params, closed_form, validate)
        stats, total = x.map_reduce(work, weights, chunk_size)
        total = float(total)
    else:
        for i, sl in enumerate(_chunks(len(weights), chunk_size)):
            chunk_stats, chunk_total, post = _chunk_e_step(
                model, params, x[sl], weights[sl], closed_form, validate and i == 0
            )
            total += chunk_total
            if closed_form:
                stats = tree_add(stats, chunk_stats)
            else:
                assert kept is not None
                kept.append(post)
    if not math.isfinite(total):
        raise ModelContractError(
            f"{type(model).__name__}: the log-likelihood is {total!r} at the current parameters"
        )
    if validate and closed_form:
        for leaf in tree_leaves(stats):
            if not np.all(np.isfinite(leaf)):
                raise ModelContractError(
                    f"{type(model).__name__}.expected_stats returned non-finite statistics"
                )
    return _Pass(stats, total, kept)


def _prepare_data(model: Any, x: Any) -> tuple[Any, int, Callable[[np.random.Generator], Any]]:
    """``(x, n, init_data)``: checked in-memory data, or a :class:`DataSource`.

    ``init_data(rng)`` is what ``model.initialize`` sees: all of in-memory data, a bounded
    subsample of data that are not in memory.
    """
    source = as_data_source(x)
    if source is None:
        if isinstance(model, ChecksData):
            x = model.check_data(x)
        try:
            n = len(x)
        except TypeError as exc:
            raise TypeError(
                f"x must be indexable by row with a length; got {type(x).__name__}"
            ) from exc
        if n == 0:
            raise ValueError("x is empty: at least one observation is needed")
        return x, n, lambda rng: x
    if not isinstance(model, ClosedFormMStep):
        raise ModelContractError(
            f"{type(model).__name__} has no closed-form M-step (expected_stats and m_step); "
            f"data given as {type(x).__name__} are read chunk by chunk, which needs one. "
            "Load x into memory as an array instead"
        )

    def init_data(rng: np.random.Generator) -> Any:
        sample = source.init_sample(rng)
        return model.check_data(sample) if isinstance(model, ChecksData) else sample

    return source, source.n_rows, init_data


def _working_rtol(model: Any, monotone_rtol: float) -> float:
    """Monotonicity tolerance for the model's working precision.

    A model computing in float32 has log-likelihoods whose round-off is ~1e-7 relative,
    far above the float64 default. The precision is ``model.working_dtype`` when the
    model states it (a model may hold float32 data and compute in float64), else
    ``model.dtype``.
    """
    dtype = getattr(model, "working_dtype", getattr(model, "dtype", None))
    try:
        eps = float(np.finfo(np.dtype(dtype)).eps) if dtype is not None else 0.0
    except (TypeError, ValueError):
        eps = 0.0
    return max(monotone_rtol, 4.0 * eps if eps > np.finfo(np.float64).eps else 0.0)


# ----------------------------------------------------------------------------- M-step


#: An M-step: ``(params, e_pass) -> (new_params, messages)``; the messages (for example
#: "the numerical M-step kept θ") become :class:`Event` records of the fit.
MStep = Callable[[Any, _Pass], tuple[Any, tuple[str, ...]]]


def _choose_m_step(model: Any, x: Any, weights: np.ndarray, chunk_size: int | None) -> MStep:
    """The one place where the driver branches on model capabilities."""
    if isinstance(model, ClosedFormMStep):

        def closed_form(params: Any, e: _Pass) -> tuple[Any, tuple[str, ...]]:
            return model.m_step(params, e.stats), ()

        return closed_form
    if isinstance(model, Constrained) and isinstance(model, EnumerableLatent):
        from .numerical_mstep import numerical_m_step

        def numerical(params: Any, e: _Pass) -> tuple[Any, tuple[str, ...]]:
            assert e.posteriors is not None
            new, info = numerical_m_step(model, params, x, e.posteriors, weights, chunk_size)
            return new, info.messages()

        return numerical
    raise ModelContractError(
        f"{type(model).__name__} has no M-step: provide expected_stats and m_step "
        "(closed form), or constraints together with latent_support() for the generic "
        "numerical M-step"
    )


def _leaf_summary(tree: Any) -> list[tuple[int, ...]]:
    return [np.shape(leaf) for leaf in tree_leaves(tree)]


def _validate_initial_params(model: Any, params: Any) -> None:
    name = type(model).__name__
    if params is None:
        raise ModelContractError(
            f"{name}.initialize returned None; it must return the initial parameters "
            "(a NamedTuple of arrays)"
        )
    for i, leaf in enumerate(tree_leaves(params)):
        arr = np.asarray(leaf)
        if np.issubdtype(arr.dtype, np.number) and not np.all(np.isfinite(arr)):
            raise ModelContractError(
                f"{name}: the initial parameters contain NaN or infinite values (leaf {i}, "
                f"shape {arr.shape}); check initialize or the params you passed"
            )


def _validate_m_step_output(model: Any, old: Any, new: Any) -> None:
    """The first M-step must return parameters shaped like its input, all finite."""
    name = type(model).__name__
    if new is None:
        raise ModelContractError(f"{name}: the M-step returned None instead of new parameters")
    before, after = _leaf_summary(old), _leaf_summary(new)
    if before != after:
        raise ModelContractError(
            f"{name}: the M-step returned parameters shaped {after} but received {before}; "
            "m_step must return the same fields with the same shapes"
        )
    for i, leaf in enumerate(tree_leaves(new)):
        arr = np.asarray(leaf)
        if np.issubdtype(arr.dtype, np.number) and not np.all(np.isfinite(arr)):
            raise ModelContractError(
                f"{name}: the M-step returned NaN or infinite values in leaf {i} (shape "
                f"{arr.shape}); check m_step (a division by a zero count?)"
            )


def _log_prior(model: Any, params: Any) -> float:
    if isinstance(model, HasLogPrior):
        value = float(model.log_prior(params))
        if math.isnan(value):
            raise ModelContractError(f"{type(model).__name__}.log_prior returned NaN")
        return value
    return 0.0


def _n_parameters(model: Any, params: Any) -> int | None:
    if isinstance(model, CountsParameters):
        return int(model.n_parameters(params))
    if isinstance(model, Constrained):
        return count_free_parameters(params, model.constraints)
    return None


# ----------------------------------------------------------------------------- driver


@dataclasses.dataclass
class _Run:
    params: Any
    log_likelihood: float
    log_prior: float
    history: list[float]
    n_iter: int
    n_evaluations: int
    converged: bool
    events: list[Event]


def _run_em(
    model: Any,
    x: Any,
    weights: np.ndarray,
    params: Any,
    *,
    restart: int,
    rng: np.random.Generator,
    tol: float,
    max_iter: int,
    chunk_size: int | None,
    m_step: MStep,
    closed_form: bool,
    monotone_rtol: float,
    callback: Callable[[int, Any, float], Any] | None,
) -> _Run:
    total_weight = float(weights.sum())
    history: list[float] = []
    events: list[Event] = []
    reported: set[str] = set()
    previous: float | None = None  # objective at the parameters the last M-step started from
    jumped = False  # whether a repair moved the parameters after the last M-step
    converged = False
    n_iter = 0
    for iteration in range(max_iter + 1):
        e = _e_pass(model, params, x, weights, chunk_size, closed_form, validate=iteration == 0)
        lp = _log_prior(model, params)
        objective = e.log_likelihood + lp
        history.append(objective)
        if callback is not None:
            callback(iteration, params, objective)
        if previous is not None:
            change = objective - previous
            if not jumped and change < -monotone_rtol * (abs(previous) + total_weight):
                raise MonotonicityError(
                    iteration,
                    previous,
                    objective,
                    f"EM decreased the objective at iteration {iteration} (restart {restart}): "
                    f"from {previous!r} to {objective!r}, a drop of {-change:.6g} "
                    f"({-change / max(abs(previous), 1e-300):.3g} relative, tolerance "
                    f"{monotone_rtol:g}). The M-step of {type(model).__name__} is not a "
                    "maximizer of the expected complete-data log-likelihood, or its "
                    "posterior is not exact; run latent_em.check_model to find which.",
                )
            if abs(change) < tol * total_weight:
                converged = True
                break
        if iteration == max_iter:
            break
        new_params, step_messages = m_step(params, e)
        n_iter += 1
        for message in step_messages:
            events.append(Event(restart, n_iter, message))
            logger.info("restart %d, iteration %d: %s", restart, n_iter, message)
        previous = objective
        jumped = False
        if isinstance(model, Repairable):
            repaired, messages = model.repair(new_params, e.stats, rng)
            for message in messages:
                # a condition that persists is reported once, where it first appeared
                if message not in reported:
                    reported.add(message)
                    events.append(Event(restart, n_iter, message))
                    logger.info("restart %d, iteration %d: %s", restart, n_iter, message)
            if repaired is not new_params:
                # the parameters jumped: a decrease at the next E-step is not an EM
                # failure, so monotonicity is not checked for this one step
                jumped = True
                new_params = repaired
        if n_iter == 1:
            # after repair: a model may rely on repair to mend what its m_step left
            _validate_m_step_output(model, params, new_params)
        params = new_params
    # The loop always ends right after an E-step at `params`, so the reported
    # log-likelihood belongs to the returned parameters (the final E-step).
    return _Run(params, e.log_likelihood, lp, history, n_iter, len(history), converged, events)


def fit(
    model: Any,
    x: Any,
    *,
    params: Any = None,
    n_init: int = 1,
    tol: float = 1e-6,
    max_iter: int = 1000,
    sample_weight: Any = None,
    chunk_size: int | None = None,
    random_state: Any = None,
    accelerate: str | None = None,
    callback: Callable[[int, Any, float], Any] | None = None,
    monotone_rtol: float = MONOTONE_RTOL,
    warn_not_converged: bool = True,
) -> EMResult:
    """Fit a latent-variable model by expectation-maximization.

    Parameters
    ----------
    model : object
        A model implementing the contract of :mod:`latent_em.protocols`.
    x : array-like, path, numpy.memmap, latent_em.data.Chunks or dask.array.Array
        Data, indexed by observation along axis 0. Data not in memory (a ``.npy`` path, a
        memory map, a re-iterable of chunks, a Dask array) are read chunk by chunk on
        every E-step and initialization sees a bounded subsample; see
        :mod:`latent_em.data`. Such data need a closed-form model.
    params : optional
        Initial parameters; by default ``model.initialize(x, rng)`` for every restart.
    n_init : int, default 1
        Number of restarts from independent initializations; the best objective wins.
    tol : float, default 1e-6
        Convergence threshold on the change of the objective per unit weight (per
        observation without ``sample_weight``) between successive iterations.
    max_iter : int, default 1000
        Maximum number of EM iterations per restart.
    sample_weight : array-like of shape (n,), optional
        Non-negative row weights; integer weights are equivalent to repeating rows.
    chunk_size : int, optional
        Rows per E-step chunk; bounds memory and gives the same result as one chunk
        (data read from disk default to ``latent_em.data.DEFAULT_CHUNK_ROWS``).
    random_state : int, numpy.random.Generator or None
        Seeds the initializations (reproducible bit for bit for an int).
    accelerate : {None, "squarem"} or latent_em.acceleration.Squarem, optional
        Acceleration of the EM map: ``None`` for plain EM, ``"squarem"`` (or a
        :class:`~latent_em.acceleration.Squarem` with options) for SQUAREM, which needs
        the model's ``constraints``. ``n_iter`` then counts SQUAREM cycles,
        ``n_evaluations`` the E-step passes, and ``history`` and ``callback`` see the
        accepted point of every cycle.
    callback : callable, optional
        Called as ``callback(iteration, params, objective)`` after every E-step;
        ``iteration`` counts from 0 in every restart.
    monotone_rtol : float, default 1e-10
        A decrease of the objective larger than ``monotone_rtol * (|L| + Σ w)`` raises
        :class:`~latent_em.MonotonicityError`.
    warn_not_converged : bool, default True
        Emit :class:`~latent_em.ConvergenceWarning` when the best restart did not converge.

    Returns
    -------
    EMResult
        Fitted parameters, log-likelihood, history, per-restart outcomes and events.

    Raises
    ------
    MonotonicityError
        If an iteration lowers the objective beyond round-off.
    ModelContractError
        If the model lacks a required method or returns values of the wrong shape.
    """
    _check_model(model)
    _check_options(tol, max_iter, n_init, chunk_size)
    if params is not None and n_init > 1:
        raise ValueError("give either initial params or n_init > 1, not both")
    x, n, init_data = _prepare_data(model, x)
    monotone_rtol = _working_rtol(model, monotone_rtol)
    weights = check_sample_weight(sample_weight, n)
    # --- acceleration dispatch (issue 5): SQUAREM lives in latent_em.acceleration
    from .acceleration import resolve_accelerate

    squarem = resolve_accelerate(accelerate, model)

    closed_form = isinstance(model, ClosedFormMStep)
    m_step = _choose_m_step(model, x, weights, chunk_size)
    run_restart: Callable[..., _Run] = _run_em
    if squarem is not None:
        from .acceleration import run_squarem

        run_restart = functools.partial(run_squarem, options=squarem)
    rngs = restart_rngs(random_state, n_init)
    runs: list[_Run] = []
    context = model.fit_context() if isinstance(model, HasFitContext) else contextlib.nullcontext()
    with context:
        for restart, rng in enumerate(rngs):
            start = params if params is not None else model.initialize(init_data(rng), rng)
            _validate_initial_params(model, start)
            runs.append(
                run_restart(
                    model,
                    x,
                    weights,
                    start,
                    restart=restart,
                    rng=rng,
                    tol=tol,
                    max_iter=max_iter,
                    chunk_size=chunk_size,
                    m_step=m_step,
                    closed_form=closed_form,
                    monotone_rtol=monotone_rtol,
                    callback=callback,
                )
            )
    best = max(range(len(runs)), key=lambda i: runs[i].log_likelihood + runs[i].log_prior)
    run = runs[best]
    if warn_not_converged and not run.converged and max_iter > 0:
        warnings.warn(
            f"EM did not converge in max_iter={max_iter} iterations (last change "
            f"{_last_change(run.history, float(weights.sum())):.3g} per observation > "
            f"tol={tol:g}); increase max_iter or tol",
            ConvergenceWarning,
            stacklevel=2,
        )
    outcomes = tuple(
        RestartOutcome(
            index=i,
            log_likelihood=r.log_likelihood,
            objective=r.log_likelihood + r.log_prior,
            n_iter=r.n_iter,
            converged=r.converged,
            n_events=len(r.events),
        )
        for i, r in enumerate(runs)
    )
    return EMResult(
        params=run.params,
        log_likelihood=run.log_likelihood,
        log_prior=run.log_prior,
        objective=run.log_likelihood + run.log_prior,
        history=np.asarray(run.history),
        n_iter=run.n_iter,
        n_evaluations=run.n_evaluations,
        converged=run.converged,
        n_observations=float(weights.sum()),
        n_parameters=_n_parameters(model, run.params),
        best_restart=best,
        restarts=outcomes,
        events=tuple(ev for r in runs for ev in r.events),
        model=model,
    )


def _last_change(history: Sequence[float], total_weight: float) -> float:
    if len(history) < 2:
        return float("nan")
    return abs(history[-1] - history[-2]) / total_weight
