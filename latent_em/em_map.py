"""The EM map ``θ → M(E(θ))``: one E-pass over the data and the M-step chosen once.

Everything that runs EM uses this module, side by side: the driver
(:func:`latent_em.em.fit`: restarts, the loop, convergence, monotonicity, the result) and
SQUAREM (:mod:`latent_em.acceleration`). Neither imports the other.

* :func:`e_pass` runs the E-step chunk by chunk (fused or not, validated on the first
  pass), sums the additive statistics and returns an :class:`EPass`;
* :func:`choose_m_step` is the one place where a model's capabilities pick the M-step
  (closed form, or the generic numerical M-step for enumerable ``z`` with constraints);
* :func:`validate_initial_params` and :func:`validate_m_step_output` check what a model
  hands back; :class:`RestartRun` is what one restart of either loop produced.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable
from typing import Any

import numpy as np

from ._registry import kind_of
from ._tree import tree_add, tree_allclose, tree_leaves
from .constraints import constraint_violation, count_free_parameters
from .data import DataSource, as_data_source, check_chunk
from .exceptions import ModelContractError, MonotonicityError
from .numerical_mstep import numerical_m_step
from .posteriors import chunks, posterior_unchecked, validate_posterior
from .protocols import (
    ChecksData,
    ClosedFormMStep,
    Constrained,
    CountsParameters,
    EnumerableLatent,
    ExactPosterior,
    FusedEStep,
    has_monotone_objective,
)
from .result import Event

__all__ = [
    "EPass",
    "MStep",
    "RestartRun",
    "CHECKED_ITERATIONS",
    "VALIDATE_ROWS",
    "check_model_contract",
    "chunk_e_step",
    "choose_m_step",
    "e_pass",
    "n_parameters_of",
    "prepare_data",
    "validate_fused",
    "validate_initial_params",
    "validate_m_step_output",
    "working_rtol",
    "check_step",
]


def check_model_contract(model: Any) -> None:
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


@dataclasses.dataclass
class EPass:
    """What one E-step pass over the data produced."""

    stats: Any
    log_likelihood: float
    posteriors: list[Any] | None


#: rows of the first chunk checked against the model contract on the first E-step
VALIDATE_ROWS = 2048


def chunk_e_step(
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
            m = min(n, VALIDATE_ROWS)
            head_post, head_lm = posterior_unchecked(model, params, x[:m], m)
            validate_posterior(model, params, x[:m], m, head_post, head_lm)
            sub = model.expected_stats(params, x[:m], head_post, weights[:m])
            fused_head = (stats, lm) if m == n else model.e_step(params, x[:m], weights[:m])
            validate_fused(model, sub, head_lm, *fused_head)
    else:
        post, lm = posterior_unchecked(model, params, x, n)
        stats = model.expected_stats(params, x, post, weights) if closed_form else None
        if validate:
            # the checks enumerate log_joint over the whole support: bounded to the
            # first rows, so a large first chunk does not cost m extra E-steps
            m = min(n, VALIDATE_ROWS)
            # recomputed on the head alone: in reduced precision the values may depend
            # on how rows are blocked, and log_joint below sees the head alone too
            head = (
                (x[:m], *posterior_unchecked(model, params, x[:m], m)) if m < n else (x, post, lm)
            )
            validate_posterior(model, params, head[0], m, head[1], head[2])
    lm = np.asarray(lm, dtype=float)
    # rows with zero weight do not contribute, even where log p(x_n) = -inf
    positive = weights > 0
    total = float(np.dot(weights[positive], lm[positive]))
    return stats, total, post


def validate_fused(model: Any, stats: Any, lm: Any, fused_stats: Any, fused_lm: Any) -> None:
    """The fused E-step must agree with posterior + expected_stats (checked once)."""
    # a loose tolerance: this catches wrong statistics, not reduced-precision round-off
    scale = max((float(np.max(np.abs(leaf))) for leaf in tree_leaves(stats)), default=0.0)
    same_lm = np.allclose(fused_lm, lm, rtol=1e-4, atol=1e-4)
    if not same_lm or not tree_allclose(fused_stats, stats, rtol=1e-4, atol=1e-4 * scale):
        raise ModelContractError(
            f"{type(model).__name__}.e_step disagrees with posterior + expected_stats; the "
            "fused E-step must return the same statistics and log p(x_n)"
        )


def source_chunk(
    model: Any,
    params: Any,
    closed_form: bool,
    validate: bool,
    index: int,
    x: Any,
    weights: np.ndarray,
) -> tuple[Any, float]:
    # module level (not a closure) so Dask can ship it to worker processes
    stats, total, _ = chunk_e_step(
        model, params, check_chunk(model, x), weights, closed_form, validate and index == 0
    )
    return stats, total


def e_pass(
    model: Any,
    params: Any,
    x: Any,
    weights: np.ndarray,
    chunk_size: int | None,
    closed_form: bool,
    validate: bool,
) -> EPass:
    stats = None
    total = 0.0
    kept: list[Any] | None = None if closed_form else []
    if isinstance(x, DataSource):
        # out-of-core or distributed data: chunks are read (and, for Dask, reduced) by the
        # source; only closed-form models get here (see prepare_data)
        work = functools.partial(source_chunk, model, params, closed_form, validate)
        stats, total = x.map_reduce(work, weights, chunk_size)
        total = float(total)
    else:
        for i, sl in enumerate(chunks(len(weights), chunk_size)):
            chunk_stats, chunk_total, post = chunk_e_step(
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
    return EPass(stats, total, kept)


def prepare_data(model: Any, x: Any) -> tuple[Any, int, Callable[[np.random.Generator], Any]]:
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


def working_rtol(model: Any, monotone_rtol: float) -> float:
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


def check_step(
    model: Any,
    before: float,
    after: float,
    *,
    rtol: float,
    total_weight: float,
    iteration: int,
    restart: int,
    where: str = "EM",
    round_off: float = 0.0,
) -> Event | None:
    """The monotonicity check of one EM step from ``before`` to ``after``.

    A decrease larger than ``rtol * (|before| + Σ w)`` (the documented round-off
    tolerance, plus ``round_off · Σ w`` where the model states that its log-likelihood is
    less accurate at these parameters: :class:`~latent_em.protocols.StatesRoundOff`)
    raises :class:`~latent_em.MonotonicityError` for a model whose objective
    EM provably increases; for a model that states ``monotone_objective = False`` (see
    :class:`~latent_em.protocols.DeclaresObjective`) it is returned as an
    :class:`~latent_em.Event` instead. ``None`` when the step did not decrease.
    """
    change = after - before
    allowed = rtol * (abs(before) + total_weight) + round_off * total_weight
    if not change < -allowed:
        return None
    drop = (
        f"from {before!r} to {after!r}, a drop of {-change:.6g} "
        f"({-change / max(abs(before), 1e-300):.3g} relative; tolerance {allowed:.3g}, "
        f"from monotone_rtol={rtol:g}"
        + (f" and the model's round-off bound {round_off:.3g} per row)" if round_off else ")")
    )
    name = type(model).__name__
    if not has_monotone_objective(model):
        return Event(
            restart,
            iteration,
            f"the objective decreased at iteration {iteration} ({drop}); {name} states that "
            "its M-step maximizes no fixed objective (monotone_objective = False), so this "
            "is not an error",
        )
    if kind_of(type(model)) == "builtin":
        cause = (
            f"{name} is built into latent_em and its objective cannot decrease beyond "
            "round-off, so this is a bug in latent_em: please report it with the data and "
            "the options of the fit"
        )
    else:
        cause = (
            f"The M-step of {name} is not a maximizer of the expected complete-data "
            "log-likelihood, or its posterior is not exact; run latent_em.check_model to "
            "find which"
        )
    raise MonotonicityError(
        iteration,
        before,
        after,
        f"{where} decreased the objective at iteration {iteration} (restart {restart}): "
        f"{drop}. {cause}.",
    )


# ----------------------------------------------------------------------------- M-step


#: An M-step: ``(params, e_pass) -> (new_params, messages)``; the messages (for example
#: "the numerical M-step kept θ") become :class:`Event` records of the fit.
MStep = Callable[[Any, EPass], tuple[Any, tuple[str, ...]]]


def choose_m_step(
    model: Any, x: Any, weights: np.ndarray, chunk_size: int | None, tol: float | None = None
) -> MStep:
    """The one place where the driver branches on model capabilities.

    ``tol`` is EM's convergence tolerance; the numerical M-step's optimizer follows it.
    """
    if isinstance(model, ClosedFormMStep):

        def closed_form(params: Any, e: EPass) -> tuple[Any, tuple[str, ...]]:
            return model.m_step(params, e.stats), ()

        return closed_form
    if isinstance(model, Constrained) and isinstance(model, EnumerableLatent):
        # carried from one M-step to the next (and across restarts and SQUAREM steps):
        # the quasi-Newton curvature (a starting guess only: every M-step converges on
        # its own) and which support points each parameter moves
        state: dict[str, Any] = {}

        def numerical(params: Any, e: EPass) -> tuple[Any, tuple[str, ...]]:
            assert e.posteriors is not None
            new, info = numerical_m_step(
                model, params, x, e.posteriors, weights, chunk_size, tol=tol, state=state
            )
            return new, info.messages()

        return numerical
    raise ModelContractError(
        f"{type(model).__name__} has no M-step: provide expected_stats and m_step "
        "(closed form), or constraints together with latent_support() for the generic "
        "numerical M-step"
    )


def _leaf_summary(tree: Any) -> list[tuple[int, ...]]:
    return [np.shape(leaf) for leaf in tree_leaves(tree)]


def _named_leaves(tree: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """``(dotted field name, leaf)`` pairs, in :func:`tree_leaves` order."""
    if isinstance(tree, tuple) and hasattr(tree, "_fields"):
        items: list[tuple[str, Any]] = list(zip(tree._fields, tree, strict=True))
    elif dataclasses.is_dataclass(tree) and not isinstance(tree, type):
        items = [(f.name, getattr(tree, f.name)) for f in dataclasses.fields(tree)]
    elif isinstance(tree, dict):
        items = [(str(k), v) for k, v in tree.items()]
    elif isinstance(tree, (tuple, list)):
        items = [(str(i), v) for i, v in enumerate(tree)]
    else:
        return [(prefix or "params", tree)]
    out: list[tuple[str, Any]] = []
    for key, value in items:
        name = key if not prefix else (f"{prefix}[{key}]" if key.isdigit() else f"{prefix}.{key}")
        out.extend(_named_leaves(value, name))
    return out


def _fields_of(params: Any) -> str:
    if isinstance(params, tuple) and hasattr(params, "_fields"):
        return f" (fields {', '.join(params._fields)})"
    if dataclasses.is_dataclass(params) and not isinstance(params, type):
        return f" (fields {', '.join(f.name for f in dataclasses.fields(params))})"
    if isinstance(params, dict):
        return f" (keys {', '.join(map(str, params))})"
    return ""


#: M-steps (plain EM iterations or SQUAREM cycles) whose output is checked against the
#: model's constraints; the first one is also checked for shapes and finite values
CHECKED_ITERATIONS = 3


def _check_given_params(model: Any, params: Any, reference: Any) -> None:
    """``params`` passed to fit must look like what ``model.initialize`` returns."""
    name = type(model).__name__
    expected = f"{type(reference).__name__}{_fields_of(reference)}"
    same_kind = type(params) is type(reference) or (
        isinstance(reference, dict) and isinstance(params, dict)
    )
    if not same_kind:
        raise TypeError(
            f"params: {name} takes its parameters as a {expected}; got a "
            f"{type(params).__name__}{_fields_of(params)}. Build them as "
            f"{type(reference).__name__}(...) or start from a fit's result.params"
        )
    mine, theirs = _named_leaves(params), _named_leaves(reference)
    if [k for k, _ in mine] != [k for k, _ in theirs]:
        raise ValueError(
            f"params: the fields {[k for k, _ in mine]} do not match those {name} uses, "
            f"{[k for k, _ in theirs]}"
        )
    for (field, value), (_, ref) in zip(mine, theirs, strict=True):
        if np.shape(value) != np.shape(ref):
            raise ValueError(
                f"params: field '{field}' has shape {np.shape(value)}, but {name} with these "
                f"data needs shape {np.shape(ref)}"
            )


def validate_initial_params(
    model: Any, params: Any, *, given: bool = False, reference: Any = None
) -> None:
    """Check the starting parameters: present, finite and inside the constraints.

    With ``given`` (the user passed ``params`` to fit), errors name the argument and are
    ``ValueError``/``TypeError``; ``reference`` (what ``model.initialize`` returns for
    the same data), when given, fixes the type, fields and shapes they must have.
    Parameters that ``initialize`` returned raise :class:`ModelContractError`.
    """
    name = type(model).__name__
    if params is None:
        raise ModelContractError(
            f"{name}.initialize returned None; it must return the initial parameters "
            "(a NamedTuple of arrays)"
        )
    if given and reference is not None:
        _check_given_params(model, params, reference)
    for field, leaf in _named_leaves(params):
        try:
            arr = np.asarray(leaf)
        except Exception:  # ragged sequences and the like
            arr = np.asarray(0.0)
        if np.issubdtype(arr.dtype, np.number) and not np.all(np.isfinite(arr)):
            message = (
                f"{name}: the initial parameters contain NaN or infinite values (field "
                f"'{field}', shape {arr.shape}); check initialize or the params you passed"
            )
            if given:
                raise ValueError(f"params: {message}")
            raise ModelContractError(message)
    if isinstance(model, Constrained):
        problem = constraint_violation(params, model.constraints)
        if problem is not None:
            if given:
                raise ValueError(f"params: the initial parameters of {name} are invalid: {problem}")
            raise ModelContractError(
                f"{name}.initialize returned parameters outside the model's constraints: {problem}"
            )


def validate_m_step_output(model: Any, old: Any, new: Any, iteration: int = 1) -> None:
    """What an M-step returned: shaped like its input and finite (checked on the first
    M-step), and inside the model's ``constraints`` (checked on the first
    :data:`CHECKED_ITERATIONS`)."""
    name = type(model).__name__
    if new is None:
        raise ModelContractError(f"{name}: the M-step returned None instead of new parameters")
    if iteration == 1:
        before, after = _leaf_summary(old), _leaf_summary(new)
        if before != after:
            raise ModelContractError(
                f"{name}: the M-step returned parameters shaped {after} but received {before}; "
                "m_step must return the same fields with the same shapes"
            )
        for i, (field, leaf) in enumerate(_named_leaves(new)):
            arr = np.asarray(leaf)
            if np.issubdtype(arr.dtype, np.number) and not np.all(np.isfinite(arr)):
                raise ModelContractError(
                    f"{name}: the M-step returned NaN or infinite values in leaf {i} "
                    f"('{field}', shape {arr.shape}); check m_step (a division by a zero "
                    "count?)"
                )
    if iteration <= CHECKED_ITERATIONS and isinstance(model, Constrained):
        problem = constraint_violation(new, model.constraints)
        if problem is not None:
            raise ModelContractError(
                f"{name}: the M-step of iteration {iteration} returned parameters outside "
                f"the model's constraints: {problem}. m_step must return parameters in "
                "their declared domain (normalize weights, keep variances positive, ...)"
            )


def n_parameters_of(model: Any, params: Any) -> int | None:
    if isinstance(model, CountsParameters):
        return int(model.n_parameters(params))
    if isinstance(model, Constrained):
        return count_free_parameters(params, model.constraints)
    return None


@dataclasses.dataclass
class RestartRun:
    """What one restart of EM (plain or accelerated) produced; the driver keeps the best."""

    params: Any
    log_likelihood: float
    log_prior: float
    history: list[float]
    n_iter: int
    n_evaluations: int
    converged: bool
    events: list[Event]
    #: indices into ``history`` of the values that follow a repair (see EMResult.jumps)
    jumps: list[int] = dataclasses.field(default_factory=list)
